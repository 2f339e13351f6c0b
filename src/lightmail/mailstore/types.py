"""The values the mailstore takes and returns: flags, mailboxes, messages, results."""

from __future__ import annotations

import enum
import functools
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lightmail.errors import QuotaExceeded
from lightmail.mailstore.mime.types import BodyPart, Envelope, ParsedMessage, SortKeys
from lightmail.storage.blobs import PutResult
from lightmail.storage.db import tables as t

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
        # One value per combination: the rows of a mailbox repeat the same few,
        # and a listing of thousands of messages then holds each name once.
        return _flags_of_row(system, keywords)

    def names(self) -> tuple[str, ...]:
        """Flag names in a stable order: system flags first, then keywords sorted."""
        system = tuple(name for name, bit in SYSTEM_FLAGS.items() if self.system & bit)
        return system + tuple(sorted(self.keywords))

    @property
    def keyword_text(self) -> str:
        return " ".join(sorted(self.keywords))


@functools.lru_cache(maxsize=4096)
def _flags_of_row(system: int, keywords: str) -> Flags:
    return Flags(system, frozenset(map(sys.intern, keywords.split())))


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
    """The counts STATUS reports (RFC 3501 section 6.3.10), less \\Recent: of the
    live messages, how many, their size, how many are unseen, and how many and
    how large are those flagged \\Deleted (RFC 9208 section 4.1.4)."""

    mailbox: Mailbox
    messages: int
    unseen: int
    size: int
    deleted: int = 0
    deleted_size: int = 0


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """What counts against a user's quota now, and its limit (None: unlimited)."""

    size: int
    messages: int
    limit: int | None


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


class MessageMeta:
    """The cached parse of a message: FETCH of these never reads the blob.

    The envelope and the body structure are stored as JSON and decoded on
    first use: most FETCH and SEARCH commands need neither.
    """

    __slots__ = (
        "_body",
        "_body_json",
        "_bounds",
        "_envelope",
        "_envelope_json",
        "header",
        "info",
        "thread_root",
    )

    def __init__(
        self,
        info: MessageInfo,
        header: bytes,
        envelope_json: str,
        body_json: str,
        thread_root: str = "",
    ) -> None:
        self.info = info
        self.header = header
        # The first Message-ID of the thread: the first of the References cached at
        # delivery, else the message's own; "" without either.
        self.thread_root = thread_root
        self._envelope_json = envelope_json
        self._body_json = body_json
        self._envelope: Envelope | None = None
        self._body: BodyPart | None = None
        self._bounds: tuple[int, int] | None = None

    @property
    def envelope(self) -> Envelope:
        if self._envelope is None:
            self._envelope = Envelope.from_json(json.loads(self._envelope_json))
        return self._envelope

    @property
    def body(self) -> BodyPart:
        if self._body is None:
            self._body = BodyPart.from_json(json.loads(self._body_json))
        return self._body

    @property
    def root_bounds(self) -> tuple[int, int]:
        """Where the message's body starts and where the message ends: all a FETCH of
        its header or text needs, read without decoding the whole body structure."""
        if self._bounds is None:
            body = self._body
            self._bounds = (
                (body.body_start, body.end)
                if body is not None
                else BodyPart.bounds_from_json(json.loads(self._body_json))
            )
        return self._bounds


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What a STORE did to the live messages it named (RFC 3501 section 6.4.6 and
    RFC 7162 section 3.1.3), each as it is after the STORE, in UID order."""

    changed: list[MessageInfo]  # flags changed: all at one new mod-sequence
    unchanged: list[MessageInfo]  # already as asked: nothing to change
    modified: list[MessageInfo]  # changed since UNCHANGEDSINCE: left alone


@dataclass(frozen=True, slots=True)
class Expunged:
    """What was expunged from a mailbox after a mod-sequence (RFC 7162 sections 3.2.5
    and 3.2.6)."""

    uids: list[int]  # the UIDs expunged since that the store still records, ascending
    # False when an expunge since is no longer recorded by its UID (the GC purged
    # it): then any UID that is not live may be one.
    complete: bool


@dataclass(frozen=True, slots=True)
class AppendResult:
    """APPENDUID's data (RFC 4315 section 3)."""

    mailbox_id: int
    uidvalidity: int
    uid: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message of an APPEND, stored but not yet visible: its blob, flags and INTERNALDATE
    (None: now). A MULTIAPPEND (RFC 3502) commits several in one transaction."""

    stored: StoredMessage
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None


@dataclass(frozen=True, slots=True)
class CopyResult:
    """COPYUID's data (RFC 4315 section 3): source UIDs and the UIDs they got."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MessageSortKeys:
    """What SORT and THREAD read of a message (RFC 5256): its sent date (the Date
    header in UTC, None when missing or unparsable) and its cached keys."""

    uid: int
    sent_date: datetime | None
    keys: SortKeys


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
