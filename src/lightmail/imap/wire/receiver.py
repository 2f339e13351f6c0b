"""The incremental IMAP command receiver (sans-I/O, h11-shaped).

Bytes go in with ``receive_data``; ``next_event`` returns one event at a time:
a typed command (``lightmail.imap.wire.commands``), a ``BadCommand`` value,
``ContinuationRequest``, APPEND's ``LiteralChunk``/``AppendEnd``, ``IdleDone``,
``SaslResponse``, or the ``NEED_DATA`` / ``CONNECTION_CLOSED`` sentinels.

Two layers, both in this file:

* the *framer* (``Receiver``) finds where a command ends. A command is lines
  joined by literals: a line that ends in ``{n}`` or ``{n+}`` before CRLF is
  followed by n octets and then the rest of the command (RFC 3501 section 4.3,
  RFC 7888). The framer enforces every limit and streams APPEND's message
  literal instead of buffering it.
* the *parser* (``_Parser``) turns the complete raw bytes of one command into a
  command value, following RFC 3501 section 9 strictly (exactly one SP,
  case-insensitive keywords, no NUL, 7-bit outside literals).

Limits and the choices made where the RFCs leave room:

* ``max_line``: the octets outside literals in one command (all its lines).
  Longer: ``BadCommand``, then the rest of that line is discarded unread.
* ``max_literal``: the octets of all literals in one non-APPEND command.
  Larger: ``BadCommand``; a synchronizing literal is then not requested (the
  client will not send it, RFC 3501 section 7.5), a non-synchronizing one is
  read and discarded.
* ``max_append``: the APPEND message literal. A synchronizing APPEND is
  returned whatever its size: the session answers ``NO [TOOBIG]`` with
  ``reject_literal()`` (RFC 7889) and no octet is sent. A non-synchronizing
  one over the limit is a *fatal* ``BadCommand`` (code ``TOOBIG``): reading
  gigabytes only to discard them is worse than RFC 7888 section 4's option 2,
  answering ``* BYE`` and closing. Any non-synchronizing literal that must be
  discarded is discarded only up to ``max_append`` octets, beyond that it is
  fatal too.
* LITERAL+ (RFC 7888 section 3) semantics: non-synchronizing literals of any
  size up to the limits above are accepted in every command, so the server
  should advertise ``LITERAL+`` (never ``LITERAL-``) and ``APPENDLIMIT``.
* ``max_depth``: nesting of SEARCH keys (parentheses, NOT, OR).
* ``max_search_keys``: search keys in one SEARCH, each counted (a parenthesised
  list, NOT and OR count as one more each). More: ``BadCommand``, so that one
  command cannot ask for keys x messages evaluations without bound.
* Lines end in CRLF; a bare LF ends the line too but makes it a ``BadCommand``.
* NUL is refused everywhere, APPEND's message included (CHAR8, RFC 3501
  section 9): the session then gets ``BadCommand`` instead of ``AppendEnd``.
  8-bit octets are refused outside literals, except in quoted strings of a
  SEARCH that names a CHARSET other than US-ASCII.
* An empty line, or one without a readable tag, gives ``BadCommand(None, ...)``.
* One leniency where the meaning stays clear: spaces right after ``(`` and
  right before ``)`` of ID's parameter list and of a flag list are skipped,
  as Dovecot does (aioimaplib sends ``ID ( "name" "x" )``). Between the
  elements exactly one SP is still required.
* ``receive_data`` buffers what it is given: call ``next_event`` until
  ``NEED_DATA`` before feeding more (memory is then bounded by the limits plus
  one read).

Modal states (the session calls these after sending its own reply):
``accept_literal``/``reject_literal`` after every ``AppendCommand``,
``start_idle`` after ``+ idling``, ``expect_sasl_response`` after each ``+``
of AUTHENTICATE, ``discard_pending`` after ``OK`` to STARTTLS. Using them out
of turn is a bug in the caller and raises ``LocalProtocolError``; nothing the
peer sends makes the receiver raise.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from lightmail.imap.wire.commands import (
    AppendCommand,
    AuthenticateCommand,
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    Command,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    ExpungeCommand,
    FetchCommand,
    IdCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    RenameCommand,
    SearchCommand,
    SelectCommand,
    StartTlsCommand,
    StatusCommand,
    StoreCommand,
    StoreMode,
    SubscribeCommand,
    UidExpungeCommand,
    UnselectCommand,
    UnsubscribeCommand,
)
from lightmail.imap.wire.types import (
    STAR,
    AddressKey,
    AllKey,
    AndKey,
    BodySection,
    DateKey,
    FetchAttribute,
    FetchItem,
    FlagKey,
    HeaderKey,
    NotKey,
    OrKey,
    SearchKey,
    SectionText,
    SeqNumber,
    SequenceKey,
    SequenceSet,
    SizeKey,
    TextKey,
)
from lightmail.sansio import CONNECTION_CLOSED, NEED_DATA, LocalProtocolError, Sentinel

__all__ = [
    "CONNECTION_CLOSED",
    "NEED_DATA",
    "AppendEnd",
    "BadCommand",
    "ContinuationRequest",
    "Event",
    "IdleDone",
    "LiteralChunk",
    "LocalProtocolError",
    "Receiver",
    "SaslResponse",
    "Sentinel",
]

# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class BadCommand:
    """The peer broke the grammar or a limit: answer ``tag BAD`` (or ``* BAD`` if no tag).

    ``fatal``: the connection cannot continue; answer ``* BYE`` and close.
    ``code`` is a response code atom to include, such as ``TOOBIG``.
    ``text`` is ours, never contains client bytes, and is safe on the wire.
    """

    tag: bytes | None
    text: str
    fatal: bool = False
    code: str | None = None


@dataclass(frozen=True, slots=True)
class ContinuationRequest:
    """A synchronizing literal of ``size`` octets is due: send ``+ Ready for literal``."""

    size: int


@dataclass(frozen=True, slots=True)
class LiteralChunk:
    """A piece of the accepted APPEND message, in order; never the whole at once."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class AppendEnd:
    """The APPEND message and the CRLF ending the command arrived complete."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class IdleDone:
    """``DONE`` ended the IDLE with this tag (RFC 2177)."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class SaslResponse:
    """One line answering an AUTHENTICATE challenge, CRLF removed (base64, or ``*``)."""

    data: bytes = field(repr=False)

    @property
    def cancelled(self) -> bool:
        """``*`` cancels the exchange (RFC 3501 section 6.2.2): answer BAD."""
        return self.data == b"*"


