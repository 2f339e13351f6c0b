"""Value types carried by IMAP commands: sequence sets, FETCH attributes, SEARCH keys,
SORT criteria; and the THREAD response's tree.

Everything here is an immutable value built by the receiver from the RFC 3501
section 9 grammar. Strings stay ``bytes`` (the session decodes them, with the
SEARCH charset where one was given); dates are ``datetime.date``.
"""

from __future__ import annotations

import bisect
import datetime
import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, TypeVar

__all__ = [
    "STAR",
    "AddressKey",
    "AllKey",
    "AndKey",
    "BinarySection",
    "BodySection",
    "DateKey",
    "FetchAttribute",
    "FetchItem",
    "FlagKey",
    "HeaderKey",
    "ModseqKey",
    "NotKey",
    "OrKey",
    "PartialRange",
    "QresyncParameter",
    "SearchKey",
    "SearchReturn",
    "SectionText",
    "SeqNumber",
    "SequenceKey",
    "SequenceSet",
    "SizeKey",
    "SortCriterion",
    "SortKey",
    "Star",
    "TextKey",
    "ThreadAlgorithm",
    "ThreadNode",
]


# --------------------------------------------------------------------------- sequence sets


class Star(enum.Enum):
    """The ``*`` of ``seq-number``: the largest number in use (RFC 3501 section 9)."""

    STAR = "*"


STAR = Star.STAR
SeqNumber: TypeAlias = int | Literal[Star.STAR]


def _resolve_number(n: SeqNumber, largest: int) -> int:
    return largest if n is STAR else n


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """``sequence-set`` (RFC 3501 section 9): ranges as sent, ``*`` kept symbolic.

    ``ranges`` holds ``(first, last)`` pairs in the order given; a single number
    ``n`` is ``(n, n)`` and a range may be reversed (``4:2`` equals ``2:4``).
    Nothing here expands a range into a list, so ``1:4294967295`` is cheap.
    ``largest`` is the value ``*`` stands for: the message count for sequence
    numbers; for UIDs the highest UID, or UIDNEXT when the mailbox is empty
    (RFC 3501 section 9, ``seq-number``). Resolved numbers below 1 never match.
    """

    ranges: tuple[tuple[SeqNumber, SeqNumber], ...]
    saved: bool = False
    """``$``, the saved search result (RFC 5182 section 3): no ``ranges`` here; the
    session puts the messages saved in their place before the command runs
    (``ImapSession.with_search_result``), where no ``ranges`` is a valid set that
    names no message."""

    def __post_init__(self) -> None:
        if self.saved and self.ranges:
            raise ValueError('"$" stands for the saved search result alone')
        for first, last in self.ranges:
            for n in (first, last):
                if n is not STAR and not (isinstance(n, int) and 0 < n < 1 << 32):
                    raise ValueError(f"invalid sequence number {n!r}")

    def __iter__(self) -> Iterator[tuple[SeqNumber, SeqNumber]]:
        return iter(self.ranges)

    @property
    def uses_star(self) -> bool:
        return any(first is STAR or last is STAR for first, last in self.ranges)

    def bounds(self, largest: int) -> Iterator[tuple[int, int]]:
        """Each element as an ordered ``(low, high)`` pair, in the order sent, not merged."""
        for first, last in self.ranges:
            a, b = _resolve_number(first, largest), _resolve_number(last, largest)
            low, high = (a, b) if a <= b else (b, a)
            low = max(low, 1)
            if low <= high:
                yield low, high

    def resolve(self, largest: int) -> tuple[range, ...]:
        """The set as sorted, disjoint, non-adjacent ``range`` objects (coalesced)."""
        merged: list[list[int]] = []
        for low, high in sorted(self.bounds(largest)):
            if merged and low <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        return tuple(range(low, high + 1) for low, high in merged)

    def contains(self, n: int, largest: int) -> bool:
        return any(low <= n <= high for low, high in self.bounds(largest))

    def numbers(self, largest: int) -> Iterator[int]:
        """Ascending distinct numbers in the set; lazy, so bound it by the mailbox yourself."""
        for r in self.resolve(largest):
            yield from r

    def members(self, numbers: Iterable[int], largest: int) -> list[int]:
        """Those of ``numbers`` (ascending) that are in the set."""
        ranges = self.resolve(largest)
        found: list[int] = []
        i = 0
        for n in numbers:
            while i < len(ranges) and ranges[i].stop <= n:
                i += 1
            if i == len(ranges):
                break
            if n >= ranges[i].start:
                found.append(n)
        return found

    def without(
        self, present: Sequence[int], largest: int, *, above: int = 0
    ) -> SequenceSet | None:
        """The numbers of the set up to ``largest`` and above ``above`` that are not in
        ``present`` (ascending), as ranges; None when there are none. The cost grows
        with the ranges and ``present``, never with the size of a range."""
        kept: list[tuple[SeqNumber, SeqNumber]] = []
        for r in self.resolve(largest):
            low, high = max(r.start, above + 1), min(r.stop - 1, largest)
            i = bisect.bisect_left(present, low)
            while low <= high:
                if i < len(present) and present[i] <= high:
                    if present[i] > low:
                        kept.append((low, present[i] - 1))
                    low = present[i] + 1
                    i += 1
                else:
                    kept.append((low, high))
                    break
        return SequenceSet(tuple(kept)) if kept else None

    def to_bytes(self) -> bytes:
        if self.saved:
            return b"$"
        if not self.ranges:
            raise ValueError("an empty set has no wire form")

        def one(n: SeqNumber) -> bytes:
            return b"*" if n is STAR else str(n).encode()

        return b",".join(
            one(first) if first == last else one(first) + b":" + one(last)
            for first, last in self.ranges
        )

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """A compact set (``1:3,7``) for the given numbers, e.g. for COPYUID/APPENDUID."""
        ranges: list[tuple[SeqNumber, SeqNumber]] = []
        for n in sorted(set(numbers)):
            if ranges and ranges[-1][1] == n - 1:
                ranges[-1] = (ranges[-1][0], n)
            else:
                ranges.append((n, n))
        return cls(tuple(ranges))


