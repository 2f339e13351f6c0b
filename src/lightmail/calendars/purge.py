"""The garbage collector's SQL on ``calendar_objects``: the three steps of a message purge.

A replaced or deleted calendar object is a soft-deleted row, kept for
retention as the tombstone sync-collection reports. The collector
(:mod:`lightmail.gc.collector`) purges such rows with the rules it uses for
messages: **claim** a batch (``purge_claimed_until``, ``FOR UPDATE SKIP
LOCKED``), **delete the blobs** no unclaimed row uses, **delete the rows**
and the ``object_keys`` rows nothing refers to any more, each step safe to
interrupt and to run on several nodes at once. The calendar's
``purged_modseq`` rises to the tokens of the rows purged, so a client whose
sync token is older than a purged removal is told to sync afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select, update

from lightmail.mailstore.purge import Claim
from lightmail.mailstore.rows import chunks
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database

_O = t.calendar_objects.c


def _due(now: datetime, retention: timedelta) -> ColumnElement[bool]:
    return and_(
        _O.deleted_at.is_not(None),
        _O.deleted_at <= now - retention,
        or_(_O.purge_claimed_until.is_(None), _O.purge_claimed_until < now),
    )


class CalendarPurge:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, now: datetime, retention: timedelta, limit: int, lease: timedelta
    ) -> Claim:
        """Step 1: hold up to ``limit`` due rows until ``now + lease``."""
        async with self.db.write() as conn:
            rows = (
                await conn.execute(
                    select(_O.id, _O.object_key)
                    .where(_due(now, retention))
                    .order_by(_O.deleted_at, _O.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            ids = [row.id for row in rows]
            for chunk in chunks(ids):
                await conn.execute(
                    update(t.calendar_objects)
                    .where(_O.id.in_(chunk))
                    .values(purge_claimed_until=now + lease)
                )
        return Claim(ids, sorted({row.object_key for row in rows}))

    async def unused_keys(self, keys: Sequence[str]) -> dict[str, int]:
        """Step 2's list: of ``keys``, those no unclaimed row uses, with their sizes
        (0 for a key whose ``object_keys`` row an interrupted batch removed)."""
        unused: dict[str, int] = {}
        async with self.db.read() as conn:
            for chunk in chunks(keys):
                rows = await conn.execute(
                    select(t.object_keys.c.key, t.object_keys.c.size).where(
                        t.object_keys.c.key.in_(chunk)
                    )
                )
                sizes = {row.key: row.size for row in rows}
                used = await conn.execute(
                    select(_O.object_key).where(
                        _O.object_key.in_(chunk), _O.purge_claimed_until.is_(None)
                    )
                )
                kept = set(used.scalars())
                unused.update({key: sizes.get(key, 0) for key in chunk if key not in kept})
        return unused

    async def delete_rows(self, ids: Sequence[int], keys: Sequence[str]) -> int:
        """Step 3 (one transaction): raise each calendar's ``purged_modseq``, delete
        the claimed rows, then the ``object_keys`` rows no row refers to any more
        (locked first, as the message purge does)."""
        async with self.db.write() as conn:
            for key_chunk in chunks(keys):
                await conn.execute(
                    select(t.object_keys.c.key)
                    .where(t.object_keys.c.key.in_(key_chunk))
                    .order_by(t.object_keys.c.key)
                    .with_for_update()
                )
            purged: dict[int, int] = {}
            for id_chunk in chunks(ids):
                rows = await conn.execute(
                    select(_O.calendar_id, func.max(_O.modseq))
                    .where(_O.id.in_(id_chunk))
                    .group_by(_O.calendar_id)
                )
                for calendar_id, modseq in rows:
                    purged[calendar_id] = max(modseq, purged.get(calendar_id, 0))
            for calendar_id, modseq in sorted(purged.items()):
                await conn.execute(
                    update(t.calendars)
                    .where(t.calendars.c.id == calendar_id, t.calendars.c.purged_modseq < modseq)
                    .values(purged_modseq=modseq)
                )
            result = await conn.execute(
                delete(t.calendar_objects).where(_O.id == bindparam("object_id")),
                [{"object_id": object_id} for object_id in ids],
            )
            gone: list[str] = []
            for key_chunk in chunks(keys):
                used = await conn.execute(select(_O.object_key).where(_O.object_key.in_(key_chunk)))
                gone.extend(sorted(set(key_chunk) - set(used.scalars())))
            if gone:
                await conn.execute(
                    delete(t.object_keys).where(t.object_keys.c.key == bindparam("gone_key")),
                    [{"gone_key": key} for key in gone],
                )
        return int(result.rowcount)

    async def plan(self, now: datetime, retention: timedelta) -> tuple[int, int]:
        """What a purge would do now: due rows, and the bytes of their blobs (each
        calendar object has a blob of its own)."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(func.count(), func.coalesce(func.sum(_O.size), 0)).where(
                        _due(now, retention)
                    )
                )
            ).one()
        return int(row[0]), int(row[1])
