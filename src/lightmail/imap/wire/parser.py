"""The lexical layer of the IMAP grammar: a cursor over one command's bytes.

``Parser`` holds the complete raw bytes of one command (its lines and the data
of its literals inline) and reads the productions of RFC 3501 section 9 that
every command shares: atoms, numbers, strings and literals, mailbox names,
flags, sequence sets and dates. The per-command grammar is in
``lightmail.imap.wire.grammar``; the framing (where a command ends) in
``lightmail.imap.wire.receiver``.

Strict where the RFC is: exactly one SP, case-insensitive keywords, no NUL,
7-bit outside literals (8-bit quoted strings only when ``eight_bit_quoted``:
after a SEARCH CHARSET, or in a session that enabled UTF8=ACCEPT, RFC 9755
section 3, or IMAP4rev2, RFC 9051 section 4.3.1, which also require them to be
valid UTF-8: see ``Utf8``).
One leniency where the meaning stays clear: spaces right after ``(`` and
right before ``)`` of ID's parameter list and of a flag list are skipped
(``open_list`` / ``close_list``), as Dovecot does (aioimaplib sends
``ID ( "name" "x" )``). Between the elements exactly one SP is still required.

A grammar error raises ``ParseError`` with a fixed, wire-safe text; bytes that
end where a literal's data should be raise ``Incomplete``.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Callable
from typing import TypeAlias, TypeVar

from lightmail.imap.wire.commands import Command
from lightmail.imap.wire.types import STAR, PartialRange, SeqNumber, SequenceSet

__all__ = [
    "ALPHA",
    "DIGITS",
    "MAX_MODSEQ",
    "MAX_NUMBER",
    "MAX_NUMBER64",
    "NAME_CHARS",
    "Handler",
    "Incomplete",
    "ParseError",
    "Parser",
    "Utf8",
    "extract_tag",
    "literal_tail",
]

_CTL_AND_SP = frozenset(range(0x21)) | {0x7F}
_ATOM_CHARS = frozenset(range(0x80)) - _CTL_AND_SP - frozenset(b'(){%*"\\]')
_ASTRING_CHARS = _ATOM_CHARS | {ord("]")}
_TAG_CHARS = _ASTRING_CHARS - {ord("+")}
_LIST_CHARS = _ATOM_CHARS | frozenset(b"%*]")
_OBJECTID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
ALPHA = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
DIGITS = frozenset(b"0123456789")

_QUOTED_7BIT = re.compile(rb'"((?:[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]|\\["\\])*)"')
_QUOTED_8BIT = re.compile(rb'"((?:[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\xff]|\\["\\])*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')
_LITERAL_HEAD = re.compile(rb"\{([0-9]+)(\+?)\}\r\n")
_NUMBER = re.compile(rb"[0-9]+")
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"( [0-9]|[0-9]{2})-([A-Za-z]{3})-([0-9]{4})'  # date-day-fixed "-" date-month "-" date-year
    rb" ([0-9]{2}):([0-9]{2}):([0-9]{2})"  # SP time
    rb' ([+-])([0-9]{2})([0-9]{2})"'  # SP zone
)
_MONTHS = {
    m: i + 1 for i, m in enumerate(b"JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())
}
MAX_NUMBER = 0xFFFFFFFF  # number: unsigned 32-bit (RFC 3501 section 9)
MAX_NUMBER64 = (1 << 63) - 1  # number64: sizes and offsets (RFC 9051 section 9)
MAX_MODSEQ = (1 << 63) - 1  # mod-sequence-value: unsigned 63-bit (RFC 7162 section 7)

_SYSTEM_FLAGS = {
    f.lower(): f for f in (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft")
}
_SYSTEM_FLAGS[b"\\recent"] = b"\\Recent"

_ASTRING_BYTES = frozenset(bytes([c]) for c in _ASTRING_CHARS)

_T = TypeVar("_T")
_U = TypeVar("_U")


class Utf8(enum.Enum):
    """What a session enabled for its quoted strings. Both enabled modes take valid
    UTF-8 in every quoted string; they differ in the charset labels they allow."""

    OFF = enum.auto()
    """IMAP4rev1: 7-bit, 8-bit only after a SEARCH CHARSET other than US-ASCII."""
    ACCEPT = enum.auto()
    """ENABLE UTF8=ACCEPT (RFC 9755 section 3): SEARCH takes no CHARSET, SORT and
    THREAD only UTF-8."""
    REV2 = enum.auto()
    """ENABLE IMAP4rev2 (RFC 9051 section 4.3.1): charset labels as in IMAP4rev1."""


class ParseError(Exception):
    """The command breaks the grammar; ``args[0]`` is a fixed, wire-safe text."""


class Incomplete(Exception):
    """The bytes end where a literal's data should be (it has not arrived yet)."""


