"""SEARCH evaluation (RFC 3501 section 6.4.4), sans-I/O: no asyncio, no storage.

The session builds one `SearchMessage` per candidate message from the index (flags,
sizes, dates, the cached header block) and calls `matches`. Only when the key holds
BODY or TEXT keys (`text_needles` is not empty) does it read the message, feeding
it to a `TextScan` (:mod:`lightmail.imap.textscan`) chunk by chunk, and pass
`TextScan.found()` to `matches`.

Matching is substring matching, case-insensitive (RFC 3501 section 6.4.4). Search
strings are decoded as UTF-8 (invalid octets become U+FFFD) and compared with
Unicode case folding (`str.casefold`).

Known gaps:

- BODY and TEXT search the MIME headers of the parts and the TEXT/* parts of
  the message (`text_segments`), each text part decoded from its transfer
  encoding (base64, quoted-printable) and charset to UTF-8 by a
  `PartDecoder`; the bodies of other types (attachments) are not searched.
- Needles with non-ASCII characters are matched against the message decoded as
  UTF-8; ASCII needles are matched octet-wise (ASCII case folding), so they find
  text in any ASCII-compatible charset.
- TEXT also matches the RFC 2047-decoded header fields (``name: value``), so an
  encoded Subject is found; the raw header is searched by `TextScan` as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from lightmail.imap import objectid
from lightmail.imap.fetch import fields_named, header_end
from lightmail.imap.textscan import Needle, fold
from lightmail.imap.wire.results import ESearchData
from lightmail.imap.wire.types import (
    AddressKey,
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModseqKey,
    NotKey,
    ObjectIdKey,
    OrKey,
    SearchKey,
    SearchReturn,
    SequenceKey,
    SequenceSet,
    SizeKey,
    TextKey,
)
from lightmail.mailstore.mime.addresses import search_addresses
from lightmail.mailstore.mime.words import decode_words

__all__ = [
    "Found",
    "SearchMessage",
    "matches",
    "matches_in_view",
    "result_of",
    "text_needles",
    "uses_message_numbers",
    "uses_modseq",
    "uses_parse",
    "uses_rows",
    "uses_search_result",
    "uses_sent_date",
    "with_search_result",
]

Found = tuple[int, int, int]
"""A message an extended SEARCH or SORT found: its number as answered (sequence
number or UID), its UID and its mod-sequence."""
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # a SearchMessage's date when no key reads it


@dataclass(frozen=True, slots=True)
class SearchMessage:
    """What SEARCH needs to know of one message, short of its body.

    ``flags`` as stored (``"\\\\Seen"``, ``"$Label"``), without ``\\Recent``, which is
    ``recent``; ``size`` is RFC822.SIZE; ``internaldate`` is aware, in the zone it
    was given in; ``header`` is the raw header block (empty when no key reads
    it: :func:`uses_parse`); ``sent_date`` is the Date header's date in its own
    time zone, or None when missing or unparsable (and when no key compares it:
    :func:`uses_sent_date`); ``modseq`` is its mod-sequence (RFC 7162).
    """

    seq: int
    uid: int
    flags: tuple[str, ...]
    recent: bool
    size: int
    internaldate: datetime
    header: bytes
    sent_date: date | None
    modseq: int
    object_key: str  # of its blob: what EMAILID and THREADID are made of
    thread_root: str  # MessageMeta.thread_root; "" when no key reads the parse


# -- keys -----------------------------------------------------------------------


def _leaves(key: SearchKey) -> Iterator[SearchKey]:
    """The keys of the tree that are not NOT, OR or a list."""
    stack: list[SearchKey] = [key]
    while stack:
        node = stack.pop()
        if isinstance(node, NotKey):
            stack.append(node.key)
        elif isinstance(node, OrKey):
            stack.extend((node.left, node.right))
        elif isinstance(node, AndKey):
            stack.extend(node.keys)
        else:
            yield node


def text_needles(key: SearchKey) -> frozenset[Needle]:
    """The ``(value, whole_message)`` of every BODY/TEXT key in the tree.

    Empty: the message body need not be read.
    """
    return frozenset(
        (node.value, node.whole_message) for node in _leaves(key) if isinstance(node, TextKey)
    )


def uses_message_numbers(key: SearchKey) -> bool:
    """Whether a key of the tree is a message sequence set: a UID SEARCH with one may
    not be answered with EXPUNGE or VANISHED (RFC 7162 section 3.2.10.2)."""
    return any(isinstance(node, SequenceKey) and not node.uid for node in _leaves(key))


def uses_search_result(key: SearchKey) -> bool:
    """Whether a key of the tree is ``$``, the saved search result (RFC 5182)."""
    return any(isinstance(node, SequenceKey) and node.sequence_set.saved for node in _leaves(key))


def with_search_result(key: SearchKey, numbers: SequenceSet, uids: SequenceSet) -> SearchKey:
    """`key` with each ``$`` replaced by the saved search result: its sequence
    ``numbers``, or its ``uids`` after UID. Nesting is bounded by the parser's
    ``max_depth``."""
    if isinstance(key, SequenceKey) and key.sequence_set.saved:
        return SequenceKey(uids if key.uid else numbers, key.uid)
    if isinstance(key, NotKey):
        return NotKey(with_search_result(key.key, numbers, uids))
    if isinstance(key, OrKey):
        return OrKey(
            with_search_result(key.left, numbers, uids),
            with_search_result(key.right, numbers, uids),
        )
    if isinstance(key, AndKey):
        return AndKey(tuple(with_search_result(k, numbers, uids) for k in key.keys))
    return key


def uses_modseq(key: SearchKey) -> bool:
    """Whether a key of the tree is MODSEQ: the answer then ends with the highest
    mod-sequence found (RFC 7162 section 3.1.5), and CONDSTORE is enabled."""
    return any(isinstance(node, ModseqKey) for node in _leaves(key))


def uses_parse(key: SearchKey) -> bool:
    """Whether a key of the tree reads the cached parse (the header block, the
    Date header, the thread's first Message-ID) or the body: HEADER, SUBJECT,
    FROM, TO, CC, BCC, BODY, TEXT, the SENT* keys and THREADID. Without one,
    flags, sizes and dates decide."""
    return any(
        isinstance(node, HeaderKey | AddressKey | TextKey)
        or (isinstance(node, DateKey) and node.sent)
        or (isinstance(node, ObjectIdKey) and node.thread)
        for node in _leaves(key)
    )


def uses_rows(key: SearchKey) -> bool:
    """Whether a key of the tree needs the message's row: all but ALL, flags and
    keywords (``\\Recent`` too) and message or UID sets, which the session's
    view of the mailbox holds."""
    return any(not isinstance(node, AllKey | FlagKey | SequenceKey) for node in _leaves(key))


def matches_in_view(
    key: SearchKey,
    seq: int,
    uid: int,
    flags: tuple[str, ...],
    *,
    recent: bool,
    largest_seq: int,
    largest_uid: int,
) -> bool:
    """:func:`matches` for a key that does not :func:`uses_rows`: the message is
    its number, UID and flags as the session's view has them."""
    message = SearchMessage(
        seq=seq,
        uid=uid,
        flags=flags,
        recent=recent,
        # Never read for such a key (uses_rows).
        size=0,
        internaldate=_NEVER,
        header=b"",
        sent_date=None,
        modseq=0,
        object_key="",
        thread_root="",
    )
    return _Evaluation(message, largest_seq, largest_uid, frozenset()).test(key)


def uses_sent_date(key: SearchKey) -> bool:
    """Whether a key of the tree compares the Date header (SENTBEFORE, SENTON, SENTSINCE)."""
    return any(isinstance(node, DateKey) and node.sent for node in _leaves(key))


def matches(
    key: SearchKey,
    message: SearchMessage,
    *,
    largest_seq: int,
    largest_uid: int,
    found: frozenset[Needle] = frozenset(),
) -> bool:
    """Whether `message` matches `key` (RFC 3501 section 6.4.4).

    ``*`` in a sequence set stands for `largest_seq` (or `largest_uid` for UID);
    `found` holds the BODY/TEXT needles a `TextScan` of the message found.
    """
    return _Evaluation(message, largest_seq, largest_uid, found).test(key)


class _Evaluation:
    """One message against one key tree; the header is parsed at most once, lazily."""

    __slots__ = (
        "_addresses",
        "_fields",
        "_flags",
        "_found",
        "_largest_seq",
        "_largest_uid",
        "_message",
        "_text",
    )

    def __init__(
        self, message: SearchMessage, largest_seq: int, largest_uid: int, found: frozenset[Needle]
    ) -> None:
        self._message = message
        self._largest_seq = largest_seq
        self._largest_uid = largest_uid
        self._found = found
        self._flags: frozenset[str] | None = None
        self._fields: list[tuple[str, str]] | None = None
        self._addresses: dict[str, tuple[str, ...]] | None = None
        self._text: str | None = None

    def test(self, key: SearchKey) -> bool:
        message = self._message
        if isinstance(key, AllKey):
            return True
        if isinstance(key, FlagKey):
            return self._has_flag(key.flag) == key.present
        if isinstance(key, HeaderKey):
            return self._header_contains(key.field, key.value)
        if isinstance(key, AddressKey):
            return self._address_contains(key.field, key.value)
        if isinstance(key, TextKey):
            return self._text_contains(key)
        if isinstance(key, DateKey):
            if key.sent:
                if message.sent_date is None:
                    return False
                day = message.sent_date
            else:
                # The date in the zone INTERNALDATE was given in (RFC 3501 6.4.4:
                # "disregarding time and timezone").
                day = message.internaldate.date()
            if key.op == "before":
                return day < key.date
            if key.op == "on":
                return day == key.date
            return day >= key.date
        if isinstance(key, SizeKey):
            if key.op == "larger":
                return message.size > key.size
            return message.size < key.size
        if isinstance(key, ModseqKey):
            return message.modseq >= key.modseq
        if isinstance(key, ObjectIdKey):
            if key.thread:
                return objectid.thread_id(message.thread_root, message.object_key) == key.objectid
            return objectid.email_id(message.object_key) == key.objectid
        if isinstance(key, SequenceKey):
            if key.uid:
                return key.sequence_set.contains(message.uid, self._largest_uid)
            return key.sequence_set.contains(message.seq, self._largest_seq)
        if isinstance(key, NotKey):
            return not self.test(key.key)
        if isinstance(key, OrKey):
            return self.test(key.left) or self.test(key.right)
        return all(self.test(k) for k in key.keys)

    def _has_flag(self, flag: bytes) -> bool:
        """Flags compare case-insensitively; ``\\Recent`` is session state."""
        name = flag.decode("utf-8", "replace").lower()
        if name == "\\recent":
            return self._message.recent
        if self._flags is None:
            self._flags = frozenset(f.lower() for f in self._message.flags)
        return name in self._flags

    def _header_fields(self) -> list[tuple[str, str]]:
        if self._fields is None:
            self._fields = _parse_header(self._message.header)
        return self._fields

    def _header_contains(self, field: bytes, value: bytes) -> bool:
        """HEADER field string: a field of that name whose text contains the string.

        An empty string matches any message that has the field at all.
        """
        name = field.decode("utf-8", "replace").strip().lower()
        needle = fold(value)
        header = self._message.header
        if self._fields is None and name.isascii() and header.isascii():
            # The fields of that name alone: parsing every field costs ten times more.
            return any(needle in text for text in field_values(header, name.encode()))
        return any(
            field_name == name and needle in field_value
            for field_name, field_value in self._header_fields()
        )

    def _address_contains(self, field: bytes, value: bytes) -> bool:
        """FROM, TO, CC, BCC: one of the field's addresses, as `search_addresses`
        gives them, contains the string; an empty string matches when the field is there.
        """
        if self._addresses is None:
            self._addresses = {
                name: tuple(item.casefold() for item in items)
                for name, items in search_addresses(self._message.header).items()
            }
        items = self._addresses.get(field.decode("ascii", "replace").lower())
        if items is None:
            return False
        needle = fold(value)
        return not needle or any(needle in item for item in items)

    def _text_contains(self, key: TextKey) -> bool:
        if (key.value, key.whole_message) in self._found:
            return True
        if not key.whole_message:
            return False
        if self._text is None:
            self._text = "\n".join(f"{name}: {value}" for name, value in self._header_fields())
        return fold(key.value) in self._text


_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
_FIELD = re.compile(rb"([^:\s]+)[ \t]*:")


def _parse_header(header: bytes) -> list[tuple[str, str]]:
    """``(lower-case name, value)`` per field: unfolded, RFC 2047-decoded, case-folded."""
    fields: list[tuple[str, str]] = []
    name: bytes | None = None
    value: list[bytes] = []

    def flush() -> None:
        if name is not None:
            fields.append((name.decode("utf-8", "replace").lower(), _field_text(value)))

    for match in _LINE.finditer(header):
        line = match.group()
        if line in (b"\n", b"\r\n"):
            break
        content = line.rstrip(b"\r\n")
        if line[:1] in (b" ", b"\t"):
            value.append(content)  # unfolding removes only the line break (RFC 5322 2.2.3)
            continue
        flush()
        field = _FIELD.match(content)
        if field is None:
            name, value = None, []
        else:
            name, value = field.group(1), [content[field.end() :]]
    flush()
    return fields


def field_values(header: bytes, name: bytes) -> list[str]:
    """The values :func:`_parse_header` gives the fields called ``name`` (ASCII, in
    any case), of an ASCII header, without parsing the others."""
    fields = fields_named(frozenset({name.lower()}))
    if fields is None:
        return []
    values = []
    for match in fields.finditer(header, 0, header_end(header)):
        text = match.group()
        lines = _LINE.findall(text, text.index(b":") + 1)
        values.append(_field_text([line.rstrip(b"\r\n") for line in lines]))
    return values


def _field_text(parts: list[bytes]) -> str:
    """A field's value from its unfolded pieces: decoded, RFC 2047 words too, case-folded."""
    return decode_words(b"".join(parts).decode("utf-8", "replace").strip(" \t")).casefold()


def result_of(
    found: Sequence[Found], returns: SearchReturn, *, by_modseq: bool
) -> tuple[ESearchData, list[int]]:
    """The ESEARCH data for the messages found (in result order) and the UIDs of the
    messages it returns: those SAVE keeps (RFC 5182 section 2.4, RFC 9394 section 3.2).

    MIN and MAX are the first and last in result order (RFC 5267 section 3.1). The
    messages returned are those of MIN, MAX and PARTIAL, or all found with ALL or
    COUNT, or with SAVE alone. MODSEQ, with a MODSEQ key and a non-empty result, is
    the highest of the returned messages, of all found when none is returned
    (RFC 4731 section 3.2, RFC 7162 section 3.1.10)."""
    options = returns.options
    ends: list[Found] = []
    if found and "MIN" in options:
        ends.append(found[0])
    if found and "MAX" in options:
        ends.append(found[-1])
    part: list[Found] = [] if returns.partial is None else returns.partial.pick(found)
    returned: Sequence[Found] = found
    if (ends or returns.partial is not None) and options.isdisjoint({"ALL", "COUNT"}):
        returned = ends + part
    result = ESearchData(
        min=found[0][0] if ends and "MIN" in options else None,
        max=found[-1][0] if ends and "MAX" in options else None,
        count=len(found) if "COUNT" in options else None,
        all=tuple(number for number, _, _ in found) if "ALL" in options else (),
        partial=None
        if returns.partial is None
        else (returns.partial, tuple(number for number, _, _ in part)),
        modseq=max(m for _, _, m in returned or found) if by_modseq and found else None,
    )
    return result, sorted({uid for _, uid, _ in returned})
