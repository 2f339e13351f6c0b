"""The mailstore: the one place that changes mail.

Every change is one SQL transaction plus blob writes, and publishes a
:class:`~lightmail.notify.bus.ChangeEvent` once committed. A message blob is
written (and durable) before the transaction that makes it visible; if that
transaction fails the blob is deleted again, or, after a crash, left as an
orphan for the sweeper. So a message is either wholly visible or not at all
(DESIGN invariant 1). A blob is deleted only when it is certain that no
committed row refers to it: when the connection fails during COMMIT, the
transaction may have been committed, so the store looks for its rows on a new
connection; found, the operation succeeded; not found (or the database still
down), the failure stands and the blob is left to the orphan sweep.

UIDs are reserved with an UPDATE of the mailbox row inside the same
transaction that inserts the messages, which serialises concurrent writers
to one mailbox on that row lock (invariant 2).

Protocol code calls this module and never SQL or the blob store directly.
Errors are those of :mod:`lightmail.errors`; nothing here formats a reply.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import sys
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail.errors import (
    CommitOutcomeUnknown,
    InvalidMailboxName,
    InvalidValue,
    KeywordLimitExceeded,
    MailboxExists,
    MailboxNotAllowed,
    MailboxNotFound,
    NotFound,
    QuotaExceeded,
    TemporaryFailure,
    TransactionConflict,
)
from lightmail.fairness import TimeSlice
from lightmail.mailstore import names
from lightmail.mailstore.mime.scanner import MimeScanner
from lightmail.mailstore.mime.types import BodyPart, Envelope, ParsedMessage
from lightmail.metrics import LOST_COMMITS
from lightmail.notify.bus import ChangeEvent, ChangeKind, NotificationBus
from lightmail.storage.blobs import BlobStore, PutResult, new_blob_key
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# IN (...) lists are cut into pieces of this many values (SQLite allows 32766).
_CHUNK = 500

SYSTEM_FLAGS: dict[str, int] = {
    "\\Seen": t.FLAG_SEEN,
    "\\Answered": t.FLAG_ANSWERED,
    "\\Flagged": t.FLAG_FLAGGED,
    "\\Deleted": t.FLAG_DELETED,
    "\\Draft": t.FLAG_DRAFT,
}
_SYSTEM_BY_FOLDED = {flag.lower(): flag for flag in SYSTEM_FLAGS}
# ``atom`` of RFC 3501 section 9: printable ASCII less atom-specials.
_ATOM_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('(){%*"\\]')


@dataclass(frozen=True, slots=True)
class KeywordLimits:
    """Bounds on keywords (RFC 3501 section 2.3.2), so no client can grow a mailbox's
    metadata, and every session's view of it, without limit ([imap] settings)."""

    per_mailbox: int = 100  # distinct keywords in one mailbox
    per_message: int = 50  # keywords on one message
    length: int = 64  # characters in one keyword name


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _zoned(value: datetime, offset_minutes: int) -> datetime:
    """A stored UTC instant in the zone it was given in (minutes east of UTC)."""
    if not offset_minutes:
        return value.replace(tzinfo=UTC)
    zone = timezone(timedelta(minutes=offset_minutes))
    return value.replace(tzinfo=UTC).astimezone(zone)


def _offset_minutes(value: datetime) -> int:
    """The zone of an aware datetime as whole minutes east of UTC (0 if naive)."""
    offset = value.utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _chunks(values: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass(frozen=True, slots=True)
class Flags:
    """System flags as a bit set plus keywords (RFC 3501 section 2.3.2)."""

    system: int = 0
    keywords: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, flags: Iterable[str]) -> Flags:
        """Split flag names into system flags and keywords.

        System flags match case-insensitively; ``\\Recent`` is a session
        property, never stored, and other backslash names are not keywords.
        """
        system, keywords = 0, set()
        for flag in flags:
            canonical = _SYSTEM_BY_FOLDED.get(flag.lower())
            if canonical is not None:
                system |= SYSTEM_FLAGS[canonical]
            elif not flag.startswith("\\"):
                keywords.add(flag)
        return cls(system, frozenset(keywords))

    @classmethod
    def from_row(cls, system: int, keywords: str) -> Flags:
        # Interned: the rows of a mailbox repeat the same few keywords, and a
        # listing of thousands of messages then holds each name once.
        return cls(system, frozenset(map(sys.intern, keywords.split())))

    def names(self) -> tuple[str, ...]:
        """Flag names in a stable order: system flags first, then keywords sorted."""
        system = tuple(name for name, bit in SYSTEM_FLAGS.items() if self.system & bit)
        return system + tuple(sorted(self.keywords))

    @property
    def keyword_text(self) -> str:
        return " ".join(sorted(self.keywords))


class StoreMode(enum.Enum):
    """STORE's FLAGS, +FLAGS and -FLAGS (RFC 3501 section 6.4.6)."""

    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"

    def apply(self, current: Flags, change: Flags) -> Flags:
        if self is StoreMode.REPLACE:
            return change
        if self is StoreMode.ADD:
            return Flags(current.system | change.system, current.keywords | change.keywords)
        return Flags(current.system & ~change.system, current.keywords - change.keywords)


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    user_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None
    # The keywords defined in the mailbox, sorted: every keyword a live message
    # has, and perhaps some no message has any more (FLAGS, RFC 3501 7.2.6).
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """The counts STATUS reports (RFC 3501 section 6.3.10), less \\Recent."""

    mailbox: Mailbox
    messages: int
    unseen: int
    size: int


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What a mailbox view needs of each message; read from SQL only."""

    uid: int
    modseq: int
    flags: Flags
    size: int
    internaldate: datetime
    object_key: str
    size_crlf: int  # ``size`` with every bare LF counted as CRLF (POP3's octet count)


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """The cached parse of a message: FETCH of these never reads the blob."""

    info: MessageInfo
    header: bytes
    envelope: Envelope
    body: BodyPart


@dataclass(frozen=True, slots=True)
class AppendResult:
    """APPENDUID's data (RFC 4315 section 3)."""

    mailbox_id: int
    uidvalidity: int
    uid: int