# --------------------------------------------------------------------------- FETCH


class FetchItem(enum.Enum):
    """The FETCH attributes without a section (RFC 3501 section 6.4.5).

    ``value`` is the name as it appears in the FETCH response.
    """

    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822_SIZE = "RFC822.SIZE"
    ENVELOPE = "ENVELOPE"
    BODYSTRUCTURE = "BODYSTRUCTURE"
    BODY = "BODY"  # the non-extensible BODYSTRUCTURE
    UID = "UID"
    RFC822 = "RFC822"  # like BODY[], sets \Seen
    RFC822_HEADER = "RFC822.HEADER"  # like BODY.PEEK[HEADER]
    RFC822_TEXT = "RFC822.TEXT"  # like BODY[TEXT], sets \Seen
    MODSEQ = "MODSEQ"  # the message's mod-sequence (RFC 7162 section 3.1.4.2)
    EMAILID = "EMAILID"  # RFC 8474 section 5.1
    THREADID = "THREADID"  # RFC 8474 section 5.2

    @property
    def response_name(self) -> bytes:
        return self.value.encode("ascii")


class SectionText(enum.Enum):
    """``section-msgtext`` / ``section-text`` specifiers (RFC 3501 section 9)."""

    HEADER = "HEADER"
    HEADER_FIELDS = "HEADER.FIELDS"
    HEADER_FIELDS_NOT = "HEADER.FIELDS.NOT"
    TEXT = "TEXT"
    MIME = "MIME"  # only after a part number


@dataclass(frozen=True, slots=True)
class BodySection:
    """``BODY[section]<partial>`` or ``BODY.PEEK[...]`` (RFC 3501 section 6.4.5).

    ``part`` is the part path (``1.2.3`` is ``(1, 2, 3)``; ``()`` is the whole
    message). ``fields`` holds the header names of HEADER.FIELDS[.NOT] as sent.
    ``partial`` is ``(origin, count)`` with count > 0.
    """

    peek: bool = False
    part: tuple[int, ...] = ()
    text: SectionText | None = None
    fields: tuple[bytes, ...] = ()
    partial: tuple[int, int] | None = None

    def section_bytes(self) -> bytes:
        """The text between the brackets, e.g. ``1.2.HEADER.FIELDS (FROM TO)``."""
        pieces = [str(p).encode() for p in self.part]
        if self.text is not None:
            pieces.append(self.text.value.encode())
        spec = b".".join(pieces)
        if self.text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
            spec += b" (" + b" ".join(_astring(f) for f in self.fields) + b")"
        return spec

    @property
    def response_name(self) -> bytes:
        """The name for the FETCH response: ``BODY[...]`` (never PEEK) and ``<origin>``."""
        name = b"BODY[" + self.section_bytes() + b"]"
        if self.partial is not None:
            name += b"<" + str(self.partial[0]).encode() + b">"
        return name


