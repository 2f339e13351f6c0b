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

from sqlalchemy import bindparam, delete, func, select, update

from lightmail.mailstore.purge import (
    Claim,
    claim_rows,
    due_rows,
    forget_object_keys,
    lock_object_keys,
    unused_object_keys,
)
from lightmail.mailstore.rows import chunks
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database

_O = t.calendar_objects.c


class CalendarPurge:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, now: datetime, retention: timedelta, limit: int, lease: timedelta
    ) -> Claim:
        """Step 1: hold up to ``limit`` due rows until ``now + lease``."""
        due = due_rows(t.calendar_objects, now, retention)
        return await claim_rows(self.db, t.calendar_objects, due, limit, now + lease)

    async def unused_keys(self, keys: Sequence[str]) -> dict[str, int]:
        """Step 2's list: of ``keys``, those no unclaimed row uses, with their sizes."""
        return await unused_object_keys(
            self.db,
            keys,
            lambda chunk: select(_O.object_key).where(
                _O.object_key.in_(chunk), _O.purge_claimed_until.is_(None)
            ),
        )

    async def delete_rows(self, ids: Sequence[int], keys: Sequence[str]) -> int:
        """Step 3 (one transaction): raise each calendar's ``purged_modseq``, delete
        the claimed rows, then the ``object_keys`` rows no row refers to any more
        (locked first, as the message purge does)."""
        async with self.db.write() as conn:
            await lock_object_keys(conn, keys)
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
            await forget_object_keys(
                conn, keys, lambda chunk: select(_O.object_key).where(_O.object_key.in_(chunk))
            )
        return int(result.rowcount)

    async def plan(self, now: datetime, retention: timedelta) -> tuple[int, int]:
        """What a purge would do now: due rows, and the bytes of their blobs (each
        calendar object has a blob of its own)."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(func.count(), func.coalesce(func.sum(_O.size), 0)).where(
                        due_rows(t.calendar_objects, now, retention)
                    )
                )
            ).one()
        return int(row[0]), int(row[1])