Event: TypeAlias = (
    Command
    | BadCommand
    | ContinuationRequest
    | LiteralChunk
    | AppendEnd
    | IdleDone
    | SaslResponse
    | Sentinel
)

# --------------------------------------------------------------------------- grammar tables

_CTL_AND_SP = frozenset(range(0x21)) | {0x7F}
_ATOM_CHARS = frozenset(range(0x80)) - _CTL_AND_SP - frozenset(b'(){%*"\\]')
_ASTRING_CHARS = _ATOM_CHARS | {ord("]")}
_TAG_CHARS = _ASTRING_CHARS - {ord("+")}
_LIST_CHARS = _ATOM_CHARS | frozenset(b"%*]")
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
_ALPHA = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset(b"0123456789")
_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")

_QUOTED_7BIT = re.compile(rb'"((?:[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]|\\["\\])*)"')
_QUOTED_8BIT = re.compile(rb'"((?:[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\xff]|\\["\\])*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')
_LITERAL_HEAD = re.compile(rb"\{([0-9]+)(\+?)\}\r\n")
_NUMBER = re.compile(rb"[0-9]+")
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"( [0-9]|[0-9]{2})-([A-Za-z]{3})-([0-9]{4})'  # date-day-fixed "-" date-month "-" date-year
    rb" ([0-9]{2}):([0-9]{2}):([0-9]{2})"  # SP time
    rb' ([+-])([0-9]{2})([0-9]{2})"'  # SP zone
)
_MONTHS = {
    m: i + 1 for i, m in enumerate(b"JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())
}
_MAX_NUMBER = 0xFFFFFFFF  # number: unsigned 32-bit (RFC 3501 section 9)

_SYSTEM_FLAGS = {
    f.lower(): f for f in (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft")
}
_SYSTEM_FLAGS[b"\\recent"] = b"\\Recent"

_FETCH_MACROS: dict[bytes, tuple[FetchAttribute, ...]] = {
    b"FAST": (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE),
    b"ALL": (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE, FetchItem.ENVELOPE),
    b"FULL": (
        FetchItem.FLAGS,
        FetchItem.INTERNALDATE,
        FetchItem.RFC822_SIZE,
        FetchItem.ENVELOPE,
        FetchItem.BODY,
    ),
}
_FETCH_ITEMS = {item.value.encode(): item for item in FetchItem}
_SECTION_TEXTS = {t.value.encode(): t for t in SectionText}

_STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"})

_SEARCH_FLAGS: dict[bytes, tuple[bytes, bool]] = {
    b"ANSWERED": (b"\\Answered", True),
    b"DELETED": (b"\\Deleted", True),
    b"DRAFT": (b"\\Draft", True),
    b"FLAGGED": (b"\\Flagged", True),
    b"RECENT": (b"\\Recent", True),
    b"SEEN": (b"\\Seen", True),
    b"UNANSWERED": (b"\\Answered", False),
    b"UNDELETED": (b"\\Deleted", False),
    b"UNDRAFT": (b"\\Draft", False),
    b"UNFLAGGED": (b"\\Flagged", False),
    b"UNSEEN": (b"\\Seen", False),
}
_SEARCH_ADDRESSES = frozenset({b"BCC", b"CC", b"FROM", b"TO"})
_SEARCH_DATES: dict[bytes, tuple[Literal["before", "on", "since"], bool]] = {
    b"BEFORE": ("before", False),
    b"ON": ("on", False),
    b"SINCE": ("since", False),
    b"SENTBEFORE": ("before", True),
    b"SENTON": ("on", True),
    b"SENTSINCE": ("since", True),
}

# --------------------------------------------------------------------------- parser


class _ParseError(Exception):
    """The command breaks the grammar; ``args[0]`` is a fixed, wire-safe text."""


class _Incomplete(Exception):
    """The bytes end where a literal's data should be (it has not arrived yet)."""


class _Parser:
    """A cursor over the complete raw bytes of one command (literals inline)."""

    def __init__(self, buf: bytes, max_depth: int, max_keys: int | None = None) -> None:
        self.buf = buf
        self.pos = 0
        self.max_depth = max_depth
        self.depth = 0
        self.max_keys = max_keys
        self.keys = 0
        self.eight_bit_quoted = False

    # -- primitives

    def peek(self) -> int | None:
        return self.buf[self.pos] if self.pos < len(self.buf) else None

    def at(self, token: bytes) -> bool:
        return self.buf.startswith(token, self.pos)

    def expect(self, token: bytes, what: str) -> None:
        if not self.buf.startswith(token, self.pos):
            raise _ParseError(f"expected {what}")
        self.pos += len(token)

    def sp(self) -> None:
        self.expect(b" ", "a single space")

    def open_list(self) -> None:
        """``(`` and any spaces after it (the leniency in the module docstring)."""
        self.expect(b"(", '"("')
        while self.at(b" "):
            self.pos += 1

    def close_list(self) -> bool:
        """Any spaces and ``)``: consumed and True; else nothing consumed and False."""
        end = self.pos
        while self.buf.startswith(b" ", end):
            end += 1
        if not self.buf.startswith(b")", end):
            return False
        self.pos = end + 1
        return True

    def list_separator(self) -> None:
        """The SP between two list elements, where ``)`` was not found."""
        if not self.at(b" "):
            raise _ParseError('expected a single space or ")"')
        self.pos += 1

    def end(self) -> None:
        if self.pos != len(self.buf) - 2 or not self.at(b"\r\n"):
            raise _ParseError("unexpected characters at the end of the command")
        self.pos += 2

    def take(self, chars: frozenset[int]) -> bytes:
        start = self.pos
        buf = self.buf
        n = len(buf)
        while self.pos < n and buf[self.pos] in chars:
            self.pos += 1
        return buf[start : self.pos]

    def take1(self, chars: frozenset[int], what: str) -> bytes:
        value = self.take(chars)
        if not value:
            raise _ParseError(f"expected {what}")
        return value

    def word(self, what: str) -> bytes:
        """A keyword made of letters, digits and dots, upper-cased."""
        return self.take1(_NAME_CHARS, what).upper()

    # -- RFC 3501 section 9 productions

    def tag(self) -> bytes:
        return self.take1(_TAG_CHARS, "a tag")

    def atom(self) -> bytes:
        return self.take1(_ATOM_CHARS, "an atom")

    def number(self) -> int:
        m = _NUMBER.match(self.buf, self.pos)
        if m is None:
            raise _ParseError("expected a number")
        digits = m.group()
        if len(digits) > 10 or int(digits) > _MAX_NUMBER:
            raise _ParseError("number out of range")
        self.pos = m.end()
        return int(digits)

    def nz_number(self) -> int:
        if self.peek() == ord("0"):
            raise _ParseError("expected a non-zero number")
        return self.number()

    def quoted(self) -> bytes:
        regex = _QUOTED_8BIT if self.eight_bit_quoted else _QUOTED_7BIT
        m = regex.match(self.buf, self.pos)
        if m is None:
            raise _ParseError("invalid quoted string")
        self.pos = m.end()
        return _UNESCAPE.sub(rb"\1", m.group(1))

    def literal_head(self) -> tuple[int, bool]:
        """``{n}`` or ``{n+}`` and CRLF; returns (n, synchronizing)."""
        m = _LITERAL_HEAD.match(self.buf, self.pos)
        if m is None:
            raise _ParseError("invalid literal")
        digits = m.group(1)
        if len(digits) > 10 or int(digits) > _MAX_NUMBER:
            raise _ParseError("literal size out of range")
        self.pos = m.end()
        return int(digits), not m.group(2)

    def literal(self) -> bytes:
        size, _ = self.literal_head()
        if self.pos + size > len(self.buf):
            raise _Incomplete
        data = self.buf[self.pos : self.pos + size]
        if b"\x00" in data:
            raise _ParseError("NUL in literal")
        self.pos += size
        return data

    def string(self) -> bytes:
        c = self.peek()
        if c == ord('"'):
            return self.quoted()
        if c == ord("{"):
            return self.literal()
        raise _ParseError("expected a string")

    def astring(self) -> bytes:
        c = self.peek()
        if c == ord('"') or c == ord("{"):
            return self.string()
        return self.take1(_ASTRING_CHARS, "an astring")

    def nstring(self) -> bytes | None:
        if self.buf[self.pos : self.pos + 3].upper() == b"NIL":
            after = self.buf[self.pos + 3 : self.pos + 4]
            if after not in _ASTRING_BYTES:
                self.pos += 3
                return None
        return self.string()

    def mailbox(self) -> bytes:
        name = self.astring()
        return b"INBOX" if name.upper() == b"INBOX" else name

    def list_mailbox(self) -> bytes:
        c = self.peek()
        if c == ord('"') or c == ord("{"):
            return self.string()
        if c == ord("("):
            raise _ParseError("multiple LIST patterns are not supported")
        return self.take1(_LIST_CHARS, "a mailbox pattern")

    def flag(self) -> bytes:
        if self.peek() == ord("\\"):
            self.pos += 1
            name = b"\\" + self.atom()
            return _SYSTEM_FLAGS.get(name.lower(), name)
        return self.atom()

    def flag_list(self) -> tuple[bytes, ...]:
        self.open_list()
        flags: list[bytes] = []
        if not self.close_list():
            flags.append(self.flag())
            while not self.close_list():
                self.list_separator()
                flags.append(self.flag())
        return tuple(flags)

    def seq_number(self) -> SeqNumber:
        if self.at(b"*"):
            self.pos += 1
            return STAR
        return self.nz_number()

    def sequence_set(self) -> SequenceSet:
        ranges: list[tuple[SeqNumber, SeqNumber]] = []
        while True:
            first = self.seq_number()
            last = first
            if self.at(b":"):
                self.pos += 1
                last = self.seq_number()
            ranges.append((first, last))
            if not self.at(b","):
                return SequenceSet(tuple(ranges))
            self.pos += 1

    def date(self) -> datetime.date:
        quoted = self.at(b'"')
        if quoted:
            self.pos += 1
        m = _DATE.match(self.buf, self.pos)
        if m is None:
            raise _ParseError("expected a date (d-Mon-yyyy)")
        self.pos = m.end()
        if quoted:
            self.expect(b'"', "a closing quote")
        month = _MONTHS.get(m.group(2).upper())
        if month is None:
            raise _ParseError("invalid month")
        try:
            return datetime.date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise _ParseError("invalid date") from None

    def date_time(self) -> datetime.datetime:
        m = _DATE_TIME.match(self.buf, self.pos)
        if m is None:
            raise _ParseError('expected a date-time ("dd-Mon-yyyy hh:mm:ss +zzzz")')
        self.pos = m.end()
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        month = _MONTHS.get(mon.upper())
        if month is None or int(zh) > 23 or int(zm) > 59:
            raise _ParseError("invalid date-time")
        offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
        try:
            return datetime.datetime(
                int(year),
                month,
                int(day),
                int(hh),
                int(mm),
                int(ss),
                tzinfo=datetime.timezone(-offset if sign == b"-" else offset),
            )
        except ValueError:
            raise _ParseError("invalid date-time") from None

    # -- FETCH (RFC 3501 section 6.4.5)

    def fetch_attributes(self) -> tuple[FetchAttribute, ...]:
        if self.at(b"("):
            self.pos += 1
            attributes = [self.fetch_attribute()]
            while self.at(b" "):
                self.sp()
                attributes.append(self.fetch_attribute())
            self.expect(b")", '")"')
            return tuple(attributes)
        start = self.pos
        macro = _FETCH_MACROS.get(self.take(_NAME_CHARS).upper())
        if macro is not None and not self.at(b"["):
            return macro
        self.pos = start
        return (self.fetch_attribute(),)

    def fetch_attribute(self) -> FetchAttribute:
        name = self.word("a FETCH attribute")
        if name in (b"BODY", b"BODY.PEEK") and self.at(b"["):
            return self.body_section(peek=name == b"BODY.PEEK")
        item = _FETCH_ITEMS.get(name)
        if item is None:
            raise _ParseError("unknown FETCH attribute")
        return item

    def body_section(self, *, peek: bool) -> BodySection:
        self.expect(b"[", '"["')
        part: list[int] = []
        text: SectionText | None = None
        fields: tuple[bytes, ...] = ()
        if self.peek() in _DIGITS:
            part.append(self.nz_number())
            while self.at(b".") and self.buf[self.pos + 1 : self.pos + 2] in _DIGIT_BYTES:
                self.pos += 1
                part.append(self.nz_number())
            if self.at(b"."):
                self.pos += 1
                text = self.section_text(allow_mime=True)
        elif not self.at(b"]"):
            text = self.section_text(allow_mime=False)
        if text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
            self.sp()
            fields = self.header_list()
        self.expect(b"]", '"]"')
        partial: tuple[int, int] | None = None
        if self.at(b"<"):
            self.pos += 1
            origin = self.number()
            self.expect(b".", '"."')
            count = self.nz_number()
            self.expect(b">", '">"')
            partial = (origin, count)
        return BodySection(peek=peek, part=tuple(part), text=text, fields=fields, partial=partial)

    def section_text(self, *, allow_mime: bool) -> SectionText:
        text = _SECTION_TEXTS.get(self.word("a section specifier"))
        if text is None or (text is SectionText.MIME and not allow_mime):
            raise _ParseError("invalid section specifier")
        return text

    def header_list(self) -> tuple[bytes, ...]:
        self.expect(b"(", '"("')
        names = [self.astring()]
        while self.at(b" "):
            self.sp()
            names.append(self.astring())
        self.expect(b")", '")"')
        return tuple(names)

    # -- SEARCH (RFC 3501 section 6.4.4)

    def search_key(self) -> SearchKey:
        self.depth += 1
        if self.depth > self.max_depth:
            raise _ParseError("search keys nested too deeply")
        self.keys += 1
        if self.max_keys is not None and self.keys > self.max_keys:
            raise _ParseError(f"too many search keys (at most {self.max_keys})")
        key = self._search_key()
        self.depth -= 1
        return key

    def _search_key(self) -> SearchKey:
        c = self.peek()
        if c == ord("("):
            self.pos += 1
            keys = [self.search_key()]
            while self.at(b" "):
                self.sp()
                keys.append(self.search_key())
            self.expect(b")", '")"')
            return keys[0] if len(keys) == 1 else AndKey(tuple(keys))
        if c is not None and (c in _DIGITS or c == ord("*")):
            return SequenceKey(self.sequence_set(), uid=False)
        name = self.take1(_ALPHA, "a search key").upper()
        if name == b"ALL":
            return AllKey()
        if name in _SEARCH_FLAGS:
            flag, present = _SEARCH_FLAGS[name]
            return FlagKey(flag, present)
        if name == b"NEW":
            return AndKey((FlagKey(b"\\Recent"), FlagKey(b"\\Seen", present=False)))
        if name == b"OLD":
            return NotKey(FlagKey(b"\\Recent"))
        self.sp()  # every other key has an argument
        if name in (b"KEYWORD", b"UNKEYWORD"):
            return FlagKey(self.atom(), present=name == b"KEYWORD")
        if name in _SEARCH_ADDRESSES:
            return AddressKey(name, self.astring())
        if name == b"SUBJECT":
            return HeaderKey(name, self.astring())
        if name == b"HEADER":
            field_name = self.astring()
            self.sp()
            return HeaderKey(field_name, self.astring())
        if name in (b"BODY", b"TEXT"):
            return TextKey(self.astring(), whole_message=name == b"TEXT")
        if name in _SEARCH_DATES:
            op, sent = _SEARCH_DATES[name]
            return DateKey(op, self.date(), sent)
        if name in (b"LARGER", b"SMALLER"):
            return SizeKey("larger" if name == b"LARGER" else "smaller", self.number())
        if name == b"NOT":
            return NotKey(self.search_key())
        if name == b"OR":
            left = self.search_key()
            self.sp()
            return OrKey(left, self.search_key())
        if name == b"UID":
            return SequenceKey(self.sequence_set(), uid=True)
        raise _ParseError("unknown search key")


_ASTRING_BYTES = frozenset(bytes([c]) for c in _ASTRING_CHARS)
_DIGIT_BYTES = frozenset(bytes([c]) for c in _DIGITS)

# --------------------------------------------------------------------------- commands

_Handler: TypeAlias = Callable[[_Parser, bytes, bool], Command]


def _no_arguments(cls: Callable[[bytes], Command]) -> _Handler:
    def parse(p: _Parser, tag: bytes, uid: bool) -> Command:
        p.end()
        return cls(tag)

    return parse


def _one_mailbox(cls: Callable[[bytes, bytes], Command]) -> _Handler:
    def parse(p: _Parser, tag: bytes, uid: bool) -> Command:
        p.sp()
        mailbox = p.mailbox()
        p.end()
        return cls(tag, mailbox)

    return parse


def _select(readonly: bool) -> _Handler:
    def parse(p: _Parser, tag: bytes, uid: bool) -> Command:
        p.sp()
        mailbox = p.mailbox()
        p.end()
        return SelectCommand(tag, mailbox, readonly=readonly)

    return parse


def _authenticate(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    mechanism = p.atom().upper().decode("ascii")
    initial: bytes | None = None
    if p.at(b" "):
        p.sp()
        initial = p.take1(_BASE64_CHARS, "base64 or =")
        if initial == b"=":
            initial = b""
        elif _BASE64.fullmatch(initial) is None:
            raise _ParseError("invalid base64")
    p.end()
    return AuthenticateCommand(tag, mechanism, initial)


def _login(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    userid = p.astring()
    p.sp()
    password = p.astring()
    p.end()
    return LoginCommand(tag, userid, password)


def _rename(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    old = p.mailbox()
    p.sp()
    new = p.mailbox()
    p.end()
    return RenameCommand(tag, old, new)


def _option_list(p: _Parser) -> tuple[str, ...]:
    p.expect(b"(", '"("')
    options: list[str] = []
    if not p.at(b")"):
        options.append(p.atom().upper().decode("ascii"))
        while p.at(b" "):
            p.sp()
            options.append(p.atom().upper().decode("ascii"))
    p.expect(b")", '")"')
    return tuple(options)


def _list(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    select_options: tuple[str, ...] = ()
    if p.at(b"("):  # RFC 5258 list-select-opts
        select_options = _option_list(p)
        p.sp()
    reference = p.mailbox()
    p.sp()
    pattern = p.list_mailbox()
    return_options: tuple[str, ...] = ()
    if p.at(b" "):  # RFC 5258 list-return-opts
        p.sp()
        if p.word('"RETURN"') != b"RETURN":
            raise _ParseError('expected "RETURN"')
        p.sp()
        return_options = _option_list(p)
    p.end()
    return ListCommand(tag, reference, pattern, select_options, return_options)


def _lsub(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    reference = p.mailbox()
    p.sp()
    pattern = p.list_mailbox()
    p.end()
    return LsubCommand(tag, reference, pattern)


def _status(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    p.expect(b"(", '"("')
    items = [p.word("a STATUS item").decode("ascii")]
    while p.at(b" "):
        p.sp()
        items.append(p.word("a STATUS item").decode("ascii"))
    p.expect(b")", '")"')
    p.end()
    if not _STATUS_ITEMS.issuperset(items):
        raise _ParseError("unknown STATUS item")
    return StatusCommand(tag, mailbox, tuple(items))


def _append(p: _Parser, tag: bytes, uid: bool) -> AppendCommand:
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    flags: tuple[bytes, ...] = ()
    date_time: datetime.datetime | None = None
    if p.at(b"("):
        flags = p.flag_list()
        p.sp()
    if p.at(b'"'):
        date_time = p.date_time()
        p.sp()
    size, synchronizing = p.literal_head()
    if p.pos != len(p.buf):  # the framer stops right after the message's literal head
        raise _ParseError("unexpected data after the APPEND literal")
    return AppendCommand(tag, mailbox, flags, date_time, size, synchronizing)


def _expunge(p: _Parser, tag: bytes, uid: bool) -> Command:
    if not uid:
        p.end()
        return ExpungeCommand(tag)
    p.sp()
    sequence_set = p.sequence_set()
    p.end()
    return UidExpungeCommand(tag, sequence_set)


def _search(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    charset: str | None = None
    start = p.pos
    if p.take(_ALPHA).upper() == b"CHARSET" and p.at(b" "):
        p.sp()
        try:
            charset = p.astring().decode("ascii").upper()
        except UnicodeDecodeError:
            raise _ParseError("invalid charset name") from None
        p.sp()
        p.eight_bit_quoted = charset != "US-ASCII"
    else:
        p.pos = start
    keys = [p.search_key()]
    while p.at(b" "):
        p.sp()
        keys.append(p.search_key())
    p.end()
    key = keys[0] if len(keys) == 1 else AndKey(tuple(keys))
    return SearchCommand(tag, uid, charset, key)


def _fetch(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    sequence_set = p.sequence_set()
    p.sp()
    attributes = p.fetch_attributes()
    p.end()
    return FetchCommand(tag, uid, sequence_set, attributes)


def _store(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    sequence_set = p.sequence_set()
    p.sp()
    mode: StoreMode = "replace"
    if p.at(b"+"):
        mode = "add"
        p.pos += 1
    elif p.at(b"-"):
        mode = "remove"
        p.pos += 1
    item = p.word('"FLAGS"')
    if item not in (b"FLAGS", b"FLAGS.SILENT"):
        raise _ParseError('expected "FLAGS" or "FLAGS.SILENT"')
    p.sp()
    if p.at(b"("):
        flags = p.flag_list()
    else:
        flag_items = [p.flag()]
        while p.at(b" "):
            p.sp()
            flag_items.append(p.flag())
        flags = tuple(flag_items)
    p.end()
    return StoreCommand(tag, uid, sequence_set, mode, item == b"FLAGS.SILENT", flags)


def _copy_or_move(cls: type[CopyCommand] | type[MoveCommand]) -> _Handler:
    def parse(p: _Parser, tag: bytes, uid: bool) -> Command:
        p.sp()
        sequence_set = p.sequence_set()
        p.sp()
        mailbox = p.mailbox()
        p.end()
        return cls(tag, uid, sequence_set, mailbox)

    return parse


def _id(p: _Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    params: tuple[tuple[bytes, bytes | None], ...] | None = None
    if p.at(b"("):
        p.open_list()
        pairs: list[tuple[bytes, bytes | None]] = []
        while not p.close_list():
            if pairs:
                p.list_separator()
            name = p.string()
            p.sp()
            pairs.append((name, p.nstring()))
        params = tuple(pairs)
    elif p.word("NIL") != b"NIL":
        raise _ParseError('expected "(" or NIL')
    p.end()
    return IdCommand(tag, params)


def _enable(p: _Parser, tag: bytes, uid: bool) -> Command:
    capabilities: list[str] = []
    while True:
        p.sp()
        capabilities.append(p.atom().upper().decode("ascii"))
        if not p.at(b" "):
            break
    p.end()
    return EnableCommand(tag, tuple(capabilities))


_COMMANDS: dict[bytes, _Handler] = {
    b"CAPABILITY": _no_arguments(CapabilityCommand),
    b"NOOP": _no_arguments(NoopCommand),
    b"LOGOUT": _no_arguments(LogoutCommand),
    b"STARTTLS": _no_arguments(StartTlsCommand),
    b"AUTHENTICATE": _authenticate,
    b"LOGIN": _login,
    b"SELECT": _select(readonly=False),
    b"EXAMINE": _select(readonly=True),
    b"CREATE": _one_mailbox(CreateCommand),
    b"DELETE": _one_mailbox(DeleteCommand),
    b"RENAME": _rename,
    b"SUBSCRIBE": _one_mailbox(SubscribeCommand),
    b"UNSUBSCRIBE": _one_mailbox(UnsubscribeCommand),
    b"LIST": _list,
    b"LSUB": _lsub,
    b"STATUS": _status,
    b"APPEND": _append,
    b"CHECK": _no_arguments(CheckCommand),
    b"CLOSE": _no_arguments(CloseCommand),
    b"UNSELECT": _no_arguments(UnselectCommand),
    b"EXPUNGE": _expunge,
    b"SEARCH": _search,
    b"FETCH": _fetch,
    b"STORE": _store,
    b"COPY": _copy_or_move(CopyCommand),
    b"MOVE": _copy_or_move(MoveCommand),
    b"IDLE": _no_arguments(IdleCommand),
    b"ID": _id,
    b"NAMESPACE": _no_arguments(NamespaceCommand),
    b"ENABLE": _enable,
}
_UID_COMMANDS = frozenset({b"COPY", b"FETCH", b"SEARCH", b"STORE", b"EXPUNGE", b"MOVE"})


def _command_head(p: _Parser) -> tuple[bytes, bytes, bool]:
    """``tag SP [UID SP] name``: returns (tag, upper-case name, uid)."""
    if p.at(b"\r\n"):
        raise _ParseError("empty command line")
    tag = p.tag()
    p.sp()
    name = p.atom().upper()
    uid = name == b"UID"
    if uid:
        p.sp()
        name = p.atom().upper()
        if name not in _UID_COMMANDS:
            raise _ParseError("command not allowed after UID")
    elif name not in _COMMANDS:
        raise _ParseError("unknown command")
    return tag, name, uid


def _parse_command(buf: bytes, max_depth: int, max_keys: int) -> Command:
    """Parse one complete command."""
    p = _Parser(buf, max_depth, max_keys)
    tag, name, uid = _command_head(p)
    return _COMMANDS[name](p, tag, uid)


def _parse_head(buf: bytes, max_depth: int) -> AppendCommand | None:
    """For bytes ending in a literal's head: the APPEND it starts, or None if it is an argument.

    Raises ``_ParseError`` if what is there is already wrong, so that a bad
    command's literal is never asked for.
    """
    p = _Parser(buf, max_depth)
    tag, name, uid = _command_head(p)
    if name != b"APPEND":
        return None
    try:
        return _append(p, tag, uid)
    except _Incomplete:  # the literal is APPEND's mailbox
        return None


def _extract_tag(data: bytes | bytearray) -> bytes | None:
    """The tag at the start of a line, if there is one followed by SP or CR."""
    end = 0
    while end < len(data) and data[end] in _TAG_CHARS:
        end += 1
    if end and data[end : end + 1] in (b" ", b"\r"):
        return bytes(data[:end])
    return None


def _literal_tail(line: bytes, *, truncated: bool = False) -> tuple[int | None, bool] | None:
    """If ``line`` announces a literal (``{n}`` / ``{n+}`` before CRLF): (n, synchronizing).

    n is None when out of range. ``truncated``: ``line`` is only the end of a
    discarded line, so digits running to its start announce an unknown size.
    """
    if not line.endswith(b"}\r\n"):
        return None
    end = len(line) - 3
    synchronizing = line[end - 1 : end] != b"+"
    if not synchronizing:
        end -= 1
    start = end
    while start > 0 and line[start - 1] in _DIGITS:
        start -= 1
    if start == end:
        return None
    if start == 0:
        return (None, synchronizing) if truncated else None
    if line[start - 1] != ord("{"):
        return None
    digits = line[start:end]
    size = int(digits) if len(digits) <= 10 and int(digits) <= _MAX_NUMBER else None
    return size, synchronizing


# --------------------------------------------------------------------------- framer


class _State(enum.Enum):
    COMMAND = enum.auto()  # reading a line of a command (its first or a later one)
    LITERAL = enum.auto()  # reading a literal of a non-APPEND command into the buffer
    DISCARD_LINE = enum.auto()  # skipping to the end of a bad line
    DISCARD_LITERAL = enum.auto()  # skipping a non-synchronizing literal of a bad command
    APPEND_DECISION = enum.auto()  # waiting for accept_literal() / reject_literal()
    APPEND_DATA = enum.auto()  # streaming APPEND's message as LiteralChunk
    APPEND_END = enum.auto()  # expecting the CRLF after APPEND's message
    IDLE = enum.auto()  # expecting DONE
    SASL = enum.auto()  # expecting one AUTHENTICATE response line
    CLOSED = enum.auto()


_MAX_CHUNK = 64 * 1024
_TAIL = 32  # of a discarded line: enough to recognise "{4294967295+}\r\n" at its end


class Receiver:
    """Bytes in, IMAP events out; see the module docstring for limits and modes."""

    def __init__(
        self,
        *,
        max_line: int = 64 * 1024,
        max_literal: int = 64 * 1024,
        max_append: int = 64 * 1024 * 1024,
        max_depth: int = 32,
        max_search_keys: int = 100,
    ) -> None:
        if min(max_line, max_literal, max_append) < 1024 or not 1 <= max_depth <= 100:
            raise ValueError("limits too small (or max_depth outside 1..100)")
        if max_search_keys < 1:
            raise ValueError("max_search_keys must be at least 1")
        self._max_line = max_line
        self._max_literal = max_literal
        self._max_append = max_append
        self._max_depth = max_depth
        self._max_search_keys = max_search_keys
        self._buf = bytearray()  # received, not yet consumed
        self._eof = False
        self._state = _State.COMMAND
        self._cmd = bytearray()  # the current command so far: lines and literal data
        self._line_total = 0  # octets outside literals in the current command
        self._literal_total = 0
        self._scan = 0  # how far _buf was searched for LF without finding one
        self._remaining = 0  # octets left in the current literal
        self._tail = b""  # the end of the line being discarded
        self._discarded = 0  # octets of that line discarded so far
        self._mode_tag = b""  # tag of the APPEND, IDLE or AUTHENTICATE in progress
        self._append: AppendCommand | None = None
        self._last_tag = b""

    # -- input

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed its side."""
        if self._state is _State.CLOSED and not self._eof:
            return  # after a fatal BadCommand: nothing more is read
        if self._eof:
            raise LocalProtocolError("receive_data after end of file")
        if data:
            self._buf += data
        else:
            self._eof = True

    # -- session -> receiver

    def accept_literal(self) -> None:
        """The session takes APPEND's message: LiteralChunk events follow, then AppendEnd."""
        append = self._expect_append_decision()
        if append.size > self._max_append:
            raise LocalProtocolError("APPEND literal over max_append: reject it (TOOBIG)")
        self._append = None
        self._remaining = append.size
        self._state = _State.APPEND_DATA

    def reject_literal(self) -> None:
        """The session answered NO: a synchronizing literal will not come, else it is discarded."""
        append = self._expect_append_decision()
        self._append = None
        if append.synchronizing:
            self._state = _State.COMMAND
        else:
            self._remaining = append.size
            self._tail = b""
            self._discarded = 0
            self._state = _State.DISCARD_LITERAL

    def start_idle(self) -> None:
        """After ``+ idling``: the next line must be DONE (RFC 2177)."""
        self._expect_between_commands("start_idle")
        self._mode_tag = self._last_tag
        self._state = _State.IDLE

    def expect_sasl_response(self) -> None:
        """After a ``+`` challenge to AUTHENTICATE: the next line is a SaslResponse."""
        self._expect_between_commands("expect_sasl_response")
        self._mode_tag = self._last_tag
        self._state = _State.SASL

    def discard_pending(self) -> int:
        """Drop bytes received but not yet parsed; call after STARTTLS's OK.

        Anything pipelined after STARTTLS arrived in clear text and must not be
        treated as sent under TLS (command injection, RFC 2595 section 3.1 /
        CVE-2011-0411). Returns how many octets were dropped.
        """
        self._expect_between_commands("discard_pending")
        return len(self._consume(len(self._buf)))

    def _expect_append_decision(self) -> AppendCommand:
        if self._state is not _State.APPEND_DECISION or self._append is None:
            raise LocalProtocolError("no AppendCommand is waiting for a decision")
        return self._append

    def _expect_between_commands(self, what: str) -> None:
        if self._state is not _State.COMMAND or self._cmd:
            raise LocalProtocolError(f"{what}() is only valid between commands")

    # -- output

    def next_event(self) -> Event:
        """The next event; ``NEED_DATA`` when the buffered bytes are used up."""
        while True:
            event = self._step()
            if event is not None:
                return event

    def _step(self) -> Event | None:
        """Advance by one state; None means "call again"."""
        match self._state:
            case _State.COMMAND:
                return self._read_command_line()
            case _State.LITERAL:
                return self._read_literal()
            case _State.DISCARD_LINE:
                return self._discard_line()
            case _State.DISCARD_LITERAL:
                return self._discard_literal()
            case _State.APPEND_DECISION:
                raise LocalProtocolError("call accept_literal() or reject_literal() first")
            case _State.APPEND_DATA:
                return self._read_append_data()
            case _State.APPEND_END:
                return self._read_append_end()
            case _State.IDLE:
                return self._read_idle_line()
            case _State.SASL:
                return self._read_sasl_line()
            case _State.CLOSED:
                return CONNECTION_CLOSED

    # -- helpers

    def _no_data(self) -> Sentinel:
        if self._eof:
            self._state = _State.CLOSED
            self._consume(len(self._buf))
            return CONNECTION_CLOSED
        return NEED_DATA

    def _consume(self, n: int) -> bytes:
        """Remove and return the first ``n`` buffered octets (the only place that does)."""
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._scan = 0
        return data

    def _take_line(self, limit: int) -> bytes | Literal["overflow"] | None:
        """One line with its LF; None when more data is needed; "overflow" past ``limit``."""
        lf = self._buf.find(b"\n", self._scan)
        if lf < 0:
            self._scan = len(self._buf)
            return "overflow" if len(self._buf) > limit else None
        if lf + 1 > limit:
            return "overflow"
        return self._consume(lf + 1)

    def _reset_command(self) -> None:
        self._cmd.clear()
        self._line_total = 0
        self._literal_total = 0

    def _fatal(self, tag: bytes | None, text: str, code: str | None = None) -> BadCommand:
        self._reset_command()
        self._consume(len(self._buf))
        self._state = _State.CLOSED
        return BadCommand(tag, text, fatal=True, code=code)

    def _bad(self, tag: bytes | None, text: str, line: bytes) -> BadCommand:
        """A bad command whose last line was ``line``, consumed whole.

        If that line announced a non-synchronizing literal the client sends it
        regardless, so it is discarded (RFC 7888 section 4, option 1) before
        the next command is read; a synchronizing one is simply never asked for.
        """
        self._reset_command()
        self._state = _State.COMMAND
        literal = _literal_tail(line)
        if literal is not None and not literal[1]:
            size = literal[0]
            if size is None or size > self._max_append:
                return self._fatal(tag, text + "; literal too large to discard", "TOOBIG")
            self._remaining = size
            self._tail = b""
            self._discarded = 0
            self._state = _State.DISCARD_LITERAL
        return BadCommand(tag, text)

    def _line_too_long(self, tag: bytes | None, text: str) -> BadCommand:
        self._reset_command()
        self._tail = b""
        self._discarded = 0
        self._state = _State.DISCARD_LINE
        return BadCommand(tag, text)

    # -- states

    def _read_command_line(self) -> Event | None:
        limit = self._max_line - self._line_total
        line = self._take_line(limit)
        if line == "overflow":
            tag = _extract_tag(self._cmd or self._buf[:limit])
            return self._line_too_long(tag, "command line too long")
        if line is None:
            return self._no_data()
        self._cmd += line
        self._line_total += len(line)
        tag = _extract_tag(self._cmd)
        if not line.endswith(b"\r\n"):
            return self._bad(tag, "line not terminated by CRLF", line)
        if b"\x00" in line:
            return self._bad(tag, "NUL in command", line)
        literal = _literal_tail(line)
        if literal is None:
            return self._complete_command(line)
        size, synchronizing = literal
        if size is None:
            return self._bad(tag, "literal size out of range", line)
        try:
            append = _parse_head(bytes(self._cmd), self._max_depth)
        except _ParseError as e:
            return self._bad(tag, e.args[0], line)
        if append is not None:
            return self._start_append(append)
        if self._literal_total + size > self._max_literal:
            return self._bad(tag, "literal too large", line)
        self._literal_total += size
        self._remaining = size
        self._state = _State.LITERAL
        return ContinuationRequest(size) if synchronizing else None

    def _complete_command(self, line: bytes) -> Event:
        cmd = bytes(self._cmd)
        tag = _extract_tag(cmd)
        try:
            command = _parse_command(cmd, self._max_depth, self._max_search_keys)
        except _ParseError as e:
            return self._bad(tag, e.args[0], line)
        except _Incomplete:  # cannot happen: every literal before the last line is complete
            return self._bad(tag, "incomplete literal", line)
        self._reset_command()
        if isinstance(command, AppendCommand):  # cannot happen: APPEND needs a literal
            return BadCommand(tag, "APPEND without a message literal")
        self._last_tag = command.tag
        return command

    def _start_append(self, command: AppendCommand) -> Event:
        self._reset_command()
        if not command.synchronizing and command.size > self._max_append:
            return self._fatal(command.tag, "APPEND message too large", "TOOBIG")
        self._append = command
        self._mode_tag = self._last_tag = command.tag
        self._state = _State.APPEND_DECISION
        return command

    def _read_literal(self) -> Event | None:
        if not self._buf:
            return self._no_data()
        n = min(self._remaining, len(self._buf))
        self._cmd += self._consume(n)
        self._remaining -= n
        if self._remaining == 0:
            self._state = _State.COMMAND
        return None

    def _discard_line(self) -> Event | None:
        lf = self._buf.find(b"\n")
        if lf < 0:
            if not self._buf:
                return self._no_data()
            self._discarded += len(self._buf)
            self._tail = (self._tail + self._consume(len(self._buf))[-_TAIL:])[-_TAIL:]
            return None
        self._discarded += lf + 1
        self._tail = (self._tail + self._consume(lf + 1)[-_TAIL:])[-_TAIL:]
        literal = _literal_tail(self._tail, truncated=self._discarded > len(self._tail))
        self._tail = b""
        self._discarded = 0
        self._state = _State.COMMAND
        if literal is not None and not literal[1]:
            size = literal[0]
            if size is None or size > self._max_append:
                return self._fatal(None, "literal too large to discard", "TOOBIG")
            self._remaining = size
            self._state = _State.DISCARD_LITERAL
        return None

    def _discard_literal(self) -> Event | None:
        if self._remaining == 0:
            self._state = _State.DISCARD_LINE
            return None
        if not self._buf:
            return self._no_data()
        self._remaining -= len(self._consume(self._remaining))
        return None

    def _read_append_data(self) -> Event | None:
        if self._remaining == 0:
            self._state = _State.APPEND_END
            return None
        if not self._buf:
            return self._no_data()
        data = self._consume(min(self._remaining, _MAX_CHUNK))
        self._remaining -= len(data)
        if b"\x00" in data:
            self._tail = b""
            self._discarded = 0
            self._state = _State.DISCARD_LITERAL
            return BadCommand(self._mode_tag, "NUL in APPEND literal")
        return LiteralChunk(data)

    def _read_append_end(self) -> Event | None:
        if len(self._buf) < 2 and b"\r\n".startswith(self._buf):  # b"" or b"\r": wait
            return self._no_data()
        if self._buf.startswith(b"\r\n"):
            self._consume(2)
            self._state = _State.COMMAND
            return AppendEnd(self._mode_tag)
        self._tail = b""
        self._discarded = 0
        self._state = _State.DISCARD_LINE
        return BadCommand(self._mode_tag, "expected CRLF after the APPEND literal")

    def _read_mode_line(self) -> bytes | BadCommand | Sentinel:
        """A line in IDLE or SASL mode, without CRLF; errors end the mode."""
        line = self._take_line(self._max_line)
        if line == "overflow":
            return self._line_too_long(self._mode_tag, "line too long")
        if line is None:
            return self._no_data()
        if not line.endswith(b"\r\n"):
            return self._bad(self._mode_tag, "line not terminated by CRLF", line)
        if b"\x00" in line:
            return self._bad(self._mode_tag, "NUL in line", line)
        self._state = _State.COMMAND
        return line[:-2]

    def _read_idle_line(self) -> Event:
        line = self._read_mode_line()
        if not isinstance(line, bytes):
            return line
        if line.upper() != b"DONE":
            return self._bad(self._mode_tag, "expected DONE", line + b"\r\n")
        return IdleDone(self._mode_tag)

    def _read_sasl_line(self) -> Event:
        line = self._read_mode_line()
        return SaslResponse(line) if isinstance(line, bytes) else line