class Parser:
    """A cursor over the complete raw bytes of one command (literals inline).

    ``max_depth`` and ``max_keys`` bound SEARCH's nesting and key count, which
    ``depth`` and ``keys`` count as the SEARCH grammar reads.
    """

    def __init__(
        self, buf: bytes, max_depth: int, max_keys: int | None = None, *, utf8: Utf8 = Utf8.OFF
    ) -> None:
        self.buf = buf
        self.pos = 0
        self.max_depth = max_depth
        self.depth = 0
        self.max_keys = max_keys
        self.keys = 0
        self.utf8 = utf8
        self.eight_bit_quoted = utf8 is not Utf8.OFF

    # -- primitives

    def peek(self) -> int | None:
        return self.buf[self.pos] if self.pos < len(self.buf) else None

    def at(self, token: bytes) -> bool:
        return self.buf.startswith(token, self.pos)

    def expect(self, token: bytes, what: str) -> None:
        if not self.buf.startswith(token, self.pos):
            raise ParseError(f"expected {what}")
        self.pos += len(token)

    def sp(self) -> None:
        self.expect(b" ", "a single space")

    def open_list(self) -> None:
        """``(`` and any spaces after it (the leniency in the module docstring)."""
        self.expect(b"(", '"("')
        while self.at(b" "):
            self.pos += 1

    def parenthesized(self, item: Callable[[], _T]) -> list[_T]:
        """``"(" item *(SP item) ")"``: one or more items, exactly one SP between."""
        self.expect(b"(", '"("')
        items = [item()]
        while self.at(b" "):
            self.sp()
            items.append(item())
        self.expect(b")", '")"')
        return items

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
            raise ParseError('expected a single space or ")"')
        self.pos += 1

    def end(self) -> None:
        if self.pos != len(self.buf) - 2 or not self.at(b"\r\n"):
            raise ParseError("unexpected characters at the end of the command")
        self.pos += 2

    def two(self, first: Callable[[], _T], second: Callable[[], _U]) -> tuple[_T, _U]:
        """``SP first SP second`` and the end of the command: the arguments of
        RENAME, LSUB, LOGIN, COPY and MOVE."""
        self.sp()
        one = first()
        self.sp()
        other = second()
        self.end()
        return one, other

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
            raise ParseError(f"expected {what}")
        return value

    def word(self, what: str) -> bytes:
        """A keyword made of letters, digits and dots, upper-cased."""
        return self.take1(NAME_CHARS, what).upper()

    # -- RFC 3501 section 9 productions

    def tag(self) -> bytes:
        return self.take1(_TAG_CHARS, "a tag")

    def atom(self) -> bytes:
        return self.take1(_ATOM_CHARS, "an atom")

    def number(self, largest: int = MAX_NUMBER) -> int:
        """``number`` (unsigned 32-bit), or RFC 9051's ``number64`` for sizes and
        octet offsets with ``largest=MAX_NUMBER64``."""
        m = _NUMBER.match(self.buf, self.pos)
        if m is None:
            raise ParseError("expected a number")
        digits = m.group()
        if len(digits) > len(str(largest)) or int(digits) > largest:
            raise ParseError("number out of range")
        self.pos = m.end()
        return int(digits)

    def mod_sequence(self, *, zero: bool = False) -> int:
        """``mod-sequence-value`` (1 to 2**63-1), or ``mod-sequence-valzer`` (0 too)
        with ``zero`` (RFC 7162 section 7)."""
        m = _NUMBER.match(self.buf, self.pos)
        if m is None:
            raise ParseError("expected a mod-sequence")
        digits = m.group()
        if len(digits) > 19 or int(digits) > MAX_MODSEQ or not (zero or int(digits)):
            raise ParseError("mod-sequence out of range")
        self.pos = m.end()
        return int(digits)

    def nz_number(self, largest: int = MAX_NUMBER) -> int:
        if self.peek() == ord("0"):
            raise ParseError("expected a non-zero number")
        return self.number(largest)

    def quoted(self) -> bytes:
        regex = _QUOTED_8BIT if self.eight_bit_quoted else _QUOTED_7BIT
        m = regex.match(self.buf, self.pos)
        if m is None:
            raise ParseError("invalid quoted string")
        if self.utf8 is not Utf8.OFF and not m.group(1).isascii():
            try:
                m.group(1).decode("utf-8")
            except UnicodeDecodeError:  # RFC 9755 section 3, RFC 9051 section 4.3.1: BAD
                raise ParseError("invalid UTF-8 in a quoted string") from None
        self.pos = m.end()
        return _UNESCAPE.sub(rb"\1", m.group(1))

    def literal_head(self) -> tuple[int, bool]:
        """``{n}`` or ``{n+}`` and CRLF; returns (n, synchronizing)."""
        m = _LITERAL_HEAD.match(self.buf, self.pos)
        if m is None:
            raise ParseError("invalid literal")
        digits = m.group(1)
        if len(digits) > 10 or int(digits) > MAX_NUMBER:
            raise ParseError("literal size out of range")
        self.pos = m.end()
        return int(digits), not m.group(2)

    def literal(self) -> bytes:
        size, _ = self.literal_head()
        if self.pos + size > len(self.buf):
            raise Incomplete
        data = self.buf[self.pos : self.pos + size]
        if b"\x00" in data:
            raise ParseError("NUL in literal")
        self.pos += size
        return data

    def string(self) -> bytes:
        c = self.peek()
        if c == ord('"'):
            return self.quoted()
        if c == ord("{"):
            return self.literal()
        raise ParseError("expected a string")

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

    def objectid(self) -> bytes:
        """RFC 8474's ``objectid``: 1 to 255 letters, digits, ``_`` and ``-``."""
        value = self.take1(_OBJECTID_CHARS, "an object id")
        if len(value) > 255:
            raise ParseError("object id longer than 255 characters")
        return value

    def list_mailbox(self) -> bytes:
        c = self.peek()
        if c == ord('"') or c == ord("{"):
            return self.string()
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
        """``sequence-set``, or ``$`` (RFC 5182's ``seq-last-command``)."""
        if self.at(b"$"):
            self.pos += 1
            return SequenceSet((), saved=True)
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

    def partial_range(self) -> PartialRange:
        """``partial-range`` (RFC 9394 section 4): ``1:500`` or ``-1:-500``."""
        sign = 1
        if self.at(b"-"):
            sign = -1
            self.pos += 1
        first = self.nz_number()
        self.expect(b":", '":"')
        if sign < 0:
            self.expect(b"-", '"-"')
        return PartialRange(sign * first, sign * self.nz_number())

    def known_set(self) -> SequenceSet:
        """A ``sequence-set`` in which ``*`` is not allowed (RFC 7162's ``known-uids``,
        ``known-sequence-set`` and ``known-uid-set``)."""
        numbers = self.sequence_set()
        if numbers.uses_star or numbers.saved:
            raise ParseError('"*" and "$" are not allowed here')
        return numbers

    def date(self) -> datetime.date:
        quoted = self.at(b'"')
        if quoted:
            self.pos += 1
        m = _DATE.match(self.buf, self.pos)
        if m is None:
            raise ParseError("expected a date (d-Mon-yyyy)")
        self.pos = m.end()
        if quoted:
            self.expect(b'"', "a closing quote")
        month = _MONTHS.get(m.group(2).upper())
        if month is None:
            raise ParseError("invalid month")
        try:
            return datetime.date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise ParseError("invalid date") from None

    def date_time(self) -> datetime.datetime:
        m = _DATE_TIME.match(self.buf, self.pos)
        if m is None:
            raise ParseError('expected a date-time ("dd-Mon-yyyy hh:mm:ss +zzzz")')
        self.pos = m.end()
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        month = _MONTHS.get(mon.upper())
        if month is None or int(zh) > 23 or int(zm) > 59:
            raise ParseError("invalid date-time")
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
            raise ParseError("invalid date-time") from None


Handler: TypeAlias = Callable[[Parser, bytes, bool], Command]
"""Parses what follows a command's name: ``(parser, tag, uid) -> command``."""


def extract_tag(data: bytes | bytearray) -> bytes | None:
    """The tag at the start of a line, if there is one followed by SP or CR."""
    end = 0
    while end < len(data) and data[end] in _TAG_CHARS:
        end += 1
    if end and data[end : end + 1] in (b" ", b"\r"):
        return bytes(data[:end])
    return None


def literal_tail(line: bytes, *, truncated: bool = False) -> tuple[int | None, bool] | None:
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
    while start > 0 and line[start - 1] in DIGITS:
        start -= 1
    if start == end:
        return None
    if start == 0:
        return (None, synchronizing) if truncated else None
    if line[start - 1] != ord("{"):
        return None
    digits = line[start:end]
    size = int(digits) if len(digits) <= 10 and int(digits) <= MAX_NUMBER else None
    return size, synchronizing