@dataclass(frozen=True, slots=True)
class CopyResult:
    """COPYUID's data (RFC 4315 section 3): source UIDs and the UIDs they got."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Recipient:
    """One copy of a delivery: a user and the mailbox it goes to (None = INBOX)."""

    user_id: int
    address: str
    mailbox: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    recipient: Recipient
    result: AppendResult | None = None
    error: QuotaExceeded | None = None


@dataclass(frozen=True, slots=True)
class DeletedMessage:
    """A soft-deleted message the garbage collector has not claimed: restorable."""

    id: int
    mailbox_id: int
    mailbox: str | None  # the name of the mailbox it came from; None if that is gone
    uid: int  # its UID before it was deleted
    size: int
    internaldate: datetime
    deleted_at: datetime
    subject: str
    from_addr: str


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    id: int
    sender: str
    recipients: tuple[str, ...]  # the envelope addresses it was sent to
    virus: str
    size: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredMessage:
    key: str
    put: PutResult
    parsed: ParsedMessage
    bare_lf: int  # line feeds not preceded by CR


class _LineEndings:
    """Counts bare LFs in a stream of chunks (a CR may end one chunk, its LF start the next)."""

    def __init__(self) -> None:
        self.bare_lf = 0
        self._after_cr = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        crlf = chunk.count(b"\r\n") + (1 if self._after_cr and chunk[0] == 0x0A else 0)
        self.bare_lf += chunk.count(b"\n") - crlf
        self._after_cr = chunk[-1] == 0x0D


def _mailbox(row: t.AnyRow) -> Mailbox:
    return Mailbox(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        uidvalidity=row.uidvalidity,
        uidnext=row.uidnext,
        highestmodseq=row.highestmodseq,
        special_use=row.special_use,
        keywords=tuple(row.keywords.split()),
    )


def _info(row: t.AnyRow) -> MessageInfo:
    return MessageInfo(
        uid=row.uid,
        modseq=row.modseq,
        flags=Flags.from_row(row.flags, row.keywords),
        size=row.size,
        internaldate=_zoned(row.internaldate, row.internaldate_offset),
        object_key=row.object_key,
        size_crlf=row.size_crlf,
    )


_MAILBOX_COLUMNS = (
    t.mailboxes.c.id,
    t.mailboxes.c.user_id,
    t.mailboxes.c.name,
    t.mailboxes.c.uidvalidity,
    t.mailboxes.c.uidnext,
    t.mailboxes.c.highestmodseq,
    t.mailboxes.c.special_use,
    t.mailboxes.c.keywords,
)
_INFO_COLUMNS = (
    t.messages.c.uid,
    t.messages.c.modseq,
    t.messages.c.flags,
    t.messages.c.keywords,
    t.messages.c.size,
    t.messages.c.internaldate,
    t.messages.c.internaldate_offset,
    t.messages.c.object_key,
    t.messages.c.size_crlf,
)
# Columns copied unchanged when a message is copied or moved.
_COPIED_COLUMNS = (
    "object_key",
    "size",
    "size_crlf",
    "internaldate",
    "internaldate_offset",
    "flags",
    "keywords",
    "header",
    "envelope",
    "bodystructure",
    "sent_date",
    "subject",
    "from_addr",
    "to_addr",
    "cc_addr",
    "bcc_addr",
    "message_id",
)


def _same_mailbox(mailbox_created: datetime | None, message_deleted: datetime) -> bool:
    """Whether a mailbox row is the one a message was deleted from.

    Mailbox ids can be reused (SQLite hands out the highest rowid again), but
    a mailbox created after the message was deleted cannot be where it was.
    """
    return mailbox_created is not None and mailbox_created <= message_deleted


def _live(mailbox_id: int) -> Any:
    return and_(t.messages.c.mailbox_id == mailbox_id, t.messages.c.deleted_at.is_(None))


class MailStore:
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

    # -- mailboxes -------------------------------------------------------

    async def create_user_mailboxes(self, conn: AsyncConnection, user_id: int) -> None:
        """Create INBOX and the special-use mailboxes of a new user, subscribed.

        Runs inside the caller's transaction, the one that creates the user.
        """
        for name, special_use in names.DEFAULT_MAILBOXES:
            await self._insert_mailbox(conn, user_id, name, special_use)
            await self._subscribe(conn, user_id, name)

    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*_MAILBOX_COLUMNS)
                .where(t.mailboxes.c.user_id == user_id)
                .order_by(t.mailboxes.c.name)
            )
            return [_mailbox(row) for row in rows]

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox:
        async with self.db.read() as conn:
            return await self._find_mailbox(conn, user_id, names.normalize(name))

    async def mailbox_by_id(self, user_id: int, mailbox_id: int) -> Mailbox:
        """The mailbox as it is now; MailboxNotFound once it was deleted."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(*_MAILBOX_COLUMNS).where(
                        t.mailboxes.c.id == mailbox_id, t.mailboxes.c.user_id == user_id
                    )
                )
            ).one_or_none()
        if row is None:
            raise MailboxNotFound(str(mailbox_id))
        return _mailbox(row)

    async def mailbox_status(self, user_id: int, name: str) -> MailboxStatus:
        async with self.db.read() as conn:
            mailbox = await self._find_mailbox(conn, user_id, names.normalize(name))
            seen = t.messages.c.flags.op("&")(t.FLAG_SEEN)
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(t.messages.c.size), 0),
                        func.coalesce(func.sum(case((seen == 0, 1), else_=0)), 0),
                    ).where(_live(mailbox.id))
                )
            ).one()
            return MailboxStatus(mailbox, messages=row[0], size=int(row[1]), unseen=int(row[2]))

    async def create_mailbox(self, user_id: int, name: str) -> Mailbox:
        """CREATE (RFC 3501 section 6.3.3): superior names are created as needed."""
        name = names.normalize(name)
        if name == names.INBOX:
            raise MailboxExists(name)
        async with self.db.write() as conn:
            if await self._mailbox_row(conn, user_id, name) is not None:
                raise MailboxExists(name)
            for parent in names.parents(name):
                if await self._mailbox_row(conn, user_id, parent) is None:
                    await self._insert_mailbox(conn, user_id, parent, None)
            mailbox = await self._insert_mailbox(conn, user_id, name, None)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MAILBOXES_CHANGED))
        return mailbox

    async def delete_mailbox(self, user_id: int, name: str) -> None:
        """DELETE (RFC 3501 section 6.3.4).

        The mailbox's messages are soft-deleted (the GC purges them). Its
        inferior mailboxes stay; the name then lives on only as their parent,
        which LIST shows as ``\\Noselect``.
        """
        name = names.normalize(name)
        if name == names.INBOX:
            raise MailboxNotAllowed("INBOX cannot be deleted")
        async with self.db.write() as conn:
            mailbox = await self._find_mailbox(conn, user_id, name)
            await conn.execute(
                update(t.messages).where(_live(mailbox.id)).values(deleted_at=utcnow())
            )
            await conn.execute(delete(t.mailboxes).where(t.mailboxes.c.id == mailbox.id))
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, mailbox.id))
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MAILBOXES_CHANGED))

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        """RENAME (RFC 3501 section 6.3.5), with inferiors and INBOX's special case.

        Renaming INBOX moves its messages into a new mailbox of the new name
        and leaves INBOX empty; UIDs are kept and never reused in INBOX.
        """
        old, new = names.normalize(old), names.normalize(new)
        if new == names.INBOX or new.startswith(old + names.DELIMITER):
            raise InvalidMailboxName(new, "a mailbox cannot be renamed to INBOX or below itself")
        async with self.db.write() as conn:
            source = await self._find_mailbox(conn, user_id, old)
            if await self._mailbox_row(conn, user_id, new) is not None:
                raise MailboxExists(new)
            for parent in names.parents(new):
                if await self._mailbox_row(conn, user_id, parent) is None:
                    await self._insert_mailbox(conn, user_id, parent, None)
            if old == names.INBOX:
                target = await self._insert_mailbox(conn, user_id, new, None)
                await conn.execute(
                    update(t.mailboxes)
                    .where(t.mailboxes.c.id == target.id)
                    .values(
                        uidnext=source.uidnext,
                        highestmodseq=source.highestmodseq,
                        keywords=" ".join(source.keywords),
                    )
                )
                await conn.execute(
                    update(t.messages).where(_live(source.id)).values(mailbox_id=target.id)
                )
                await self._bump_modseq(conn, source.id)  # INBOX's sessions must look again
            else:
                renames = [(source.id, new)]
                rows = await conn.execute(
                    select(t.mailboxes.c.id, t.mailboxes.c.name).where(
                        t.mailboxes.c.user_id == user_id,
                        t.mailboxes.c.name.startswith(old + names.DELIMITER, autoescape=True),
                    )
                )
                renames += [(row.id, new + row.name[len(old) :]) for row in rows]
                for mailbox_id, name in renames:
                    await conn.execute(
                        update(t.mailboxes)
                        .where(t.mailboxes.c.id == mailbox_id)
                        .values(name=name, name_hash=names.name_hash(name))
                    )
        if old == names.INBOX:
            await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, source.id))
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MAILBOXES_CHANGED))

    async def subscribe(self, user_id: int, name: str) -> None:
        """SUBSCRIBE (RFC 3501 section 6.3.6); the mailbox need not exist."""
        name = names.normalize(name)
        async with self.db.write() as conn:
            await self._subscribe(conn, user_id, name)

    async def unsubscribe(self, user_id: int, name: str) -> None:
        name = names.normalize(name)
        async with self.db.write() as conn:
            await conn.execute(
                delete(t.subscriptions).where(
                    t.subscriptions.c.user_id == user_id,
                    t.subscriptions.c.name_hash == names.name_hash(name),
                )
            )

    async def subscriptions(self, user_id: int) -> list[str]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(t.subscriptions.c.name)
                .where(t.subscriptions.c.user_id == user_id)
                .order_by(t.subscriptions.c.name)
            )
            return [row.name for row in rows]

    # -- adding messages -------------------------------------------------

    async def append(
        self,
        user_id: int,
        mailbox_name: str,
        source: AsyncIterable[bytes],
        *,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> AppendResult:
        """APPEND (RFC 3501 section 6.3.11): stream ``source`` into a new message.

        ``internaldate`` keeps its zone (FETCH INTERNALDATE shows it); without
        one the message gets the current time in the server's local zone.

        The size limit is the caller's to enforce on ``source``: an exception
        raised by the source leaves nothing behind.
        """
        mailbox_name = names.normalize(mailbox_name)
        flags = tuple(flags)
        self.check_flags(flags)
        async with self.db.read() as conn:  # fail fast, before streaming the literal
            await self._find_mailbox(conn, user_id, mailbox_name, try_create=True)
        stored = await self._store_blob(source)
        return await self.append_stored(
            user_id, mailbox_name, stored, flags=flags, internaldate=internaldate
        )

    async def append_stored(
        self,
        user_id: int,
        mailbox_name: str,
        stored: StoredMessage,
        *,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> AppendResult:
        """:meth:`append` for a message already stored with :meth:`store_message`."""
        mailbox_name = names.normalize(mailbox_name)
        date = internaldate or datetime.now().astimezone()

        async def write(conn: AsyncConnection) -> AppendResult:
            parsed_flags = Flags.parse(flags)
            self._check_keywords(parsed_flags.keywords)
            mailbox = await self._find_mailbox(conn, user_id, mailbox_name, try_create=True)
            await self._check_quota(conn, user_id, stored.put.size)
            await self._define_keywords(conn, mailbox.id, parsed_flags.keywords)
            await self._insert_object_key(conn, stored)
            return await self._insert_message(conn, mailbox, stored, parsed_flags, date)

        async def committed(conn: AsyncConnection) -> AppendResult | None:
            row = (
                await conn.execute(
                    select(t.messages.c.mailbox_id, t.messages.c.uid, t.mailboxes.c.uidvalidity)
                    .select_from(
                        t.messages.join(t.mailboxes, t.mailboxes.c.id == t.messages.c.mailbox_id)
                    )
                    .where(t.messages.c.object_key == stored.key)
                    .order_by(t.messages.c.id)
                    .limit(1)
                )
            ).first()
            return None if row is None else AppendResult(row.mailbox_id, row.uidvalidity, row.uid)

        result = await self._commit_new_blob(stored, write, committed)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, result.mailbox_id))
        return result

    async def deliver(
        self, recipients: Sequence[Recipient], source: AsyncIterable[bytes]
    ) -> list[DeliveryOutcome]:
        """Deliver one message to several recipients, all sharing one blob.

        All copies are committed in one transaction. A recipient over quota
        gets its own outcome and the others are still delivered. A missing
        target mailbox falls back to INBOX: delivery never fails for a name.
        """
        return await self.deliver_stored(recipients, await self.store_message(source))

    async def store_message(self, source: AsyncIterable[bytes]) -> StoredMessage:
        """Stream a message into a new blob, durable but not yet visible anywhere.

        For callers that decide after the data is in (LMTP waits for the
        virus scanner's verdict): then :meth:`deliver_stored` or :meth:`discard`.
        A crash in between leaves an orphan blob, which the sweeper removes.
        """
        return await self._store_blob(source)

    async def discard(self, stored: StoredMessage) -> None:
        """Drop a stored message that will not be delivered."""
        await self._discard_blob(stored.key)

    def read_stored(self, stored: StoredMessage) -> AsyncIterator[bytes]:
        return self.blobs.get(stored.key)

    async def deliver_stored(
        self, recipients: Sequence[Recipient], stored: StoredMessage
    ) -> list[DeliveryOutcome]:
        """:meth:`deliver` for a message already stored with :meth:`store_message`."""

        async def write(conn: AsyncConnection) -> list[DeliveryOutcome]:
            outcomes: list[DeliveryOutcome] = []
            targets = [
                (recipient, await self._delivery_mailbox(conn, recipient))
                for recipient in recipients
            ]
            # Lock mailbox rows in one order so concurrent deliveries cannot deadlock.
            targets.sort(key=lambda target: target[1].id)
            if targets:
                await self._insert_object_key(conn, stored)
            now = datetime.now().astimezone()  # the server's local zone
            for recipient, mailbox in targets:
                try:
                    await self._check_quota(conn, recipient.user_id, stored.put.size)
                except QuotaExceeded as error:
                    outcomes.append(DeliveryOutcome(recipient, error=error))
                    continue
                result = await self._insert_message(conn, mailbox, stored, Flags(), now)
                outcomes.append(DeliveryOutcome(recipient, result=result))
            if not any(outcome.result for outcome in outcomes):
                await conn.execute(delete(t.object_keys).where(t.object_keys.c.key == stored.key))
            return outcomes

        async def committed(conn: AsyncConnection) -> list[DeliveryOutcome] | None:
            return await self._delivered(conn, recipients, stored)

        outcomes = await self._commit_new_blob(stored, write, committed)
        if not any(outcome.result for outcome in outcomes):
            await self._discard_blob(stored.key)
        for outcome in outcomes:
            if outcome.result is not None:
                await self.bus.publish(
                    ChangeEvent(
                        outcome.recipient.user_id,
                        ChangeKind.MESSAGES_ADDED,
                        outcome.result.mailbox_id,
                    )
                )
        order = {recipient: index for index, recipient in enumerate(recipients)}
        outcomes.sort(key=lambda outcome: order[outcome.recipient])
        return outcomes

    async def _delivery_mailbox(self, conn: AsyncConnection, recipient: Recipient) -> Mailbox:
        """The mailbox a recipient's copy goes to: the one it names if that exists, else INBOX."""
        if recipient.mailbox is not None:
            row = await self._mailbox_row(
                conn, recipient.user_id, names.normalize(recipient.mailbox)
            )
            if row is not None:
                return _mailbox(row)
        return await self._find_mailbox(conn, recipient.user_id, names.INBOX)

    async def _delivered(
        self, conn: AsyncConnection, recipients: Sequence[Recipient], stored: StoredMessage
    ) -> list[DeliveryOutcome] | None:
        """The outcomes of a delivery of ``stored`` that was committed, read back from its
        rows; None if it was not (no ``object_keys`` row: nothing was delivered)."""
        key = (
            await conn.execute(select(t.object_keys.c.key).where(t.object_keys.c.key == stored.key))
        ).first()
        if key is None:
            return None
        rows = list(
            await conn.execute(
                select(
                    t.messages.c.user_id,
                    t.messages.c.mailbox_id,
                    t.messages.c.uid,
                    t.mailboxes.c.uidvalidity,
                )
                .select_from(
                    t.messages.join(t.mailboxes, t.mailboxes.c.id == t.messages.c.mailbox_id)
                )
                .where(t.messages.c.object_key == stored.key)
                .order_by(t.messages.c.id)
            )
        )
        outcomes = []
        for recipient in recipients:
            mailbox = await self._delivery_mailbox(conn, recipient)
            row = next(
                (r for r in rows if (r.user_id, r.mailbox_id) == (recipient.user_id, mailbox.id)),
                None,
            )
            if row is None:  # over quota: the only recipient a delivery skips
                error = await self._quota_error(conn, recipient.user_id, stored.put.size)
                outcomes.append(DeliveryOutcome(recipient, error=error))
                continue
            rows.remove(row)
            result = AppendResult(row.mailbox_id, row.uidvalidity, row.uid)
            outcomes.append(DeliveryOutcome(recipient, result=result))
        return outcomes

    async def _quota_error(self, conn: AsyncConnection, user_id: int, size: int) -> QuotaExceeded:
        row = (
            await conn.execute(
                select(t.users.c.address, t.users.c.quota_bytes).where(t.users.c.id == user_id)
            )
        ).one()
        used, _ = await self._usage(conn, user_id)
        return QuotaExceeded(row.address, row.quota_bytes or 0, used, size)

    # -- quarantine ------------------------------------------------------------

    async def quarantine(
        self,
        stored: StoredMessage,
        sender: str,
        recipients: Sequence[Recipient],
        virus: str,
    ) -> int:
        """Keep a stored message aside, in no mailbox; return its quarantine id."""
        listed = [[r.address, r.user_id] for r in recipients]

        async def write(conn: AsyncConnection) -> int | None:
            await self._insert_object_key(conn, stored)
            result = await conn.execute(
                insert(t.quarantine).values(
                    object_key=stored.key,
                    sender=sender,
                    recipients=json.dumps(listed),
                    virus=virus,
                    created_at=utcnow(),
                )
            )
            (item_id,) = result.inserted_primary_key or (None,)
            return None if item_id is None else int(item_id)

        async def committed(conn: AsyncConnection) -> int | None:
            return (
                await conn.execute(
                    select(t.quarantine.c.id).where(t.quarantine.c.object_key == stored.key)
                )
            ).scalar_one_or_none()

        item_id = await self._commit_new_blob(stored, write, committed)
        if item_id is None:
            raise RuntimeError("the database returned no id for the quarantined message")
        return item_id

    async def list_quarantine(self) -> list[QuarantinedMessage]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(t.quarantine, t.object_keys.c.size)
                .select_from(t.quarantine.join(t.object_keys))
                .order_by(t.quarantine.c.id)
            )
            return [
                QuarantinedMessage(
                    id=row.id,
                    sender=row.sender,
                    recipients=tuple(address for address, _ in json.loads(row.recipients)),
                    virus=row.virus,
                    size=row.size,
                    created_at=_aware(row.created_at),
                )
                for row in rows
            ]

    async def release_quarantine(self, item_id: int) -> list[DeliveryOutcome]:
        """Deliver a quarantined message to its recipients' INBOX and forget the entry.

        Recipients deleted since are skipped. The blob is shared, not copied.
        """
        item = await self._quarantine_row(item_id)
        parser, endings = MimeScanner(), _LineEndings()
        async for chunk in self.blobs.get(item.object_key):
            parser.feed(chunk)
            endings.feed(chunk)
        put = PutResult(item.size, item.sha256)
        stored = StoredMessage(item.object_key, put, parser.close(), endings.bare_lf)
        outcomes: list[DeliveryOutcome] = []
        async with self.db.write() as conn:
            now = datetime.now().astimezone()  # the server's local zone, as for LMTP
            for address, user_id in json.loads(item.recipients):
                row = await self._mailbox_row(conn, user_id, names.INBOX)
                if row is None:
                    continue
                result = await self._insert_message(conn, _mailbox(row), stored, Flags(), now)
                outcomes.append(DeliveryOutcome(Recipient(user_id, address), result=result))
            await conn.execute(delete(t.quarantine).where(t.quarantine.c.id == item_id))
            if not outcomes:
                await conn.execute(delete(t.object_keys).where(t.object_keys.c.key == stored.key))
        if not outcomes:
            await self._discard_blob(stored.key)
        for outcome in outcomes:
            if outcome.result is not None:
                await self.bus.publish(
                    ChangeEvent(
                        outcome.recipient.user_id,
                        ChangeKind.MESSAGES_ADDED,
                        outcome.result.mailbox_id,
                    )
                )
        return outcomes

    async def delete_quarantine(self, item_id: int) -> None:
        """Delete a quarantined message and its blob."""
        item = await self._quarantine_row(item_id)
        async with self.db.write() as conn:
            await conn.execute(delete(t.quarantine).where(t.quarantine.c.id == item_id))
            await conn.execute(delete(t.object_keys).where(t.object_keys.c.key == item.object_key))
        await self._discard_blob(item.object_key)

    async def read_quarantined(self, item_id: int) -> tuple[int, AsyncIterator[bytes]]:
        """The size of a quarantined message and a stream of it, as received."""
        item = await self._quarantine_row(item_id)
        return int(item.size), self.blobs.get(item.object_key)

    async def _quarantine_row(self, item_id: int) -> t.AnyRow:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(t.quarantine, t.object_keys.c.size, t.object_keys.c.sha256)
                    .select_from(t.quarantine.join(t.object_keys))
                    .where(t.quarantine.c.id == item_id)
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"no quarantined message {item_id}")
        return row

    async def copy(
        self, user_id: int, source: Mailbox, uids: Sequence[int], dest_name: str
    ) -> CopyResult:
        """COPY (RFC 3501 section 6.4.7): the copies share the originals' blobs."""
        dest_id, result = await self._copy(user_id, source, uids, dest_name, move=False)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, dest_id))
        return result

    async def move(
        self, user_id: int, source: Mailbox, uids: Sequence[int], dest_name: str
    ) -> CopyResult:
        """MOVE (RFC 6851): copy and expunge the originals, in one transaction."""
        dest_id, result = await self._copy(user_id, source, uids, dest_name, move=True)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, dest_id))
        if result.source_uids:
            await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, source.id))
        return result

    async def _copy(
        self, user_id: int, source: Mailbox, uids: Sequence[int], dest_name: str, *, move: bool
    ) -> tuple[int, CopyResult]:
        dest_name = names.normalize(dest_name)
        async with self.db.write() as conn:
            dest = await self._find_mailbox(conn, user_id, dest_name, try_create=True)
            rows: list[t.AnyRow] = []
            for chunk in _chunks(sorted(set(uids))):
                result = await conn.execute(
                    select(t.messages.c.uid, *(t.messages.c[name] for name in _COPIED_COLUMNS))
                    .where(
                        _live(source.id),
                        t.messages.c.user_id == user_id,
                        t.messages.c.uid.in_(chunk),
                    )
                    .order_by(t.messages.c.uid)
                )
                rows.extend(result)
            if not rows:
                return dest.id, CopyResult(dest.uidvalidity, (), ())
            copied = frozenset(keyword for row in rows for keyword in row.keywords.split())
            await self._define_keywords(conn, dest.id, copied)
            first_uid, modseq = await self._reserve_uids(conn, dest.id, len(rows))
            await conn.execute(
                insert(t.messages),
                [
                    {
                        **{name: row._mapping[name] for name in _COPIED_COLUMNS},
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

    # -- changing messages -----------------------------------------------

    async def store_flags(
        self,
        user_id: int,
        mailbox: Mailbox,
        uids: Sequence[int],
        mode: StoreMode,
        flags: Iterable[str],
    ) -> list[MessageInfo]:
        """STORE (RFC 3501 section 6.4.6); returns the messages whose flags changed.

        The changed messages all get one new mod-sequence (RFC 7162). A change
        that would pass a keyword limit raises KeywordLimitExceeded and changes
        nothing; the mailbox row is locked for the count, so concurrent
        sessions cannot pass the limit together.
        """
        change = Flags.parse(flags)
        self._check_keywords(change.keywords)
        changed: list[MessageInfo] = []
        if not uids:
            return changed
        async with self.db.write() as conn:
            if mode is not StoreMode.REMOVE:
                await self._define_keywords(conn, mailbox.id, change.keywords)
            rows: list[t.AnyRow] = []
            for chunk in _chunks(sorted(set(uids))):
                result = await conn.execute(
                    select(t.messages.c.id, *_INFO_COLUMNS).where(
                        _live(mailbox.id),
                        t.messages.c.user_id == user_id,
                        t.messages.c.uid.in_(chunk),
                    )
                )
                rows.extend(result)
            updates = []
            limits = self.keyword_limits
            for row in rows:
                current = Flags.from_row(row.flags, row.keywords)
                new = mode.apply(current, change)
                if new != current:
                    if len(new.keywords) > max(len(current.keywords), limits.per_message):
                        raise KeywordLimitExceeded(
                            f"a message may have at most {limits.per_message} keywords"
                        )
                    updates.append((row, new))
            if not updates:
                return []
            modseq = await self._bump_modseq(conn, mailbox.id)
            for row, new in updates:
                await conn.execute(
                    update(t.messages)
                    .where(t.messages.c.id == row.id)
                    .values(flags=new.system, keywords=new.keyword_text, modseq=modseq)
                )
                changed.append(replace(_info(row), flags=new, modseq=modseq))
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.FLAGS_CHANGED, mailbox.id, modseq))
        return changed

    async def expunge(
        self, user_id: int, mailbox: Mailbox, uids: Sequence[int] | None = None
    ) -> list[int]:
        """EXPUNGE (RFC 3501 section 6.4.3), or UID EXPUNGE (RFC 4315) with ``uids``.

        Soft-deletes the messages flagged ``\\Deleted``; returns their UIDs.
        """
        async with self.db.write() as conn:
            query = select(t.messages.c.uid).where(
                _live(mailbox.id),
                t.messages.c.user_id == user_id,
                t.messages.c.flags.op("&")(t.FLAG_DELETED) != 0,
            )
            candidates = [row.uid for row in await conn.execute(query)]
            if uids is not None:
                wanted = set(uids)
                candidates = [uid for uid in candidates if uid in wanted]
            if candidates:
                await self._soft_delete(conn, mailbox.id, candidates)
        if candidates:
            await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, mailbox.id))
        return sorted(candidates)

    async def delete_messages(self, user_id: int, mailbox: Mailbox, uids: Sequence[int]) -> None:
        """Soft-delete the given messages, flagged or not (POP3's DELE applied at QUIT).

        The same soft delete EXPUNGE does: the GC purges them after retention.
        """
        if not uids:
            return
        async with self.db.write() as conn:
            await self._soft_delete(conn, mailbox.id, uids)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, mailbox.id))

    async def list_deleted(
        self, user_id: int, *, after_id: int = 0, limit: int = 100
    ) -> list[DeletedMessage]:
        """The user's restorable messages, by id, starting after ``after_id``."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    t.messages.c.id,
                    t.messages.c.mailbox_id,
                    t.messages.c.uid,
                    t.messages.c.size,
                    t.messages.c.internaldate,
                    t.messages.c.deleted_at,
                    t.messages.c.subject,
                    t.messages.c.from_addr,
                    t.mailboxes.c.name,
                    t.mailboxes.c.created_at,
                )
                .select_from(
                    t.messages.outerjoin(t.mailboxes, t.mailboxes.c.id == t.messages.c.mailbox_id)
                )
                .where(
                    t.messages.c.user_id == user_id,
                    t.messages.c.deleted_at.is_not(None),
                    t.messages.c.purge_claimed_until.is_(None),
                    t.messages.c.id > after_id,
                )
                .order_by(t.messages.c.id)
                .limit(limit)
            )
            return [
                DeletedMessage(
                    id=row.id,
                    mailbox_id=row.mailbox_id,
                    mailbox=row.name if _same_mailbox(row.created_at, row.deleted_at) else None,
                    uid=row.uid,
                    size=row.size,
                    internaldate=_aware(row.internaldate),
                    deleted_at=_aware(row.deleted_at),
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
        async with self.db.write() as conn:
            # The row lock orders this against the garbage collector's claim:
            # whichever commits second sees the other's change.
            row = (
                await conn.execute(
                    select(
                        t.messages.c.mailbox_id,
                        t.messages.c.size,
                        t.messages.c.deleted_at,
                        t.messages.c.keywords,
                    )
                    .where(
                        t.messages.c.id == message_id,
                        t.messages.c.user_id == user_id,
                        t.messages.c.deleted_at.is_not(None),
                        t.messages.c.purge_claimed_until.is_(None),
                    )
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"no restorable deleted message {message_id}")
            found = (
                await conn.execute(
                    select(*_MAILBOX_COLUMNS, t.mailboxes.c.created_at).where(
                        t.mailboxes.c.id == row.mailbox_id, t.mailboxes.c.user_id == user_id
                    )
                )
            ).one_or_none()
            if found is None or not _same_mailbox(found.created_at, row.deleted_at):
                raise MailboxNotFound(f"the mailbox message {message_id} was deleted from")
            await self._check_quota(conn, user_id, row.size)
            await self._define_keywords(conn, row.mailbox_id, frozenset(row.keywords.split()))
            uid, modseq = await self._reserve_uids(conn, row.mailbox_id, 1)
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
        mailbox = _mailbox(found)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, mailbox.id))
        return AppendResult(mailbox.id, mailbox.uidvalidity, uid)

    # -- reading ---------------------------------------------------------

    async def list_messages(
        self, mailbox: Mailbox, *, after_uid: int = 0, limit: int | None = None
    ) -> list[MessageInfo]:
        """The live messages of the mailbox above ``after_uid`` in UID order, in one
        query: all of them, or the first ``limit``."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*_INFO_COLUMNS)
                .where(_live(mailbox.id), t.messages.c.uid > after_uid)
                .order_by(t.messages.c.uid)
                .limit(limit)
            )
            return [_info(row) for row in rows]

    async def fetch_infos(self, mailbox: Mailbox, uids: Sequence[int]) -> list[MessageInfo]:
        """Sizes, dates, flags and blob keys of the given messages, in UID order."""
        return [_info(row) async for row in self._rows(mailbox, uids)]

    async def fetch_meta(self, mailbox: Mailbox, uids: Sequence[int]) -> list[MessageMeta]:
        """The cached parse of the given messages, in UID order, in batched queries.

        Decoding the JSON of hundreds of rows takes tens of milliseconds: it
        gives way to other sessions as it goes (`TimeSlice`).
        """
        parse = (t.messages.c.header, t.messages.c.envelope, t.messages.c.bodystructure)
        rows = [row async for row in self._rows(mailbox, uids, *parse)]
        metas: list[MessageMeta] = []
        turn = TimeSlice()
        for row in rows:
            metas.append(
                MessageMeta(
                    info=_info(row),
                    header=row.header,
                    envelope=Envelope.from_json(json.loads(row.envelope)),
                    body=BodyPart.from_json(json.loads(row.bodystructure)),
                )
            )
            await turn.pause()
        return metas

    async def _rows(
        self, mailbox: Mailbox, uids: Sequence[int], *extra: Any
    ) -> AsyncIterator[t.AnyRow]:
        """Live message rows by UID, one query per chunk of the list."""
        async with self.db.read() as conn:
            for chunk in _chunks(sorted(set(uids))):
                rows = await conn.execute(
                    select(*_INFO_COLUMNS, *extra)
                    .where(_live(mailbox.id), t.messages.c.uid.in_(chunk))
                    .order_by(t.messages.c.uid)
                )
                for row in rows:
                    yield row

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
        if readonly:
            async with self.db.read() as conn:
                claimed = await self._recent_uid(conn, mailbox.id)
                return await self._live_uids_above(conn, mailbox.id, claimed)
        async with self.db.write() as conn:
            claimed = await self._recent_uid(conn, mailbox.id, lock=True)
            uids = await self._live_uids_above(conn, mailbox.id, claimed)
            if uids:
                await conn.execute(
                    update(t.mailboxes)
                    .where(t.mailboxes.c.id == mailbox.id)
                    .values(recent_uid=uids[-1])
                )
            return uids

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
            .where(_live(mailbox_id), t.messages.c.uid > uid)
            .order_by(t.messages.c.uid)
        )
        return [row.uid for row in rows]

    async def check_quota(self, user_id: int, size: int) -> None:
        """Raise QuotaExceeded if ``size`` more bytes would not fit (LMTP's RCPT check
        with the declared SIZE; delivery checks again with the real size)."""
        async with self.db.read() as conn:
            await self._check_quota(conn, user_id, size)

    async def usage(self, user_id: int) -> tuple[int, int]:
        """Bytes and number of the user's live messages (what the quota counts)."""
        async with self.db.read() as conn:
            return await self._usage(conn, user_id)

    # -- internals -------------------------------------------------------

    async def _store_blob(self, source: AsyncIterable[bytes]) -> StoredMessage:
        """Stream the message into a new blob, parsing its structure on the way."""
        scanner = MimeScanner()
        endings = _LineEndings()

        async def parsed_chunks() -> AsyncIterator[bytes]:
            async for chunk in source:
                scanner.feed(chunk)
                endings.feed(chunk)
                yield chunk

        key = new_blob_key()
        put = await self.blobs.put(key, parsed_chunks())
        return StoredMessage(key, put, scanner.close(), endings.bare_lf)

    async def _discard_blob(self, key: str) -> None:
        """Delete a blob no row will refer to; if that fails, the sweeper will."""
        try:
            await self.blobs.delete_many([key])
        except Exception:
            log.warning("could not delete unused blob %s; the orphan sweeper will", key)

    async def _commit_new_blob(
        self,
        stored: StoredMessage,
        write: Callable[[AsyncConnection], Awaitable[_T]],
        committed: Callable[[AsyncConnection], Awaitable[_T | None]],
    ) -> _T:
        """Run ``write``, the transaction that makes the new blob ``stored`` visible.

        The blob is deleted only when no committed row can refer to it: when
        ``write`` failed, or the database rolled the transaction back (a
        conflict). When the connection failed during COMMIT, ``committed``
        reads, on a new connection, what ``write`` would have written: found,
        the operation succeeded and that is its result (so the client does not
        send the message again); not found, or the database still down, the
        temporary failure stands and the blob stays for the orphan sweep, which
        deletes it only if no ``object_keys`` row ever names it.
        """
        writing = True
        try:
            async with self.db.write() as conn:
                result = await write(conn)
                writing = False
        except CommitOutcomeUnknown as error:
            return await self._after_lost_commit(stored.key, committed, error)
        except TransactionConflict:
            await self._discard_blob(stored.key)  # rolled back, at COMMIT too
            raise
        except BaseException:
            if writing:
                await self._discard_blob(stored.key)
            else:
                log.warning("COMMIT failed; blob %s may be in use, so it is kept", stored.key)
            raise
        return result

    async def _after_lost_commit(
        self,
        key: str,
        committed: Callable[[AsyncConnection], Awaitable[_T | None]],
        error: CommitOutcomeUnknown,
    ) -> _T:
        try:
            found = await self._read_until(self.db.commit_check_timeout, committed)
        except TemporaryFailure:
            LOST_COMMITS.labels("unknown").inc()
            log.warning(
                "the reply to a COMMIT was lost and the database is still unavailable: "
                "blob %s is kept for the orphan sweep",
                key,
            )
            raise error from None
        if found is None:
            LOST_COMMITS.labels("rolled_back").inc()
            log.warning(
                "the reply to a COMMIT was lost; it was not committed: "
                "blob %s is left to the orphan sweep",
                key,
            )
            raise error
        LOST_COMMITS.labels("committed").inc()
        log.warning("the reply to a COMMIT was lost, but it was committed (blob %s)", key)
        return found

    async def _read_until(
        self, patience: float, read: Callable[[AsyncConnection], Awaitable[_T]]
    ) -> _T:
        """``read`` in a read transaction, tried again while the database is
        unavailable, until ``patience`` seconds have passed (at least once)."""
        deadline = time.monotonic() + patience
        pause = 0.1
        while True:
            try:
                async with self.db.read() as conn:
                    return await read(conn)
            except TemporaryFailure:
                if time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _insert_object_key(self, conn: AsyncConnection, stored: StoredMessage) -> None:
        await conn.execute(
            insert(t.object_keys).values(
                key=stored.key,
                size=stored.put.size,
                sha256=stored.put.sha256,
                created_at=utcnow(),
            )
        )

    async def _insert_message(
        self,
        conn: AsyncConnection,
        mailbox: Mailbox,
        stored: StoredMessage,
        flags: Flags,
        internaldate: datetime,
    ) -> AppendResult:
        uid, modseq = await self._reserve_uids(conn, mailbox.id, 1)
        parsed = stored.parsed
        await conn.execute(
            insert(t.messages).values(
                mailbox_id=mailbox.id,
                user_id=mailbox.user_id,
                uid=uid,
                modseq=modseq,
                object_key=stored.key,
                size=stored.put.size,
                size_crlf=stored.put.size + stored.bare_lf,
                internaldate=_naive_utc(internaldate),
                internaldate_offset=_offset_minutes(internaldate),
                flags=flags.system,
                keywords=flags.keyword_text,
                header=parsed.header,
                envelope=json.dumps(parsed.envelope.to_json(), separators=(",", ":")),
                bodystructure=json.dumps(parsed.body.to_json(), separators=(",", ":")),
                sent_date=_naive_utc(parsed.sent_date) if parsed.sent_date else None,
                subject=parsed.subject,
                from_addr=parsed.from_,
                to_addr=parsed.to,
                cc_addr=parsed.cc,
                bcc_addr=parsed.bcc,
                message_id=parsed.message_id,
            )
        )
        return AppendResult(mailbox.id, mailbox.uidvalidity, uid)

    async def _reserve_uids(
        self, conn: AsyncConnection, mailbox_id: int, count: int
    ) -> tuple[int, int]:
        """Reserve ``count`` consecutive UIDs; return the first and the new modseq.

        The UPDATE takes the mailbox row's write lock until commit, so no other
        transaction can reserve the same UIDs (no ``UPDATE ... RETURNING`` on
        MariaDB 10.11: the values are read back in the same transaction).
        """
        result = await conn.execute(
            update(t.mailboxes)
            .where(t.mailboxes.c.id == mailbox_id)
            .values(
                uidnext=t.mailboxes.c.uidnext + count,
                highestmodseq=t.mailboxes.c.highestmodseq + 1,
            )
        )
        if result.rowcount != 1:
            raise MailboxNotFound(str(mailbox_id))
        row = (
            await conn.execute(
                select(t.mailboxes.c.uidnext, t.mailboxes.c.highestmodseq).where(
                    t.mailboxes.c.id == mailbox_id
                )
            )
        ).one()
        return row.uidnext - count, row.highestmodseq

    async def _bump_modseq(self, conn: AsyncConnection, mailbox_id: int) -> int:
        _, modseq = await self._reserve_uids(conn, mailbox_id, 0)
        return modseq

    async def _soft_delete(
        self, conn: AsyncConnection, mailbox_id: int, uids: Sequence[int]
    ) -> None:
        modseq = await self._bump_modseq(conn, mailbox_id)
        now = utcnow()
        for chunk in _chunks(uids):
            await conn.execute(
                update(t.messages)
                .where(_live(mailbox_id), t.messages.c.uid.in_(chunk))
                .values(deleted_at=now, modseq=modseq)
            )

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
        row = (
            await conn.execute(
                select(t.mailboxes.c.keywords)
                .where(t.mailboxes.c.id == mailbox_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise MailboxNotFound(str(mailbox_id))
        defined = frozenset(row.keywords.split())
        if keywords <= defined:
            return
        wanted = defined | keywords
        limit = self.keyword_limits.per_mailbox
        if len(wanted) > limit:
            in_use = await conn.execute(
                select(t.messages.c.keywords)
                .distinct()
                .where(_live(mailbox_id), t.messages.c.keywords != "")
            )
            wanted = frozenset(k for used in in_use for k in used.keywords.split()) | keywords
            if len(wanted) > limit:
                raise KeywordLimitExceeded(f"a mailbox may have at most {limit} keywords")
        await conn.execute(
            update(t.mailboxes)
            .where(t.mailboxes.c.id == mailbox_id)
            .values(keywords=" ".join(sorted(wanted)))
        )

    async def _usage(self, conn: AsyncConnection, user_id: int) -> tuple[int, int]:
        row = (
            await conn.execute(
                select(func.coalesce(func.sum(t.messages.c.size), 0), func.count()).where(
                    t.messages.c.user_id == user_id, t.messages.c.deleted_at.is_(None)
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def _check_quota(self, conn: AsyncConnection, user_id: int, size: int) -> None:
        row = (
            await conn.execute(
                select(t.users.c.address, t.users.c.quota_bytes).where(t.users.c.id == user_id)
            )
        ).one()
        if row.quota_bytes is None:
            return
        used, _ = await self._usage(conn, user_id)
        if used + size > row.quota_bytes:
            raise QuotaExceeded(row.address, row.quota_bytes, used, size)

    async def _mailbox_row(self, conn: AsyncConnection, user_id: int, name: str) -> t.AnyRow | None:
        result = await conn.execute(
            select(*_MAILBOX_COLUMNS).where(
                t.mailboxes.c.user_id == user_id,
                t.mailboxes.c.name_hash == names.name_hash(name),
            )
        )
        return result.one_or_none()

    async def _find_mailbox(
        self, conn: AsyncConnection, user_id: int, name: str, *, try_create: bool = False
    ) -> Mailbox:
        row = await self._mailbox_row(conn, user_id, name)
        if row is None:
            raise MailboxNotFound(name, try_create=try_create and name != names.INBOX)
        return _mailbox(row)

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
                created_at=utcnow(),
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

    async def remove_user_mail(self, conn: AsyncConnection, user_id: int) -> None:
        """Soft-delete all of a user's mail and drop their mailboxes (in the caller's
        transaction, the one that deletes the user)."""
        await conn.execute(
            update(t.messages)
            .where(t.messages.c.user_id == user_id, t.messages.c.deleted_at.is_(None))
            .values(deleted_at=utcnow())
        )
        await conn.execute(delete(t.subscriptions).where(t.subscriptions.c.user_id == user_id))
        await conn.execute(delete(t.mailboxes).where(t.mailboxes.c.user_id == user_id))
