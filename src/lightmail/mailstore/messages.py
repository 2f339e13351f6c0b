"""Changing and reading the messages of a mailbox: COPY, MOVE, STORE, EXPUNGE, FETCH."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail.errors import (
    KeywordLimitExceeded,
    MailboxNotFound,
)
from lightmail.mailstore import names
from lightmail.mailstore.core import StoreCore
from lightmail.mailstore.rows import (
    COPIED_COLUMNS,
    INFO_COLUMNS,
    LIVE,
    SORT_KEY_COLUMNS,
    aware,
    chunks,
    info_from_row,
    live,
    sort_keys_from_row,
)
from lightmail.mailstore.types import (
    CopyResult,
    Expunged,
    Flags,
    Mailbox,
    MessageInfo,
    MessageMeta,
    MessageSortKeys,
    StoreMode,
    StoreResult,
)
from lightmail.notify.bus import ChangeEvent, ChangeKind
from lightmail.storage.db import tables as t
from lightmail.storage.db.prepared import PreparedRead, PreparedWrite, Rows

# What every FETCH, SEARCH, STORE and reload of a selected mailbox runs, built
# once: building a statement costs more CPU than SQLite takes to run it.
_UIDS = t.messages.c.uid.in_(bindparam("uids", expanding=True))
_LISTED = (
    select(*INFO_COLUMNS)
    .where(LIVE, t.messages.c.uid > bindparam("after_uid"))
    .order_by(t.messages.c.uid)
)
_LISTING = PreparedRead(_LISTED)
_LISTING_FIRST = PreparedRead(_LISTED.limit(bindparam("limit")))
_INFO_ROWS = PreparedRead(select(*INFO_COLUMNS).where(LIVE, _UIDS).order_by(t.messages.c.uid))
_EXPUNGED_SINCE = PreparedRead(
    select(t.messages.c.uid)
    .where(
        t.messages.c.mailbox_id == bindparam("mailbox_id"),
        t.messages.c.deleted_at.is_not(None),
        t.messages.c.modseq > bindparam("modseq"),
    )
    .order_by(t.messages.c.uid)
)
_PURGED_MODSEQ = PreparedRead(
    select(t.mailboxes.c.purged_modseq).where(t.mailboxes.c.id == bindparam("mailbox_id"))
)
_CHANGED_SINCE = PreparedRead(
    select(*INFO_COLUMNS)
    .where(LIVE, t.messages.c.modseq > bindparam("modseq"))
    .order_by(t.messages.c.uid)
)
# What _meta_from_row reads after INFO_COLUMNS.
_META_COLUMNS = ("header", "envelope", "bodystructure", "thread_message_id", "thread_references")
_META_ROWS = PreparedRead(
    select(*INFO_COLUMNS, *t.columns(t.messages, *_META_COLUMNS))
    .where(LIVE, _UIDS)
    .order_by(t.messages.c.uid)
)
_SORT_ROWS = PreparedRead(
    select(*t.columns(t.messages, "uid", "sent_date", *SORT_KEY_COLUMNS))
    .where(LIVE, _UIDS)
    .order_by(t.messages.c.uid)
)
_STORE_SELECT = (
    select(*INFO_COLUMNS, t.messages.c.id)
    .where(LIVE, t.messages.c.user_id == bindparam("user_id"), _UIDS)
    .order_by(t.messages.c.uid)
)
_STORE_ROWS = PreparedRead(_STORE_SELECT)
_ROW_ID = len(INFO_COLUMNS)  # where a _STORE_SELECT row has its id
_STORE_ROWS_LOCKED = PreparedRead(_STORE_SELECT.with_for_update())
_SET_FLAGS = PreparedWrite(
    update(t.messages)
    .where(t.messages.c.id == bindparam("row_id"))
    .values(
        flags=bindparam("new_flags"),
        keywords=bindparam("new_keywords"),
        modseq=bindparam("new_modseq"),
    )
)
_DELETED_UIDS = PreparedRead(
    select(t.messages.c.uid).where(
        LIVE,
        t.messages.c.user_id == bindparam("user_id"),
        t.messages.c.flags.op("&")(t.FLAG_DELETED) != 0,
    )
)


# The live messages above the mailbox's last claimed UID, in one statement: a row
# with a NULL uid when there are none, no row when the mailbox is gone.
_UNCLAIMED = PreparedRead(
    select(t.messages.c.uid)
    .select_from(t.mailboxes)
    .outerjoin(
        t.messages,
        and_(
            t.messages.c.mailbox_id == t.mailboxes.c.id,
            t.messages.c.deleted_at.is_(None),
            t.messages.c.uid > t.mailboxes.c.recent_uid,
        ),
    )
    .where(t.mailboxes.c.id == bindparam("mailbox_id"))
    .order_by(t.messages.c.uid)
)


class Messages(StoreCore):
    async def copy(
        self, user_id: int, source: Mailbox, uids: Sequence[int], dest_name: str
    ) -> CopyResult:
        """COPY (RFC 3501 section 6.4.7): the copies share the originals' blobs, but
        count against the quota as any message does (QuotaExceeded, nothing copied)."""
        dest_id, result = await self._copy(user_id, source, uids, dest_name, move=False)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, dest_id))
        return result

    async def move(
        self, user_id: int, source: Mailbox, uids: Sequence[int], dest_name: str
    ) -> CopyResult:
        """MOVE (RFC 6851): copy and expunge the originals, in one transaction; the
        quota is not checked, since the account's usage does not change."""
        dest_id, result = await self._copy(user_id, source, uids, dest_name, move=True)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, dest_id))
        if result.source_uids:
            await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, source.id))
        return result

    async def _copy(
        self, user_id: int, source: Mailbox, uids: Sequence[int], dest_name: str, *, move: bool
    ) -> tuple[int, CopyResult]:
        dest_name = names.normalize(dest_name)

        async def write(conn: AsyncConnection) -> tuple[int, CopyResult]:
            dest = await self._find_mailbox(conn, user_id, dest_name, try_create=True)
            rows: list[t.AnyRow] = []
            for chunk in chunks(sorted(set(uids))):
                result = await conn.execute(
                    select(*t.columns(t.messages, "uid", *COPIED_COLUMNS))
                    .where(
                        live(source.id),
                        t.messages.c.user_id == user_id,
                        t.messages.c.uid.in_(chunk),
                    )
                    .order_by(t.messages.c.uid)
                )
                rows.extend(result)
            if not rows:
                return dest.id, CopyResult(dest.uidvalidity, (), ())
            size = sum(row.size for row in rows)
            if not move:  # a MOVE within the account leaves its usage as it was
                await self._check_quota(conn, user_id, size)
            copied = frozenset(keyword for row in rows for keyword in row.keywords.split())
            await self._define_keywords(conn, dest.id, copied)
            first_uid, modseq = await self._reserve_uids(conn, dest.id, len(rows), size)
            await conn.execute(
                insert(t.messages),
                [
                    {
                        **{name: row._mapping[name] for name in COPIED_COLUMNS},
                        "mailbox_id": dest.id,
                        "user_id": user_id,
                        "uid": first_uid + index,
                        "modseq": modseq,
                    }
                    for index, row in enumerate(rows)
                ],
            )
            source_uids = tuple(row.uid for row in rows)
            if move:
                await self._soft_delete(conn, source.id, source_uids)
            dest_uids = tuple(range(first_uid, first_uid + len(rows)))
            return dest.id, CopyResult(dest.uidvalidity, source_uids, dest_uids)

        return await self.db.transact(write)

    # -- changing messages -----------------------------------------------

    async def store_flags(
        self,
        user_id: int,
        mailbox: Mailbox,
        uids: Sequence[int],
        mode: StoreMode,
        flags: Iterable[str],
        *,
        unchangedsince: int | None = None,
    ) -> StoreResult:
        """STORE (RFC 3501 section 6.4.6), conditional with ``unchangedsince`` (RFC 7162
        section 3.1.3: a message whose mod-sequence is above it is left alone).

        The changed messages all get one new mod-sequence; a message whose flags
        are already as asked keeps its own (RFC 7162 section 3.1.11). A change
        that would pass a keyword limit raises KeywordLimitExceeded and changes
        nothing; the mailbox row is locked for the count, so concurrent
        sessions cannot pass the limit together. A conditional STORE reads its
        rows with a lock (``FOR UPDATE``), so the test and the change are one
        step for concurrent writers.
        """
        change = Flags.parse(flags)
        self._check_keywords(change.keywords)
        if not uids:
            return StoreResult([], [], [])
        query = _STORE_ROWS if unchangedsince is None else _STORE_ROWS_LOCKED

        async def write(conn: AsyncConnection) -> tuple[StoreResult, int | None]:
            result = StoreResult([], [], [])
            if mode is not StoreMode.REMOVE:
                await self._define_keywords(conn, mailbox.id, change.keywords)
            rows: list[tuple[Any, ...]] = []
            for chunk in chunks(sorted(set(uids))):
                params = {"mailbox_id": mailbox.id, "user_id": user_id, "uids": chunk}
                rows.extend(await self.db.rows(conn, query, params))
            updates: list[tuple[MessageInfo, int, Flags]] = []
            limits = self.keyword_limits
            for row in rows:  # INFO_COLUMNS, then the row's id
                info = info_from_row(row)
                if unchangedsince is not None and info.modseq > unchangedsince:
                    result.modified.append(info)
                    continue
                new = mode.apply(info.flags, change)
                if new == info.flags:
                    result.unchanged.append(info)
                    continue
                if len(new.keywords) > max(len(info.flags.keywords), limits.per_message):
                    raise KeywordLimitExceeded(
                        f"a message may have at most {limits.per_message} keywords"
                    )
                updates.append((info, row[_ROW_ID], new))
            if not updates:
                return result, None
            modseq = await self._bump_modseq(conn, mailbox.id)
            await self.db.execute(
                conn,
                _SET_FLAGS,
                [
                    {
                        "row_id": row_id,
                        "new_flags": new.system,
                        "new_keywords": new.keyword_text,
                        "new_modseq": modseq,
                    }
                    for _, row_id, new in updates
                ],
            )
            result.changed.extend(
                replace(info, flags=new, modseq=modseq) for info, _, new in updates
            )
            return result, modseq

        result, modseq = await self.db.transact(write)
        if modseq is not None:
            await self.bus.publish(
                ChangeEvent(user_id, ChangeKind.FLAGS_CHANGED, mailbox.id, modseq)
            )
        return result

    async def expunge(
        self, user_id: int, mailbox: Mailbox, uids: Sequence[int] | None = None
    ) -> list[int]:
        """EXPUNGE (RFC 3501 section 6.4.3), or UID EXPUNGE (RFC 4315) with ``uids``.

        Soft-deletes the messages flagged ``\\Deleted``; returns their UIDs.
        """

        async def write(conn: AsyncConnection) -> list[int]:
            params = {"mailbox_id": mailbox.id, "user_id": user_id}
            candidates = [uid for (uid,) in await self.db.rows(conn, _DELETED_UIDS, params)]
            if uids is not None:
                wanted = set(uids)
                candidates = [uid for uid in candidates if uid in wanted]
            if candidates:
                await self._soft_delete(conn, mailbox.id, candidates)
            return candidates

        candidates = await self.db.transact(write)
        if candidates:
            await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, mailbox.id))
        return sorted(candidates)

    async def delete_messages(self, user_id: int, mailbox: Mailbox, uids: Sequence[int]) -> None:
        """Soft-delete the given messages, flagged or not (POP3's DELE applied at QUIT).

        The same soft delete EXPUNGE does: the GC purges them after retention.
        """
        if not uids:
            return

        async def write(conn: AsyncConnection) -> None:
            await self._soft_delete(conn, mailbox.id, uids)

        await self.db.transact(write)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, mailbox.id))

    # -- reading ---------------------------------------------------------

    async def list_messages(
        self, mailbox: Mailbox, *, after_uid: int = 0, limit: int | None = None
    ) -> list[MessageInfo]:
        """The live messages of the mailbox above ``after_uid`` in UID order, in one
        query: all of them, or the first ``limit``."""
        params = {"mailbox_id": mailbox.id, "after_uid": after_uid, "limit": limit}
        rows = await self.db.fetch(_LISTING if limit is None else _LISTING_FIRST, params)
        return [info_from_row(row) for row in rows]

    async def changed_since(self, mailbox: Mailbox, modseq: int) -> list[MessageInfo]:
        """The live messages whose mod-sequence is above ``modseq``, in UID order
        (FETCH's CHANGEDSINCE, RFC 7162 section 3.1.4.1)."""
        rows = await self.db.fetch(_CHANGED_SINCE, {"mailbox_id": mailbox.id, "modseq": modseq})
        return [info_from_row(row) for row in rows]

    async def expunged_since(self, mailbox: Mailbox, modseq: int) -> Expunged:
        """The messages expunged after ``modseq`` (QRESYNC, RFC 7162 sections 3.2.5
        and 3.2.6): the soft-deleted rows expunged since, complete unless the
        mailbox's ``purged_modseq`` says an expunge since has lost its row."""
        return await self.db.query(lambda rows: _expunged_since(rows, mailbox, modseq))

    async def changes_since(
        self, mailbox: Mailbox, modseq: int
    ) -> tuple[list[MessageInfo], Expunged]:
        """What a view that was current at ``modseq`` must learn, read together: the
        live messages changed or added since (in UID order) and the expunges since."""

        def read(rows: Rows) -> tuple[list[MessageInfo], Expunged]:
            expunged = _expunged_since(rows, mailbox, modseq)
            changed = rows(_CHANGED_SINCE, {"mailbox_id": mailbox.id, "modseq": modseq})
            return [info_from_row(row) for row in changed], expunged

        return await self.db.query(read)

    async def fetch_infos(self, mailbox: Mailbox, uids: Sequence[int]) -> list[MessageInfo]:
        """Sizes, dates, flags and blob keys of the given messages, in UID order."""
        return [info_from_row(row) for row in await self._rows(_INFO_ROWS, mailbox, uids)]

    async def fetch_meta(self, mailbox: Mailbox, uids: Sequence[int]) -> list[MessageMeta]:
        """The cached parse of the given messages, in UID order, in batched queries
        (the envelope and body structure are decoded when first used)."""
        return [_meta_from_row(row) for row in await self._rows(_META_ROWS, mailbox, uids)]

    async def fetch_sort_keys(self, mailbox: Mailbox, uids: Sequence[int]) -> list[MessageSortKeys]:
        """The sent dates and cached SORT and THREAD keys (RFC 5256) of the given
        messages, in UID order."""
        return [
            MessageSortKeys(
                row[0], None if row[1] is None else aware(row[1]), sort_keys_from_row(row[2:])
            )
            for row in await self._rows(_SORT_ROWS, mailbox, uids)
        ]

    async def _rows(
        self, query: PreparedRead, mailbox: Mailbox, uids: Sequence[int]
    ) -> list[tuple[Any, ...]]:
        """Live message rows by UID (``_INFO_ROWS``, ``_META_ROWS`` or ``_SORT_ROWS``),
        one query per chunk of the list, in one read."""

        def read(rows: Rows) -> list[tuple[Any, ...]]:
            found: list[tuple[Any, ...]] = []
            for chunk in chunks(sorted(set(uids))):
                found += rows(query, {"mailbox_id": mailbox.id, "uids": chunk})
            return found

        return await self.db.query(read)

    def read_message(
        self, info: MessageInfo, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a message, or bytes ``start`` to ``end`` of it, from the blob store."""
        if start == 0 and end is None:
            return self.blobs.get(info.object_key)
        return self.blobs.get_range(info.object_key, start, info.size if end is None else end)

    async def claim_recent(self, mailbox: Mailbox, *, readonly: bool = False) -> list[int]:
        """The UIDs this session sees as ``\\Recent`` (RFC 3501 section 2.3.2).

        A message is recent in exactly one session: the first that selects
        the mailbox after it arrived claims it. A read-only session (EXAMINE)
        sees what no session has claimed yet, and claims nothing.
        """
        rows = await self.db.fetch(_UNCLAIMED, {"mailbox_id": mailbox.id})
        if not rows:
            raise MailboxNotFound(str(mailbox.id))
        unclaimed = [row[0] for row in rows if row[0] is not None]
        if readonly or not unclaimed:
            # Nothing to claim: no write transaction (and no wait for the write lock).
            return unclaimed

        async def write(conn: AsyncConnection) -> list[int]:
            claimed = await self._recent_uid(conn, mailbox.id, lock=True)
            uids = await self._live_uids_above(conn, mailbox.id, claimed)
            if uids:
                await conn.execute(
                    update(t.mailboxes)
                    .where(t.mailboxes.c.id == mailbox.id)
                    .values(recent_uid=uids[-1])
                )
            return uids

        return await self.db.transact(write)

    async def _recent_uid(
        self, conn: AsyncConnection, mailbox_id: int, *, lock: bool = False
    ) -> int:
        query = select(t.mailboxes.c.recent_uid).where(t.mailboxes.c.id == mailbox_id)
        value = (
            await conn.execute(query.with_for_update() if lock else query)
        ).scalar_one_or_none()
        if value is None:
            raise MailboxNotFound(str(mailbox_id))
        return int(value)

    async def _live_uids_above(self, conn: AsyncConnection, mailbox_id: int, uid: int) -> list[int]:
        rows = await conn.execute(
            select(t.messages.c.uid)
            .where(live(mailbox_id), t.messages.c.uid > uid)
            .order_by(t.messages.c.uid)
        )
        return [row.uid for row in rows]


def _expunged_since(rows: Rows, mailbox: Mailbox, modseq: int) -> Expunged:
    params = {"mailbox_id": mailbox.id, "modseq": modseq}
    purged = rows(_PURGED_MODSEQ, params)
    if not purged:
        raise MailboxNotFound(str(mailbox.id))
    uids = [uid for (uid,) in rows(_EXPUNGED_SINCE, params)]
    return Expunged(uids, complete=purged[0][0] <= modseq)


def _meta_from_row(row: Sequence[Any]) -> MessageMeta:
    """The cached parse of a ``_META_ROWS`` row: INFO_COLUMNS, then the parse's."""
    header, envelope, bodystructure, message_id, references = row[len(INFO_COLUMNS) :]
    return MessageMeta(
        info_from_row(row),
        header,
        envelope,
        bodystructure,
        references.split(" ", 1)[0] or message_id,
    )