@dataclass(frozen=True, slots=True)
class BinarySection:
    """``BINARY[part]<partial>``, ``BINARY.PEEK[...]`` or ``BINARY.SIZE[part]`` (RFC
    3516 section 4.2, RFC 9051 section 6.4.5): a part's content with its
    Content-Transfer-Encoding undone, or (``size``) the octet count of that.

    ``part`` is the part path (``()`` for ``[]``); ``partial`` is ``(origin,
    count)`` in the decoded octets, never with ``size``.
    """

    part: tuple[int, ...] = ()
    peek: bool = False
    size: bool = False
    partial: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.size and (self.peek or self.partial is not None):
            raise ValueError("BINARY.SIZE has neither .PEEK nor a partial")

    @property
    def response_name(self) -> bytes:
        """``BINARY[1.2]<origin>`` or ``BINARY.SIZE[1.2]`` (never PEEK)."""
        section = b".".join(str(p).encode() for p in self.part)
        name = (b"BINARY.SIZE[" if self.size else b"BINARY[") + section + b"]"
        if self.partial is not None:
            name += b"<" + str(self.partial[0]).encode() + b">"
        return name


FetchAttribute: TypeAlias = FetchItem | BodySection | BinarySection


# --------------------------------------------------------------------------- SELECT


@dataclass(frozen=True, slots=True)
class QresyncParameter:
    """SELECT/EXAMINE's ``QRESYNC (uidvalidity modseq [known-uids] [seq-match-data])``
    (RFC 7162 section 3.2.5). ``seq_match`` pairs the client's known message
    numbers with their UIDs: two sets of equal size, ascending, without ``*``."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


def _astring(value: bytes) -> bytes:
    # A local copy of responses.astring to keep types.py free of imports from
    # responses.py (which imports this module). Header names are atoms in practice.
    if value and all(0x21 <= c <= 0x7E and c not in b'(){%*"\\' for c in value):
        return value
    if all(0x01 <= c <= 0x7F and c not in (0x0A, 0x0D) for c in value):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{" + str(len(value)).encode() + b"}\r\n" + value


# --------------------------------------------------------------------------- SEARCH
#
# RFC 3501 section 6.4.4 keys map onto a few node types:
#   ALL                                  AllKey()
#   ANSWERED DELETED DRAFT FLAGGED SEEN  FlagKey(b"\\Answered", ...)   (UN...: set=False)
#   RECENT / NEW / OLD                   FlagKey(b"\\Recent") / And(Recent, not Seen) / Not(Recent)
#   KEYWORD k / UNKEYWORD k              FlagKey(k, True / False)
#   BCC CC FROM TO                       AddressKey(b"BCC", v) ...
#   SUBJECT / HEADER f v                 HeaderKey(b"SUBJECT", v) / HeaderKey(f, v)
#   BODY s / TEXT s                      TextKey(s, whole_message=False / True)
#   BEFORE ON SINCE (internal date)      DateKey("before" | "on" | "since", d, sent=False)
#   SENTBEFORE SENTON SENTSINCE          DateKey(..., sent=True)
#   LARGER n / SMALLER n                 SizeKey("larger" | "smaller", n)
#   sequence-set / UID sequence-set      SequenceKey(set, uid=False / True)
#   NOT k / OR a b / (k1 k2 ...)         NotKey / OrKey / AndKey
#   MODSEQ [entry type] n (RFC 7162)     ModseqKey(n)   (the entry is ignored: one
#                                        mod-sequence per message, section 3.1.5)


@dataclass(frozen=True, slots=True)
class AllKey:
    pass


@dataclass(frozen=True, slots=True)
class FlagKey:
    """The message has (``present``) or lacks the flag; system flags in canonical case."""

    flag: bytes
    present: bool = True


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """Header ``field`` (upper-case for SUBJECT) contains ``value`` in its text."""

    field: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class AddressKey:
    """An address of the ``field`` (``BCC``, ``CC``, ``FROM``, ``TO``) header contains
    ``value``: matched against the parsed addresses, not the raw text."""

    field: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class TextKey:
    """BODY (``whole_message=False``) or TEXT (headers and body) contains ``value``."""

    value: bytes
    whole_message: bool


@dataclass(frozen=True, slots=True)
class DateKey:
    """Internal date (``sent=False``) or Date: header (``sent=True``) compared to ``date``."""

    op: Literal["before", "on", "since"]
    date: datetime.date
    sent: bool


@dataclass(frozen=True, slots=True)
class SizeKey:
    """RFC822.SIZE larger/smaller than ``size``."""

    op: Literal["larger", "smaller"]
    size: int


@dataclass(frozen=True, slots=True)
class SequenceKey:
    sequence_set: SequenceSet
    uid: bool


@dataclass(frozen=True, slots=True)
class ModseqKey:
    """The message's mod-sequence is ``modseq`` or more (RFC 7162 section 3.1.5)."""

    modseq: int


