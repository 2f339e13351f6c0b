"""The mailstore's shared core: storage handles and the SQL steps operations share.

A message blob is written (and durable) before the transaction that makes it
visible; if that transaction fails the blob is deleted again, or, after a
crash, left as an orphan for the sweeper. So a message is either wholly
visible or not at all (invariant 1 of docs/architecture.md). A blob is deleted only when it is
certain that no committed row refers to it: when the connection fails during
COMMIT, the transaction may have been committed, so the store looks for its
rows on a new connection; found, the operation succeeded; not found (or the
database still down), the failure stands and the blob is left to the orphan
sweep (:meth:`lightmail.storage.commit.BlobCommit._commit_new_blob`).

UIDs are reserved with an UPDATE of the mailbox row inside the same
transaction that inserts the messages, which serialises concurrent writers
to one mailbox on that row lock (invariant 2). The same UPDATE adds the new
messages to the mailbox's live totals (``live_count``, ``live_size``), and a
soft delete takes them off under that lock: a user's quota usage is the sum
of those totals over the user's mailboxes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail import clock
from lightmail.errors import (
    InvalidValue,
    KeywordLimitExceeded,
    MailboxNotFound,
    QuotaExceeded,
)
from lightmail.mailstore import names
from lightmail.mailstore.mime.scanner import MimeScanner
from lightmail.mailstore.rows import (
    COPIED_COLUMNS,
    MAILBOX_COLUMNS,
    LineEndings,
    chunks,
    live,
    mailbox_from_row,
    naive_utc,
    offset_minutes,
    parse_cache_values,
)
from lightmail.mailstore.types import (
    AppendResult,
    DeliveryOutcome,
    Flags,
    KeywordLimits,
    Mailbox,
    QuotaUsage,
    StoredMessage,
)
from lightmail.notify.bus import ChangeEvent, ChangeKind, NotificationBus
from lightmail.storage.blobs import BlobStore, new_blob_key
from lightmail.storage.commit import BlobCommit
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from lightmail.storage.db.prepared import PreparedRead, PreparedWrite, Rows

_T = TypeVar("_T")

# ``atom`` of RFC 3501 section 9: printable ASCII less atom-specials.
_ATOM_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('(){%*"\\]')

# The statements of every delivery and APPEND, built once: building one (and
# its cache key) costs more CPU than SQLite takes to run it. They run through
# Database.rows/execute (and Database.query), on SQLite without SQLAlchemy.
_INSERT_OBJECT_KEY = PreparedWrite(insert(t.object_keys), ("key", "size", "sha256", "created_at"))
# A new message row: where it is, and what a copy of it would copy.
_INSERT_MESSAGE = PreparedWrite(
    insert(t.messages), ("mailbox_id", "user_id", "uid", "modseq", *COPIED_COLUMNS)
)
_RESERVE_UIDS = PreparedWrite(
    update(t.mailboxes)
    .where(t.mailboxes.c.id == bindparam("mailbox_id"))
    .values(
        uidnext=t.mailboxes.c.uidnext + bindparam("count"),
        highestmodseq=t.mailboxes.c.highestmodseq + 1,
        live_count=t.mailboxes.c.live_count + bindparam("count"),
        live_size=t.mailboxes.c.live_size + bindparam("size"),
    )
)
# What a soft delete takes off the live totals: its rows, read with a lock, so
# that a row another transaction deleted first is not counted twice.
_LIVE_TOTALS_LOCKED = PreparedRead(
    select(func.count(), func.coalesce(func.sum(t.messages.c.size), 0))
    .where(
        live(bindparam("in_mailbox", type_=t.messages.c.mailbox_id.type)),
        t.messages.c.uid.in_(bindparam("uids", expanding=True)),
    )
    .with_for_update()
)
_TAKE_FROM_LIVE = PreparedWrite(
    update(t.mailboxes)
    .where(t.mailboxes.c.id == bindparam("mailbox_id"))
    .values(
        live_count=t.mailboxes.c.live_count - bindparam("count"),
        live_size=t.mailboxes.c.live_size - bindparam("size"),
    )
)
_KEYWORDS_LOCKED = PreparedRead(
    select(t.mailboxes.c.keywords)
    .where(t.mailboxes.c.id == bindparam("mailbox_id"))
    .with_for_update()
)
_SET_KEYWORDS = PreparedWrite(
    update(t.mailboxes)
    .where(t.mailboxes.c.id == bindparam("mailbox_id"))
    .values(keywords=bindparam("new_keywords"))
)
# An UPDATE's parameters are not named after its table's columns (SQLAlchemy
# keeps those names for the SET clause).
_SOFT_DELETE = PreparedWrite(
    update(t.messages)
    .where(
        live(bindparam("in_mailbox", type_=t.messages.c.mailbox_id.type)),
        t.messages.c.uid.in_(bindparam("uids", expanding=True)),
    )
    .values(deleted_at=bindparam("now"), modseq=bindparam("new_modseq"))
)
_RESERVED = PreparedRead(
    select(t.mailboxes.c.uidnext, t.mailboxes.c.highestmodseq).where(
        t.mailboxes.c.id == bindparam("mailbox_id")
    )
)
MAILBOX_BY_NAME = PreparedRead(
    select(*MAILBOX_COLUMNS).where(
        t.mailboxes.c.user_id == bindparam("user_id"),
        t.mailboxes.c.name_hash == bindparam("name_hash"),
    )
)
_QUOTA = PreparedRead(
    select(t.users.c.address, t.users.c.quota_bytes).where(t.users.c.id == bindparam("user_id"))
)
# A mailbox by name and its owner's quota (:data:`_QUOTA`) in one round trip.
_MAILBOX_AND_QUOTA = PreparedRead(
    select(*MAILBOX_COLUMNS, t.users.c.address, t.users.c.quota_bytes)
    .join_from(t.mailboxes, t.users, t.users.c.id == t.mailboxes.c.user_id)
    .where(
        t.mailboxes.c.user_id == bindparam("user_id"),
        t.mailboxes.c.name_hash == bindparam("name_hash"),
    )
)
_USAGE = PreparedRead(
    select(
        func.coalesce(func.sum(t.mailboxes.c.live_size), 0),
        func.coalesce(func.sum(t.mailboxes.c.live_count), 0),
    ).where(t.mailboxes.c.user_id == bindparam("user_id"))
)


class StoreCore(BlobCommit):
    """What every part of the mailstore shares: its storage, the bus, and the SQL
    steps more than one operation takes."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        bus: NotificationBus,
        keyword_limits: KeywordLimits | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.bus = bus
        self.keyword_limits = keyword_limits or KeywordLimits()

    def check_flags(self, flags: Iterable[str]) -> None:
        """Raise what storing ``flags`` on one message would (a keyword that is not an
        atom, too long, or too many of them), before an APPEND's data is read."""
        self._check_keywords(Flags.parse(flags).keywords)

    def may_create_keywords(self, mailbox: Mailbox) -> bool:
        """Whether a new keyword could still be defined in the mailbox (PERMANENTFLAGS'
        ``\\*``, RFC 3501 section 7.1)."""
        return len(mailbox.keywords) < self.keyword_limits.per_mailbox

    async def check_quota(self, user_id: int, size: int) -> None:
        """Raise QuotaExceeded if ``size`` more bytes would not fit (LMTP's RCPT check
        with the declared SIZE; delivery checks again with the real size)."""

        def read(rows: Rows) -> None:
            ((address, quota),) = rows(_QUOTA, {"user_id": user_id})
            if quota is not None:
                ((used, _),) = rows(_USAGE, {"user_id": user_id})
                _refuse_over_quota(address, quota, int(used), size)

        await self.db.query(read)

    async def usage(self, user_id: int) -> tuple[int, int]:
        """Bytes and number of the user's live messages (what the quota counts)."""
        async with self.db.read() as conn:
            return await self._usage(conn, user_id)

    async def quota(self, user_id: int) -> QuotaUsage:
        """The user's quota and what counts against it now (IMAP's QUOTA, RFC 9208)."""
        async with self.db.read() as conn:
            ((_, quota),) = await self.db.rows(conn, _QUOTA, {"user_id": user_id})
            size, messages = await self._usage(conn, user_id)
        return QuotaUsage(size, messages, quota)

    # -- internals -------------------------------------------------------

    async def _store_blob(self, source: AsyncIterable[bytes]) -> StoredMessage:
        """Stream the message into a new blob, parsing its structure on the way."""
        scanner = MimeScanner()
        endings = LineEndings()

        async def parsed_chunks() -> AsyncIterator[bytes]:
            async for chunk in source:
                scanner.feed(chunk)
                endings.feed(chunk)
                yield chunk

        key = new_blob_key()
        put = await self.blobs.put(key, parsed_chunks())
        return StoredMessage(key, put, scanner.close(), endings.bare_lf)

    async def _insert_object_key(self, conn: AsyncConnection, stored: StoredMessage) -> None:
        await self.db.execute(
            conn,
            _INSERT_OBJECT_KEY,
            {
                "key": stored.key,
                "size": stored.put.size,
                "sha256": stored.put.sha256,
                "created_at": clock.utcnow(),
            },
        )

    async def _insert_message(
        self,
        conn: AsyncConnection,
        mailbox: Mailbox,
        stored: StoredMessage,
        flags: Flags,
        internaldate: datetime,
    ) -> AppendResult:
        uid, modseq = await self._reserve_uids(conn, mailbox.id, 1, stored.put.size)
        await self.db.execute(
            conn,
            _INSERT_MESSAGE,
            {
                "mailbox_id": mailbox.id,
                "user_id": mailbox.user_id,
                "uid": uid,
                "modseq": modseq,
                "object_key": stored.key,
                "size": stored.put.size,
                "size_crlf": stored.put.size + stored.bare_lf,
                "internaldate": naive_utc(internaldate),
                "internaldate_offset": offset_minutes(internaldate),
                "flags": flags.system,
                "keywords": flags.keyword_text,
                **parse_cache_values(stored.parsed),
            },
        )
        return AppendResult(mailbox.id, mailbox.uidvalidity, uid)

    async def _reserve_uids(
        self, conn: AsyncConnection, mailbox_id: int, count: int, size: int
    ) -> tuple[int, int]:
        """Reserve ``count`` consecutive UIDs for as many messages of ``size`` bytes in
        all, which the caller makes live; return the first UID and the new modseq.

        The UPDATE takes the mailbox row's write lock until commit, so no other
        transaction can reserve the same UIDs (no ``UPDATE ... RETURNING`` on
        MariaDB 10.11: the values are read back in the same transaction). It
        adds the messages to the mailbox's live totals.
        """
        params = {"mailbox_id": mailbox_id, "count": count, "size": size}
        if await self.db.execute(conn, _RESERVE_UIDS, params) != 1:
            raise MailboxNotFound(str(mailbox_id))
        ((uidnext, modseq),) = await self.db.rows(conn, _RESERVED, params)
        return uidnext - count, modseq

    async def _bump_modseq(self, conn: AsyncConnection, mailbox_id: int) -> int:
        _, modseq = await self._reserve_uids(conn, mailbox_id, 0, 0)
        return modseq

    async def _soft_delete(
        self, conn: AsyncConnection, mailbox_id: int, uids: Sequence[int]
    ) -> None:
        """Soft-delete the live messages of ``uids`` and take them off the live totals."""
        modseq = await self._bump_modseq(conn, mailbox_id)
        now = clock.utcnow()
        count = size = 0
        for chunk in chunks(uids):
            rows = {"in_mailbox": mailbox_id, "uids": chunk}
            ((found, bytes_),) = await self.db.rows(conn, _LIVE_TOTALS_LOCKED, rows)
            count, size = count + int(found), size + int(bytes_)
            await self.db.execute(conn, _SOFT_DELETE, {**rows, "now": now, "new_modseq": modseq})
        if count:
            totals = {"mailbox_id": mailbox_id, "count": count, "size": size}
            await self.db.execute(conn, _TAKE_FROM_LIVE, totals)

    def _check_keywords(self, keywords: frozenset[str]) -> None:
        """Keyword names must be atoms no longer than the limit, and no more of them
        than one message may carry (RFC 3501 section 9, ``flag-keyword``)."""
        limits = self.keyword_limits
        for keyword in keywords:
            if not keyword or not _ATOM_CHARS.issuperset(keyword):
                raise InvalidValue(f"{keyword[:100]!r} is not a valid keyword")
            if len(keyword) > limits.length:
                raise KeywordLimitExceeded(
                    f"a keyword may be at most {limits.length} characters long"
                )
        if len(keywords) > limits.per_message:
            raise KeywordLimitExceeded(f"a message may have at most {limits.per_message} keywords")

    async def _define_keywords(
        self, conn: AsyncConnection, mailbox_id: int, keywords: frozenset[str]
    ) -> None:
        """Add ``keywords`` to the mailbox's keyword set, within its limit.

        The mailbox row is locked first (``FOR UPDATE``; SQLite's writer holds
        the database), so the count and the change are one step for concurrent
        transactions. When the set would grow past the limit, keywords no live
        message has any more are dropped from it first; if it still does not
        fit, KeywordLimitExceeded (and the caller's transaction rolls back).
        """
        if not keywords:
            return
        rows = await self.db.rows(conn, _KEYWORDS_LOCKED, {"mailbox_id": mailbox_id})
        if not rows:
            raise MailboxNotFound(str(mailbox_id))
        defined = frozenset(rows[0][0].split())
        if keywords <= defined:
            return
        wanted = defined | keywords
        limit = self.keyword_limits.per_mailbox
        if len(wanted) > limit:
            in_use = await conn.execute(
                select(t.messages.c.keywords)
                .distinct()
                .where(live(mailbox_id), t.messages.c.keywords != "")
            )
            wanted = frozenset(k for used in in_use for k in used.keywords.split()) | keywords
            if len(wanted) > limit:
                raise KeywordLimitExceeded(f"a mailbox may have at most {limit} keywords")
        params = {"mailbox_id": mailbox_id, "new_keywords": " ".join(sorted(wanted))}
        await self.db.execute(conn, _SET_KEYWORDS, params)

    async def _usage(self, conn: AsyncConnection, user_id: int) -> tuple[int, int]:
        ((size, messages),) = await self.db.rows(conn, _USAGE, {"user_id": user_id})
        return int(size), int(messages)

    async def _check_quota(self, conn: AsyncConnection, user_id: int, size: int) -> None:
        ((address, limit),) = await self.db.rows(conn, _QUOTA, {"user_id": user_id})
        await self._enforce(conn, Quota(user_id, address, limit), size)

    async def _enforce(self, conn: AsyncConnection, quota: Quota, size: int) -> None:
        """QuotaExceeded when ``size`` more bytes do not fit in ``quota``; what the user's
        messages take is summed only when there is a limit."""
        if quota.limit is not None:
            used, _ = await self._usage(conn, quota.user_id)
            _refuse_over_quota(quota.address, quota.limit, used, size)

    async def _mailbox_and_quota(
        self, conn: AsyncConnection, user_id: int, name: str
    ) -> tuple[Mailbox, Quota] | None:
        """The user's mailbox ``name`` (normalized) and the user's quota, or None."""
        rows = await self.db.rows(conn, _MAILBOX_AND_QUOTA, self._by_name(user_id, name))
        if not rows:
            return None
        *_, address, limit = rows[0]
        return mailbox_from_row(rows[0]), Quota(user_id, address, limit)

    @staticmethod
    def _by_name(user_id: int, name: str) -> dict[str, object]:
        """The parameters of :data:`MAILBOX_BY_NAME` for a normalized name."""
        return {"user_id": user_id, "name_hash": names.name_hash(name)}

    @staticmethod
    def _found(rows: Sequence[Sequence[Any]], name: str, *, try_create: bool = False) -> Mailbox:
        """The mailbox of :data:`MAILBOX_BY_NAME`'s rows, or MailboxNotFound."""
        if not rows:
            raise StoreCore._not_found(name, try_create=try_create)
        return mailbox_from_row(rows[0])

    @staticmethod
    def _not_found(name: str, *, try_create: bool = False) -> MailboxNotFound:
        """The error for a missing mailbox; ``try_create``: the client may create it
        and try again (never for INBOX, which exists while its user does)."""
        return MailboxNotFound(name, try_create=try_create and name != names.INBOX)

    async def _mailbox_row(
        self, conn: AsyncConnection, user_id: int, name: str
    ) -> tuple[Any, ...] | None:
        """The row of :data:`MAILBOX_BY_NAME`, or None."""
        rows = await self.db.rows(conn, MAILBOX_BY_NAME, self._by_name(user_id, name))
        return rows[0] if rows else None

    async def _find_mailbox(
        self, conn: AsyncConnection, user_id: int, name: str, *, try_create: bool = False
    ) -> Mailbox:
        row = await self._mailbox_row(conn, user_id, name)
        return self._found([] if row is None else [row], name, try_create=try_create)

    async def _insert_mailbox(
        self, conn: AsyncConnection, user_id: int, name: str, special_use: str | None
    ) -> Mailbox:
        """Insert a mailbox with a UIDVALIDITY never used before by this user."""
        row = (
            await conn.execute(select(t.users.c.next_uidvalidity).where(t.users.c.id == user_id))
        ).one()
        uidvalidity = max(row.next_uidvalidity, int(datetime.now(UTC).timestamp()))
        await conn.execute(
            update(t.users).where(t.users.c.id == user_id).values(next_uidvalidity=uidvalidity + 1)
        )
        result = await conn.execute(
            insert(t.mailboxes).values(
                user_id=user_id,
                name=name,
                name_hash=names.name_hash(name),
                uidvalidity=uidvalidity,
                uidnext=1,
                highestmodseq=1,
                special_use=special_use,
                created_at=clock.utcnow(),
            )
        )
        (mailbox_id,) = result.inserted_primary_key or (None,)
        if mailbox_id is None:
            raise RuntimeError("the database returned no id for the new mailbox")
        return Mailbox(mailbox_id, user_id, name, uidvalidity, 1, 1, special_use, ())

    async def _subscribe(self, conn: AsyncConnection, user_id: int, name: str) -> None:
        exists = await conn.execute(
            select(t.subscriptions.c.id).where(
                t.subscriptions.c.user_id == user_id,
                t.subscriptions.c.name_hash == names.name_hash(name),
            )
        )
        if exists.first() is None:
            await conn.execute(
                insert(t.subscriptions).values(
                    user_id=user_id, name=name, name_hash=names.name_hash(name)
                )
            )

    async def _quota_error(self, conn: AsyncConnection, user_id: int, size: int) -> QuotaExceeded:
        ((address, quota),) = await self.db.rows(conn, _QUOTA, {"user_id": user_id})
        used, _ = await self._usage(conn, user_id)
        return QuotaExceeded(address, quota or 0, used, size)

    async def _announce_added(self, outcomes: Iterable[DeliveryOutcome]) -> None:
        """Publish MESSAGES_ADDED for every mailbox a delivery added a message to."""
        for outcome in outcomes:
            if outcome.result is not None:
                await self.bus.publish(
                    ChangeEvent(
                        outcome.recipient.user_id,
                        ChangeKind.MESSAGES_ADDED,
                        outcome.result.mailbox_id,
                    )
                )


@dataclass(frozen=True, slots=True)
class Quota:
    """A user's storage limit in bytes (None: no limit) and the address it is reported for."""

    user_id: int
    address: str
    limit: int | None


def _refuse_over_quota(address: str, quota: int, used: int, size: int) -> None:
    """QuotaExceeded when ``size`` more bytes do not fit in ``quota`` with ``used``."""
    if used + size > quota:
        raise QuotaExceeded(address, quota, used, size)
