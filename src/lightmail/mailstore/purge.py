"""Soft-deleted messages: restoring them, and purging them for the garbage collector."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Executable,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail.errors import (
    MailboxNotFound,
    NotFound,
)
from lightmail.mailstore.core import StoreCore
from lightmail.mailstore.rows import (
    FORGET_EXPUNGES,
    MAILBOX_COLUMNS,
    aware,
    chunks,
    mailbox_from_row,
    same_mailbox,
)
from lightmail.mailstore.types import (
    AppendResult,
    DeletedMessage,
)
from lightmail.notify.bus import ChangeEvent, ChangeKind
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database

_RESTORABLE = and_(t.messages.c.deleted_at.is_not(None), t.messages.c.purge_claimed_until.is_(None))
"""Soft-deleted and not yet claimed by the garbage collector: it can come back."""


class DeletedMail(StoreCore):
    async def list_deleted(
        self, user_id: int, *, after_id: int = 0, limit: int = 100
    ) -> list[DeletedMessage]:
        """The user's restorable messages, by id, starting after ``after_id``."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    *t.columns(
                        t.messages,
                        "id",
                        "mailbox_id",
                        "uid",
                        "size",
                        "internaldate",
                        "deleted_at",
                        "subject",
                        "from_addr",
                    ),
                    *t.columns(t.mailboxes, "name", "created_at"),
                )
                .select_from(
                    t.messages.outerjoin(t.mailboxes, t.mailboxes.c.id == t.messages.c.mailbox_id)
                )
                .where(t.messages.c.user_id == user_id, _RESTORABLE, t.messages.c.id > after_id)
                .order_by(t.messages.c.id)
                .limit(limit)
            )
            return [
                DeletedMessage(
                    id=row.id,
                    mailbox_id=row.mailbox_id,
                    mailbox=row.name if same_mailbox(row.created_at, row.deleted_at) else None,
                    uid=row.uid,
                    size=row.size,
                    internaldate=aware(row.internaldate),
                    deleted_at=aware(row.deleted_at),
                    subject=row.subject,
                    from_addr=row.from_addr,
                )
                for row in rows
            ]

    async def restore(self, user_id: int, message_id: int) -> AppendResult:
        """Undelete a soft-deleted message into the mailbox it came from, with a new UID.

        A message the garbage collector has claimed is gone for good
        (:class:`~lightmail.errors.NotFound`); so is one whose mailbox was
        deleted since (:class:`~lightmail.errors.MailboxNotFound`). The
        restored message loses ``\\Deleted`` and counts against the quota again.
        """

        async def write(conn: AsyncConnection) -> AppendResult:
            # The row lock orders this against the garbage collector's claim:
            # whichever commits second sees the other's change.
            row = (
                await conn.execute(
                    select(
                        *t.columns(
                            t.messages, "mailbox_id", "size", "deleted_at", "keywords", "modseq"
                        )
                    )
                    .where(
                        t.messages.c.id == message_id, t.messages.c.user_id == user_id, _RESTORABLE
                    )
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"no restorable deleted message {message_id}")
            found = (
                await conn.execute(
                    select(*MAILBOX_COLUMNS, t.mailboxes.c.created_at).where(
                        t.mailboxes.c.id == row.mailbox_id, t.mailboxes.c.user_id == user_id
                    )
                )
            ).one_or_none()
            if found is None or not same_mailbox(found.created_at, row.deleted_at):
                raise MailboxNotFound(f"the mailbox message {message_id} was deleted from")
            await self._check_quota(conn, user_id, row.size)
            await self._define_keywords(conn, row.mailbox_id, frozenset(row.keywords.split()))
            # The row that recorded the expunge of its old UID becomes the new one.
            await conn.execute(
                FORGET_EXPUNGES, {"mailbox_id": row.mailbox_id, "modseq": row.modseq}
            )
            uid, modseq = await self._reserve_uids(conn, row.mailbox_id, 1, row.size)
            await conn.execute(
                update(t.messages)
                .where(t.messages.c.id == message_id)
                .values(
                    uid=uid,
                    modseq=modseq,
                    deleted_at=None,
                    # Else the next EXPUNGE of the mailbox would take it again.
                    flags=t.messages.c.flags.op("&")(~t.FLAG_DELETED),
                )
            )
            mailbox = mailbox_from_row(found)
            return AppendResult(mailbox.id, mailbox.uidvalidity, uid)

        restored = await self.db.transact(write)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, restored.mailbox_id))
        return restored


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one garbage collector run did (or, with ``dry_run``, would do)."""

    started_at: datetime  # naive UTC, like every timestamp in the database
    finished_at: datetime
    dry_run: bool
    messages_purged: int
    blobs_deleted: int  # blobs of purged messages (orphans not included)
    bytes_freed: int  # by purged blobs and orphans
    orphans_deleted: int
    error: str | None = None
    incomplete_removed: int = 0  # unfinished blob writes (not recorded in gc_runs)
    calendar_objects_purged: int = 0  # (not recorded in gc_runs)


# The GcReport fields a gc_runs row keeps.
_RUN_FIELDS = (
    "started_at",
    "finished_at",
    "messages_purged",
    "blobs_deleted",
    "bytes_freed",
    "orphans_deleted",
    "error",
)
_KEPT_RUNS = 1000  # rows of gc_runs kept


@dataclass(frozen=True, slots=True)
class Claim:
    """A batch of soft-deleted messages one garbage collector worker now holds."""

    ids: list[int]
    keys: list[str]  # the blobs they use, sorted


def due_rows(table: Table, now: datetime, retention: timedelta) -> ColumnElement[bool]:
    """Soft-deleted rows of ``table`` (messages, calendar objects) a garbage collector
    worker may claim now: deleted before retention, and not held by another."""
    c = table.c
    return and_(
        c.deleted_at.is_not(None),
        c.deleted_at <= now - retention,
        or_(c.purge_claimed_until.is_(None), c.purge_claimed_until < now),
    )


async def claim_rows(
    db: Database, table: Table, due: ColumnElement[bool], limit: int, until: datetime
) -> Claim:
    """Hold up to ``limit`` ``due`` rows of ``table`` until ``until``, in one
    transaction; rows another worker is claiming are skipped (``SKIP LOCKED``).

    On a Galera cluster SKIP LOCKED sees only this node's locks: two nodes may
    pick the same rows, and certification rolls one claim back; it runs again
    and picks others."""
    c = table.c

    async def write(conn: AsyncConnection) -> Claim:
        rows = (
            await conn.execute(
                select(c.id, c.object_key)
                .where(due)
                .order_by(c.deleted_at, c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        ids = [row.id for row in rows]
        for chunk in chunks(ids):
            await conn.execute(
                update(table).where(c.id.in_(chunk)).values(purge_claimed_until=until)
            )
        return Claim(ids, sorted({row.object_key for row in rows}))

    return await db.transact(write)


async def unused_object_keys(
    db: Database, keys: Sequence[str], users: Callable[[list[str]], Executable]
) -> dict[str, int]:
    """Of ``keys``, those no row ``users(chunk)`` selects refers to, with their sizes.
    A key without an ``object_keys`` row was freed by an earlier, interrupted batch:
    it is listed again (size unknown, so 0) so its blob is deleted again."""
    unused: dict[str, int] = {}
    async with db.read() as conn:
        for chunk in chunks(keys):
            rows = await conn.execute(
                select(t.object_keys.c.key, t.object_keys.c.size).where(
                    t.object_keys.c.key.in_(chunk)
                )
            )
            sizes = {row.key: row.size for row in rows}
            kept = set((await conn.execute(users(list(chunk)))).scalars())
            unused.update({key: sizes.get(key, 0) for key in chunk if key not in kept})
    return unused


async def lock_object_keys(conn: AsyncConnection, keys: Sequence[str]) -> None:
    """Lock the ``object_keys`` rows of ``keys`` (by primary key, in order), so two
    workers finishing batches that share a blob cannot both leave its row."""
    for key_chunk in chunks(keys):
        await conn.execute(
            select(t.object_keys.c.key)
            .with_hint(t.object_keys, "FORCE INDEX (PRIMARY)", "mysql")
            .where(t.object_keys.c.key.in_(key_chunk))
            .order_by(t.object_keys.c.key)
            .with_for_update()
        )


async def forget_object_keys(
    conn: AsyncConnection, keys: Sequence[str], users: Callable[[list[str]], Executable]
) -> None:
    """Delete the ``object_keys`` rows of ``keys`` that no row ``users(chunk)``
    selects refers to any more (after the rows that did were deleted)."""
    gone: list[str] = []
    for key_chunk in chunks(keys):
        used = await conn.execute(users(list(key_chunk)))
        gone.extend(sorted(set(key_chunk) - set(used.scalars())))
    if gone:
        await conn.execute(
            delete(t.object_keys).where(t.object_keys.c.key == bindparam("gone_key")),
            [{"gone_key": key} for key in gone],
        )


@dataclass(frozen=True, slots=True)
class DeletedTotals:
    messages: int  # soft-deleted and not yet purged
    bytes: int
    due: int  # of those, deleted before the cutoff


class Purge:
    """The garbage collector's SQL on ``messages``, ``object_keys`` and ``gc_runs``; the collector
    (:mod:`lightmail.gc.collector`) keeps the policy: batches, leases, retries, metrics.

    The shared-blob rule is the mailstore's: a blob goes only when no unclaimed
    message and no quarantine entry refers to it.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def due(now: datetime, retention: timedelta) -> ColumnElement[bool]:
        """Messages a worker may claim now: deleted before retention, not held."""
        return due_rows(t.messages, now, retention)

    async def claim(
        self, now: datetime, retention: timedelta, limit: int, lease: timedelta
    ) -> Claim:
        """Step 1: hold up to ``limit`` due messages until ``now + lease`` (one
        transaction); from its commit on they can no longer be restored."""
        return await claim_rows(self.db, t.messages, self.due(now, retention), limit, now + lease)

    async def unused_keys(self, keys: Sequence[str]) -> dict[str, int]:
        """Step 2's list: of ``keys``, those no unclaimed message and no quarantine
        entry uses, with their sizes."""
        m = t.messages.c
        return await unused_object_keys(
            self.db,
            keys,
            lambda chunk: (
                select(m.object_key)
                .where(m.object_key.in_(chunk), m.purge_claimed_until.is_(None))
                .union(
                    select(t.quarantine.c.object_key).where(t.quarantine.c.object_key.in_(chunk))
                )
            ),
        )

    async def delete_rows(self, ids: Sequence[int], keys: Sequence[str]) -> int:
        """Step 3 (one transaction): the claimed ``messages`` rows, then the
        ``object_keys`` rows no message or quarantine entry refers to any more.
        Each mailbox's ``purged_modseq`` is raised to the expunges whose rows go
        (QRESYNC then knows it can no longer list them by UID).

        The ``object_keys`` rows are locked first, so two workers finishing
        batches that share a blob cannot both leave its row. Every statement
        finds its rows by primary key, so none scans (and locks) rows of
        another worker's batch, which a small table would otherwise invite the
        MySQL/MariaDB planner to do. A conflict raises TransactionConflict.
        """
        async with self.db.write() as conn:
            await lock_object_keys(conn, keys)
            purged: dict[int, int] = {}
            for id_chunk in chunks(ids):
                rows = await conn.execute(
                    select(t.messages.c.mailbox_id, func.max(t.messages.c.modseq))
                    .where(t.messages.c.id.in_(id_chunk))
                    .group_by(t.messages.c.mailbox_id)
                )
                for mailbox_id, modseq in rows:
                    purged[mailbox_id] = max(modseq, purged.get(mailbox_id, 0))
            if purged:
                await conn.execute(
                    FORGET_EXPUNGES,
                    [{"mailbox_id": k, "modseq": v} for k, v in sorted(purged.items())],
                )
            result = await conn.execute(
                delete(t.messages).where(t.messages.c.id == bindparam("message_id")),
                [{"message_id": message_id} for message_id in ids],
            )
            deleted = int(result.rowcount)
            await forget_object_keys(
                conn,
                keys,
                lambda chunk: (
                    select(t.messages.c.object_key)
                    .where(t.messages.c.object_key.in_(chunk))
                    .union(
                        select(t.quarantine.c.object_key).where(
                            t.quarantine.c.object_key.in_(chunk)
                        )
                    )
                ),
            )
        return deleted

    async def plan(self, now: datetime, retention: timedelta) -> tuple[int, int, int]:
        """What a purge would do now, changing nothing: due messages, and the
        number and bytes of the blobs it would delete."""
        m = t.messages.c
        due = self.due(now, retention)
        doomed_or_due = or_(due, m.purge_claimed_until.is_not(None))
        async with self.db.read() as conn:
            messages = int((await conn.execute(select(func.count()).where(due))).scalar_one())
            due_keys = select(m.object_key).where(due)
            rows = await conn.execute(
                select(m.object_key, func.max(t.object_keys.c.size))
                .select_from(t.messages.join(t.object_keys))
                .where(
                    m.object_key.in_(due_keys),
                    m.object_key.not_in(select(t.quarantine.c.object_key)),
                )
                .group_by(m.object_key)
                .having(func.sum(case((doomed_or_due, 0), else_=1)) == 0)
            )
            sizes = [int(size) for _, size in rows]
        return messages, len(sizes), sum(sizes)

    async def due_count(self, now: datetime, retention: timedelta) -> int:
        async with self.db.read() as conn:
            return int(
                (
                    await conn.execute(select(func.count()).where(self.due(now, retention)))
                ).scalar_one()
            )

    async def deleted_totals(self, cutoff: datetime) -> DeletedTotals:
        """Soft-deleted messages not yet purged, and how many were deleted by ``cutoff``."""
        deleted = t.messages.c.deleted_at
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(t.messages.c.size), 0),
                        func.coalesce(func.sum(case((deleted <= cutoff, 1), else_=0)), 0),
                    ).where(deleted.is_not(None))
                )
            ).one()
        return DeletedTotals(int(row[0]), int(row[1]), int(row[2]))

    async def known_keys(self, keys: Sequence[str]) -> set[str]:
        """Of ``keys``, those with an ``object_keys`` row (the orphan sweep's check)."""
        async with self.db.read() as conn:
            return set(
                (
                    await conn.execute(
                        select(t.object_keys.c.key).where(t.object_keys.c.key.in_(keys))
                    )
                ).scalars()
            )

    async def record_run(self, node: str, report: GcReport) -> None:
        """Add a real run to ``gc_runs``, keeping the latest rows only."""
        async with self.db.write() as conn:
            result = await conn.execute(
                insert(t.gc_runs).values(
                    node=node[:255], **{field: getattr(report, field) for field in _RUN_FIELDS}
                )
            )
            (run_id,) = result.inserted_primary_key or (0,)
            await conn.execute(delete(t.gc_runs).where(t.gc_runs.c.id <= run_id - _KEPT_RUNS))

    async def last_run(self) -> GcReport | None:
        """The latest recorded run of any node."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(t.gc_runs).order_by(t.gc_runs.c.id.desc()).limit(1))
            ).one_or_none()
        if row is None:
            return None
        return GcReport(dry_run=False, **{field: row._mapping[field] for field in _RUN_FIELDS})