@dataclass(frozen=True, slots=True)
class ObjectIdKey:
    """EMAILID or THREADID (``thread``) is exactly ``objectid`` (RFC 8474 section 6)."""

    objectid: bytes
    thread: bool


@dataclass(frozen=True, slots=True)
class NotKey:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class OrKey:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class AndKey:
    keys: tuple[SearchKey, ...]


SearchKey: TypeAlias = (
    AllKey
    | FlagKey
    | HeaderKey
    | AddressKey
    | TextKey
    | DateKey
    | SizeKey
    | SequenceKey
    | ModseqKey
    | ObjectIdKey
    | NotKey
    | OrKey
    | AndKey
)


_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PartialRange:
    """``partial-range`` (RFC 9394 section 4): results ``first`` to ``last`` (1 is the
    first result), or counted from the last result when both are negative (-1 is
    the last). Kept as sent, for the answer repeats it; ``500:400`` is ``400:500``."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not all(0 < abs(n) < 1 << 32 for n in (self.first, self.last)):
            raise ValueError("a partial range is made of nz-numbers")
        if (self.first < 0) != (self.last < 0):
            raise ValueError("both ends of a partial range have the same sign")

    def pick(self, results: Sequence[_T]) -> list[_T]:
        """The results (in their order) the range names; none past either end."""
        low, high = sorted((abs(self.first), abs(self.last)))
        if self.first > 0:
            return list(results[low - 1 : high])
        count = len(results)
        return list(results[max(count - high, 0) : max(count - low + 1, 0)])

    def to_bytes(self) -> bytes:
        return b"%d:%d" % (self.first, self.last)


@dataclass(frozen=True, slots=True)
class SearchReturn:
    """The result options of an extended SEARCH or SORT (RFC 4466 ``search-return-opts``):
    ``options`` from MIN, MAX, ALL, COUNT (RFC 4731) and SAVE (RFC 5182), and RFC
    9394's PARTIAL range. ``RETURN ()`` arrives as ALL (RFC 4731 section 3.1)."""

    options: frozenset[str]
    partial: PartialRange | None = None


# --------------------------------------------------------------------------- SORT, THREAD


class SortKey(enum.Enum):
    """``sort-key`` (RFC 5256 section 5, RFC 5957 section 5)."""

    ARRIVAL = "ARRIVAL"
    CC = "CC"
    DATE = "DATE"
    FROM = "FROM"
    SIZE = "SIZE"
    SUBJECT = "SUBJECT"
    TO = "TO"
    DISPLAYFROM = "DISPLAYFROM"
    DISPLAYTO = "DISPLAYTO"


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """``sort-criterion``: a key, descending when ``reverse``."""

    key: SortKey
    reverse: bool = False


class ThreadAlgorithm(enum.Enum):
    """``thread-alg`` (RFC 5256 section 5)."""

    ORDEREDSUBJECT = "ORDEREDSUBJECT"
    REFERENCES = "REFERENCES"


@dataclass(frozen=True, slots=True)
class ThreadNode:
    """One member of a THREAD response (RFC 5256 section 4): a message number, or
    None for a parent that is not among the results (a dummy), and its children
    in order."""

    number: int | None
    children: tuple[ThreadNode, ...] = ()
