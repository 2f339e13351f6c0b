"""Parse a message once, while it streams in: ENVELOPE, BODYSTRUCTURE and part offsets.

At delivery and APPEND the message passes through `MimeScanner` chunk by chunk on its
way to the blob store. `close()` returns a `ParsedMessage` holding everything IMAP
FETCH needs without reading the blob again: the top-level header block, the ENVELOPE
(RFC 3501 section 7.4.2), the body structure as a `BodyPart` tree (RFC 3501 section
7.4.2 BODYSTRUCTURE, section 9 ``body``), and, for every part, absolute byte offsets
into the message, so that ``BODY[<section>]``, ``.MIME``, ``.HEADER`` and ``.TEXT``
(RFC 3501 section 6.4.5) are byte-range reads of the blob.

Sans-I/O: no asyncio, no storage. The scanner never holds the message whole: it
keeps at most one header block (capped), the first bytes of the current line (enough
to recognise a boundary delimiter), and the parsed results. Bodies are scanned with
``bytes.find``/``bytes.count``; only lines that start with ``--`` (or, in a header,
an empty line) are looked at individually.

Choices, where the RFCs leave room:

- Media types, subtypes, parameter names, the transfer encoding and the disposition
  type are upper-cased, as in RFC 3501's examples; parameter values are kept as sent.
- Parameters follow Dovecot, which follows RFC 2231 without decoding into 8-bit:
  continuations (``name*0``, ``name*1`` ...) are merged into one ``NAME``; if any
  segment is extended (``name*0*``), the merged parameter is ``NAME*`` and its value
  stays RFC 2231-encoded (``utf-8''%E2%82%AC.pdf``), so BODYSTRUCTURE stays 7-bit for
  IMAP4rev1 clients, which decode RFC 2231 themselves. Segments with gaps in their
  numbering are passed on unmerged. `BodyPart.param` and `Disposition.param` return
  the decoded text (RFC 2231 value, or RFC 2047 words in a plain value) for search
  and display.
- TEXT/PLAIN without a charset gets ``("CHARSET", "US-ASCII")`` (RFC 2046 section
  4.1.2); so does a missing or syntactically invalid Content-Type, which means
  TEXT/PLAIN (RFC 2045 section 5.2), or MESSAGE/RFC822 inside MULTIPART/DIGEST
  (RFC 2046 section 5.1.5) when missing.
- Boundary delimiters are recognised as Dovecot does: a line that begins with
  ``--`` + boundary of any open multipart (the longest match wins, the innermost on
  a tie); the CRLF (or LF) before it belongs to the delimiter (RFC 2046 section
  5.1.1), also when it cuts a MIME header short.
- A header ends at the first empty line; without one it runs to the end of its part
  (RFC 3501 section 6.4.5: "except in the case of a message which has no body and
  no blank line"). Lines end in LF, with or without CR; offsets are raw octets.
- ``lines`` counts the LFs in the part's body (as Dovecot and Cyrus do); a last line
  without a line ending is not counted.
- Every MULTIPART part has at least one child and every MESSAGE/RFC822 part has an
  encapsulated message, as the grammar demands: when the structure cannot be had
  (no boundary, boundary never seen, nesting or part limits, a base64 or
  quoted-printable message/rfc822, which RFC 2046 section 5.2.1 forbids), one
  synthetic TEXT/PLAIN part spans the whole body, with an empty MIME header, so
  ``BODY[n.1]`` still shows the content. A synthetic encapsulated message has an
  all-NIL envelope.
- Header text is decoded as UTF-8, invalid octets becoming U+FFFD (NUL too).
  Envelope strings keep RFC 2047 encoded words encoded; `ParsedMessage`'s search
  fields decode them.
- Missing host names in addresses become ``.MISSING-HOST-NAME.`` (the UW IMAP
  convention clients know), as NIL would mean group syntax.

Limits: ``max_header_bytes`` per header block kept (later octets are still scanned
and counted), a budget of four such blocks across all parts after which MIME headers
are kept to 8 KiB each, ``max_parts`` parts (after which the rest of the message is
the opaque body of the innermost open part), ``max_depth`` nesting (deeper multiparts
and messages are opaque), 1000 addresses per address header, 200 parameters per
header field, boundaries up to 998 octets (RFC 5322 line length).
"""

from __future__ import annotations

import binascii
import encodings
import encodings.aliases
import enum
import functools
import itertools
import logging
import pkgutil
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeAlias
from urllib.parse import unquote_to_bytes

__all__ = [
    "MISSING_HOST",
    "Address",
    "BodyPart",
    "Disposition",
    "Envelope",
    "JsonValue",
    "MimeScanner",
    "Params",
    "ParsedMessage",
    "search_addresses",
]

_log = logging.getLogger(__name__)

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
Params: TypeAlias = tuple[tuple[str, str], ...]

MISSING_HOST = ".MISSING-HOST-NAME."
"""Host name put in an address that has none (UW IMAP's convention)."""

_MAX_BOUNDARY = 998
_PREFIX = 2 + _MAX_BOUNDARY + 2
_MIN_HEADER_KEEP = 8 * 1024
_MAX_ADDRESSES = 1000
_MAX_PARAMS = 200
_CR, _LF = 13, 10
_DASH = 45


# -- Values ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """One address structure of an ENVELOPE (RFC 3501 section 7.4.2, ``address``).

    Group syntax: ``mailbox`` holds the group name and ``host`` is None at the start
    of a group; both are None at its end.
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    @property
    def is_group_start(self) -> bool:
        return self.host is None and self.mailbox is not None

    @property
    def is_group_end(self) -> bool:
        return self.host is None and self.mailbox is None

    def to_json(self) -> list[JsonValue]:
        return [self.name, self.adl, self.mailbox, self.host]

    @classmethod
    def from_json(cls, data: object) -> Address:
        items = _json_list(data, 4, 4)
        return cls(
            _json_nstr(items[0]), _json_nstr(items[1]), _json_nstr(items[2]), _json_nstr(items[3])
        )


AddressList: TypeAlias = tuple[Address, ...] | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """ENVELOPE (RFC 3501 section 7.4.2), fields in the RFC's order.

    Strings are the unfolded header values with RFC 2047 encoded words left encoded;
    None is NIL. Sender and reply-to are already defaulted to from.
    """

    date: str | None
    subject: str | None
    from_: AddressList
    sender: AddressList
    reply_to: AddressList
    to: AddressList
    cc: AddressList
    bcc: AddressList
    in_reply_to: str | None
    message_id: str | None

    def to_json(self) -> list[JsonValue]:
        return [
            self.date,
            self.subject,
            _addresses_to_json(self.from_),
            _addresses_to_json(self.sender),
            _addresses_to_json(self.reply_to),
            _addresses_to_json(self.to),
            _addresses_to_json(self.cc),
            _addresses_to_json(self.bcc),
            self.in_reply_to,
            self.message_id,
        ]

    @classmethod
    def from_json(cls, data: object) -> Envelope:
        items = _json_list(data, 10, 10)
        return cls(
            _json_nstr(items[0]),
            _json_nstr(items[1]),
            _addresses_from_json(items[2]),
            _addresses_from_json(items[3]),
            _addresses_from_json(items[4]),
            _addresses_from_json(items[5]),
            _addresses_from_json(items[6]),
            _addresses_from_json(items[7]),
            _json_nstr(items[8]),
            _json_nstr(items[9]),
        )


_EMPTY_ENVELOPE = Envelope(None, None, None, None, None, None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class Disposition:
    """Content-Disposition (RFC 2183), as RFC 3501's ``body-fld-dsp``."""

    type: str
    params: Params

    def param(self, name: str) -> str | None:
        """The decoded value of a parameter (see `BodyPart.param`)."""
        return _param_text(self.params, name)

    def to_json(self) -> list[JsonValue]:
        return [self.type, _params_to_json(self.params)]

    @classmethod
    def from_json(cls, data: object) -> Disposition:
        items = _json_list(data, 2, 2)
        return cls(_json_str(items[0]), _params_from_json(items[1]))


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME entity: BODYSTRUCTURE's fields (RFC 3501 section 7.4.2) plus offsets.

    Offsets are absolute in the message: the part's MIME header (or, for a message,
    its RFC 5322 header) is ``[header_start, body_start)`` and its body is
    ``[body_start, end)``. ``children`` are the parts of a MULTIPART (never empty);
    a MESSAGE/RFC822 part has ``envelope`` and ``message``, the encapsulated
    message's root part, whose header is the encapsulated header.
    """

    type: str
    subtype: str
    params: Params
    id: str | None
    description: str | None
    encoding: str
    lines: int
    md5: str | None
    disposition: Disposition | None
    language: tuple[str, ...] | None
    location: str | None
    header_start: int
    body_start: int
    end: int
    children: tuple[BodyPart, ...] = ()
    envelope: Envelope | None = None
    message: BodyPart | None = None

    @property
    def size(self) -> int:
        """Body size in octets as transmitted (``body-fld-octets``)."""
        return self.end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.type == "MULTIPART"

    @property
    def is_message(self) -> bool:
        """MESSAGE/RFC822, which carries an envelope and an encapsulated message."""
        return self.message is not None

    def param(self, name: str) -> str | None:
        """The decoded value of Content-Type parameter `name`, or None.

        Prefers the RFC 2231 form (``NAME*``, decoded from its charset) over a plain
        ``NAME``, whose RFC 2047 encoded words, a common misuse, are decoded too.
        """
        return _param_text(self.params, name)

    @property
    def filename(self) -> str | None:
        """The decoded file name: disposition FILENAME, else Content-Type NAME."""
        if self.disposition is not None:
            name = self.disposition.param("FILENAME")
            if name is not None:
                return name
        return self.param("NAME")

    def find(self, section: tuple[int, ...]) -> BodyPart | None:
        """The part numbered `section` (RFC 3501 section 6.4.5) under this message.

        Call it on a message's root part. ``()`` is the message itself. A message
        that is not multipart has only part 1, its body (this same part); the parts
        of a MESSAGE/RFC822 part are numbered under it. None if there is no such part.
        """
        if not section:
            return self
        current = _numbered(self)
        for depth, number in enumerate(section):
            if not 1 <= number <= len(current):
                return None
            part = current[number - 1]
            if depth == len(section) - 1:
                return part
            if part.is_multipart:
                current = part.children
            elif part.message is not None:
                current = _numbered(part.message)
            else:
                return None
        return None  # pragma: no cover - the loop always returns

    def to_json(self) -> list[JsonValue]:
        """A compact JSON-compatible form; `from_json` rebuilds the part exactly."""
        out: list[JsonValue] = [
            self.type,
            self.subtype,
            _params_to_json(self.params),
            self.id,
            self.description,
            self.encoding,
            self.lines,
            self.md5,
            None if self.disposition is None else self.disposition.to_json(),
            None if self.language is None else list(self.language),
            self.location,
            self.header_start,
            self.body_start,
            self.end,
            [child.to_json() for child in self.children],
            None if self.envelope is None else self.envelope.to_json(),
            None if self.message is None else self.message.to_json(),
        ]
        while len(out) > _BODY_JSON_MIN and out[-1] in (None, []):
            out.pop()
        return out

    @classmethod
    def from_json(cls, data: object) -> BodyPart:
        items = _json_list(data, _BODY_JSON_MIN, _BODY_JSON_MAX)
        items += [None] * (_BODY_JSON_MAX - len(items))
        language = items[9]
        return cls(
            type=_json_str(items[0]),
            subtype=_json_str(items[1]),
            params=_params_from_json(items[2]),
            id=_json_nstr(items[3]),
            description=_json_nstr(items[4]),
            encoding=_json_str(items[5]),
            lines=_json_int(items[6]),
            md5=_json_nstr(items[7]),
            disposition=None if items[8] is None else Disposition.from_json(items[8]),
            language=None
            if language is None
            else tuple(_json_str(tag) for tag in _json_list(language, 0, None)),
            location=_json_nstr(items[10]),
            header_start=_json_int(items[11]),
            body_start=_json_int(items[12]),
            end=_json_int(items[13]),
            children=tuple(
                cls.from_json(child)
                for child in ([] if items[14] is None else _json_list(items[14], 0, None))
            ),
            envelope=None if items[15] is None else Envelope.from_json(items[15]),
            message=None if items[16] is None else cls.from_json(items[16]),
        )


_BODY_JSON_MIN = 14
_BODY_JSON_MAX = 17


def _numbered(message: BodyPart) -> tuple[BodyPart, ...]:
    """The parts numbered 1.. directly under a message (RFC 3501 section 6.4.5)."""
    return message.children if message.is_multipart else (message,)


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything cached about a message at delivery (DESIGN: storage model).

    ``header`` is the top-level header block including its empty line, cut at
    ``max_header_bytes``: it is complete exactly when ``len(header) ==
    body.body_start``. The str fields are for SEARCH and SORT: RFC 2047 decoded,
    ``""`` when the header is missing.
    """

    size: int
    header: bytes
    envelope: Envelope
    body: BodyPart
    sent_date: datetime | None
    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    message_id: str


# -- The scanner -----------------------------------------------------------


class _Line(enum.Enum):
    """Where the scanner is in the current line."""

    START = enum.auto()  # at its first octet (some may wait in the prefix buffer)
    MIDDLE = enum.auto()  # inside an ordinary line
    DASHES = enum.auto()  # inside a line that starts with "--": collecting its prefix
    DELIMITER = enum.auto()  # inside a boundary delimiter line already acted on


class _Kind(enum.Enum):
    LEAF = enum.auto()
    MULTIPART = enum.auto()
    MESSAGE = enum.auto()


@dataclass(frozen=True, slots=True)
class _MimeInfo:
    """The Content-* fields of one header block (RFC 2045, RFC 2183)."""

    type: str
    subtype: str
    params: Params
    id: str | None
    description: str | None
    encoding: str
    md5: str | None
    disposition: Disposition | None
    language: tuple[str, ...] | None
    location: str | None
    boundary: bytes | None
    kind: _Kind


@dataclass(slots=True, eq=False)
class _Frame:
    """A part whose end is not yet known."""

    header_start: int
    keep: int
    in_digest: bool
    is_message: bool
    header: bytearray = field(default_factory=bytearray)
    in_header: bool = True
    body_start: int = 0
    lf_at_body: int = 0
    info: _MimeInfo | None = None
    envelope: Envelope | None = None
    delimiter: bytes | None = None
    closed: bool = False
    children: list[BodyPart] = field(default_factory=list)
    message: BodyPart | None = None
    message_envelope: Envelope | None = None


def _alternation(words: list[bytes]) -> bytes:
    """A regex matching any of `words` (sorted, prefix-free), factored as a trie.

    Each line is then rejected in one pass, however many delimiters share a prefix.
    """
    if len(words) == 1:
        return re.escape(words[0])
    first, last = words[0], words[-1]
    common = 0
    while common < min(len(first), len(last)) and first[common] == last[common]:
        common += 1
    if common:
        return re.escape(first[:common]) + _alternation([word[common:] for word in words])
    branches = [list(group) for _, group in itertools.groupby(words, key=lambda word: word[:1])]
    return b"(?:" + b"|".join(_alternation(branch) for branch in branches) + b")"


def _prefix_free(delimiters: tuple[bytes, ...]) -> list[bytes]:
    """The delimiters no other one is a prefix of: enough to find candidate lines."""
    kept: list[bytes] = []
    for word in sorted(set(delimiters)):
        if not kept or not word.startswith(kept[-1]):
            kept.append(word)
    return kept


@functools.lru_cache(maxsize=64)
def _delimiter_pattern(delimiters: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """Any of the open delimiters, to be matched at a line start."""
    return re.compile(_alternation(_prefix_free(delimiters)))


@functools.lru_cache(maxsize=64)
def _line_pattern(in_header: bool, delimiters: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """LF followed by a line that may matter: a delimiter, or in a header an empty line."""
    alternatives = [_alternation(_prefix_free(delimiters))] if delimiters else []
    if in_header:
        alternatives.insert(0, rb"\r?\n")
    return re.compile(rb"\n(?:" + b"|".join(alternatives) + rb")")


class MimeScanner:
    """Incremental MIME structure scanner (sans-I/O: no asyncio, no storage imports).

    Feed the message in chunks of any size, then `close`. Any chunking gives the same
    result; neither method raises, whatever the input; memory stays bounded by the
    limits, not by the message size.
    """

    def __init__(
        self,
        *,
        max_header_bytes: int = 256 * 1024,
        max_parts: int = 2000,
        max_depth: int = 40,
    ) -> None:
        self._max_header = max(0, max_header_bytes)
        self._max_parts = max(1, max_parts)
        self._max_depth = max(1, max_depth)
        self._header_budget = 4 * self._max_header
        self._at = 0  # absolute offset of the next octet to consume
        self._lf = 0  # LFs consumed so far
        self._last = -1  # the last two octets consumed
        self._last_prev = -1
        self._line = _Line.START
        self._line_start = 0
        self._prefix = bytearray()  # first octets of the current line, not yet consumed
        self._open_child = False
        self._stack = [_Frame(0, self._max_header, in_digest=False, is_message=True)]
        self._parts = 1
        self._cut = False
        self._delimiters: tuple[bytes, ...] = ()  # those that can end the current part
        self._longest = 0
        self._degraded = False
        self._fed = 0
        self._result: ParsedMessage | None = None

    @property
    def degraded(self) -> bool:
        """True if an internal error (a bug, logged) reduced the result to a plain body."""
        return self._degraded

    @property
    def buffered(self) -> int:
        """Octets of input held right now: the line prefix and the open header block."""
        return len(self._prefix) + sum(len(frame.header) for frame in self._stack)

    def feed(self, data: bytes) -> None:
        """Scan the next chunk of the message."""
        if self._result is not None or not data:
            return
        self._fed += len(data)
        if self._degraded:
            return
        try:
            self._scan(data)
        except Exception:
            _log.exception("MIME scanner failed; the message is kept without structure")
            self._degraded = True

    def close(self) -> ParsedMessage:
        """End of input: the parse results. Calling it again returns the same object."""
        if self._result is None:
            result = None
            if not self._degraded:
                try:
                    result = self._finish_message()
                except Exception:
                    _log.exception("MIME scanner failed; the message is kept without structure")
                    self._degraded = True
            self._result = result if result is not None else self._fallback()
        return self._result

    # -- line machinery --

    def _scan(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            line = self._line
            if line is _Line.MIDDLE:
                pos = self._skip(data, pos)
            elif line is _Line.START:
                pos = self._start(data, pos)
            elif line is _Line.DASHES:
                pos = self._dashes(data, pos)
            else:
                pos = self._rest_of_delimiter(data, pos)

    def _consume(self, data: bytes | bytearray, a: int, b: int) -> None:
        """Account for octets ``data[a:b]`` as part of the innermost open part."""
        if a >= b:
            return
        self._lf += data.count(b"\n", a, b)
        self._at += b - a
        top = self._stack[-1]
        if top.in_header:
            room = top.keep - len(top.header)
            if room > 0:
                top.header += data[a : a + min(room, b - a)]
        self._last_prev = data[b - 2] if b - a >= 2 else self._last
        self._last = data[b - 1]

    def _consume_prefix(self) -> None:
        self._consume(self._prefix, 0, len(self._prefix))
        self._prefix.clear()

    def _begin_line(self) -> None:
        self._line = _Line.START
        self._line_start = self._at

    def _skip(self, data: bytes, pos: int) -> int:
        """Inside an ordinary line: jump to the next line that may matter.

        That is a line starting with an open multipart's delimiter or, in a header,
        an empty line; everything before it is consumed at C speed.
        """
        n = len(data)
        top = self._stack[-1]
        if not top.in_header and not self._delimiters:
            self._consume(data, pos, n)  # nothing can end this part before EOF
            return n
        match = _line_pattern(top.in_header, self._delimiters).search(data, pos)
        if match is not None:
            found = match.start()
            self._consume(data, pos, found + 1)
            self._begin_line()
            return found + 1
        last = data.rfind(b"\n", pos)
        tail = n - (last + 1)
        if last < 0 or (tail >= 2 and not (tail < self._longest and data[last + 1] == _DASH)):
            self._consume(data, pos, n)
            return n
        self._consume(data, pos, last + 1)  # the next line may yet turn out to matter
        self._begin_line()
        return last + 1

    def _start(self, data: bytes, pos: int) -> int:
        """At a line's first octet: is it an empty line, a possible delimiter, or text?"""
        head = bytes(self._prefix) + data[pos : pos + 2 - len(self._prefix)]
        top = self._stack[-1]
        first = head[0]
        if top.in_header and first in (_LF, _CR):
            if first == _LF or (len(head) >= 2 and head[1] == _LF):
                taken = (1 if first == _LF else 2) - len(self._prefix)  # its octets in `data`
                self._consume_prefix()
                self._consume(data, pos, pos + taken)
                self._end_header()
                return pos + taken
            if len(head) < 2:
                self._prefix += data[pos:]
                return len(data)
        elif first == _DASH and self._delimiters:
            if len(head) < 2:
                self._prefix += data[pos:]
                return len(data)
            if head[1] == _DASH and self._may_be_delimiter(data, pos):
                self._line = _Line.DASHES
                return pos
        self._consume_prefix()
        self._line = _Line.MIDDLE
        return pos

    def _may_be_delimiter(self, data: bytes, pos: int) -> bool:
        """Whether the line starting at `pos` (prefix buffer aside) can be a delimiter.

        Decided at C speed where `data` holds enough of the line, so that runs of
        ``--`` lines that match no boundary do not go through `_dashes` one by one.
        """
        if self._prefix:
            return True
        if _delimiter_pattern(self._delimiters).match(data, pos) is not None:
            return True
        end = pos + self._longest
        return end > len(data) and data.find(b"\n", pos, end) < 0

    def _dashes(self, data: bytes, pos: int) -> int:
        """Collect the first octets of a ``--`` line, enough to match any boundary."""
        end = min(len(data), pos + _PREFIX - len(self._prefix))
        newline = data.find(b"\n", pos, end)
        if newline >= 0:
            self._prefix += data[pos : newline + 1]
            self._delimiter_line(complete=True)
            return newline + 1
        self._prefix += data[pos:end]
        if len(self._prefix) >= _PREFIX:
            self._delimiter_line(complete=False)
        return end

    def _rest_of_delimiter(self, data: bytes, pos: int) -> int:
        newline = data.find(b"\n", pos)
        if newline < 0:
            self._consume(data, pos, len(data))
            return len(data)
        self._consume(data, pos, newline + 1)
        self._after_delimiter()
        return newline + 1

    # -- structure --

    def _match(self, line: bytes | bytearray) -> tuple[int, bool] | None:
        """The open multipart whose delimiter starts `line` (RFC 2046 section 5.1.1)."""
        best, best_len = -1, -1
        for index, frame in enumerate(self._stack):
            delimiter = frame.delimiter
            if delimiter is None or frame.closed:
                continue
            if len(delimiter) >= best_len and line.startswith(delimiter):
                best, best_len = index, len(delimiter)
        if best < 0:
            return None
        return best, line[best_len : best_len + 2] == b"--"

    def _delimiter_line(self, *, complete: bool) -> None:
        match = self._match(self._prefix)
        if match is not None and not match[1] and self._parts >= self._max_parts:
            self._cut = True  # too many parts: the rest is the body of the innermost part
            self._refresh()
            match = None
        if match is None:
            self._consume_prefix()
            if complete:
                self._begin_line()
            else:
                self._line = _Line.MIDDLE
            return
        index, is_close = match
        end, lf_at_end = self._delimiter_start()
        self._close_above(index, end, lf_at_end)
        frame = self._stack[index]
        frame.closed = is_close
        self._open_child = not is_close
        self._refresh()
        self._consume_prefix()
        if complete:
            self._after_delimiter()
        else:
            self._line = _Line.DELIMITER

    def _delimiter_start(self) -> tuple[int, int]:
        """Where the part before the current delimiter line ends, and the LFs before it.

        The line ending before the delimiter belongs to the delimiter (RFC 2046
        section 5.1.1), unless it belongs to nothing of the innermost part.
        """
        start = self._line_start
        top = self._stack[-1]
        region = top.header_start if top.in_header else top.body_start
        if start <= region:
            return start, self._lf
        ending = 2 if self._last_prev == _CR and start - 2 >= region else 1
        return start - ending, self._lf - 1

    def _after_delimiter(self) -> None:
        if self._open_child:
            self._open_child = False
            parent = self._stack[-1]
            info = parent.info
            in_digest = info is not None and info.subtype == "DIGEST"
            self._push(_Frame(self._at, self._child_keep(), in_digest, is_message=False))
        self._begin_line()

    def _push(self, frame: _Frame) -> None:
        self._stack.append(frame)
        self._parts += 1
        self._refresh()

    def _child_keep(self) -> int:
        return min(self._max_header, max(_MIN_HEADER_KEEP, self._header_budget))

    def _refresh(self) -> None:
        """Recompute the delimiters that can end the current line's part."""
        self._delimiters = (
            ()
            if self._cut
            else tuple(
                frame.delimiter
                for frame in self._stack
                if frame.delimiter is not None and not frame.closed
            )
        )
        self._longest = max((len(delimiter) for delimiter in self._delimiters), default=0)

    def _end_header(self) -> None:
        """The empty line ending the innermost part's header has been consumed."""
        frame = self._stack[-1]
        frame.in_header = False
        frame.body_start = self._at
        frame.lf_at_body = self._lf
        info = self._parse_header(frame)
        room = len(self._stack) < self._max_depth and not self._cut
        if info.kind is _Kind.MULTIPART and info.boundary is not None and room:
            frame.delimiter = b"--" + info.boundary
        elif info.kind is _Kind.MESSAGE and room:
            if self._parts >= self._max_parts:
                self._cut = True
            else:
                self._push(_Frame(self._at, self._child_keep(), in_digest=False, is_message=True))
        self._refresh()
        self._begin_line()

    def _parse_header(self, frame: _Frame) -> _MimeInfo:
        fields = _header_fields(bytes(frame.header))
        info = _mime_info(fields, in_digest=frame.in_digest)
        frame.info = info
        if frame.is_message:
            frame.envelope = _envelope(fields)
        self._header_budget -= len(frame.header)
        if frame is not self._stack[0]:
            frame.header = bytearray()  # only the top-level header block is kept
        return info

    def _close_above(self, index: int, end: int, lf_at_end: int) -> None:
        while len(self._stack) - 1 > index:
            frame = self._stack.pop()
            part = self._finish(frame, end, lf_at_end)
            parent = self._stack[-1]
            parent_info = parent.info
            if parent_info is not None and parent_info.kind is _Kind.MESSAGE:
                parent.message = part
                parent.message_envelope = frame.envelope
            else:
                parent.children.append(part)

    def _finish(self, frame: _Frame, end: int, lf_at_end: int) -> BodyPart:
        """Build the part of a frame that ends at `end`."""
        if frame.in_header:
            del frame.header[max(0, end - frame.header_start) :]
            frame.in_header = False
            frame.body_start = end
            frame.lf_at_body = lf_at_end
            self._parse_header(frame)
        info = frame.info
        if info is None:  # pragma: no cover - set by _parse_header above
            raise AssertionError("frame without a parsed header")
        lines = max(0, lf_at_end - frame.lf_at_body)
        children: tuple[BodyPart, ...] = ()
        envelope = message = None
        if info.kind is _Kind.MULTIPART:
            children = tuple(frame.children) or (_synthetic(frame.body_start, end, lines, "7BIT"),)
        elif info.kind is _Kind.MESSAGE or (info.type, info.subtype) == ("MESSAGE", "RFC822"):
            message = frame.message
            envelope = frame.message_envelope
            if message is None or envelope is None:
                message = _synthetic(frame.body_start, end, lines, info.encoding)
                envelope = _EMPTY_ENVELOPE
        return BodyPart(
            type=info.type,
            subtype=info.subtype,
            params=info.params,
            id=info.id,
            description=info.description,
            encoding=info.encoding,
            lines=lines,
            md5=info.md5,
            disposition=info.disposition,
            language=info.language,
            location=info.location,
            header_start=frame.header_start,
            body_start=frame.body_start,
            end=end,
            children=children,
            envelope=envelope,
            message=message,
        )

    def _finish_message(self) -> ParsedMessage:
        line = self._line
        if line is _Line.START and self._prefix:
            self._consume_prefix()  # a lone CR or "-" at the very end: text
        elif line is _Line.DASHES:
            self._delimiter_line(complete=False)
        if self._line is _Line.DELIMITER:
            self._after_delimiter()
        if self._at != self._fed:  # pragma: no cover - every octet is consumed
            raise AssertionError("octets left unconsumed")
        self._close_above(0, self._at, self._lf)
        root = self._stack[0]
        body = self._finish(root, self._at, self._lf)
        envelope = root.envelope or _EMPTY_ENVELOPE
        return ParsedMessage(
            size=self._at,
            header=bytes(root.header),
            envelope=envelope,
            body=body,
            sent_date=_parse_date(envelope.date),
            subject=decode_words(envelope.subject or ""),
            from_=_display(envelope.from_),
            to=_display(envelope.to),
            cc=_display(envelope.cc),
            bcc=_display(envelope.bcc),
            message_id=envelope.message_id or "",
        )

    def _fallback(self) -> ParsedMessage:
        body = _synthetic(0, self._fed, 0, "7BIT")
        return ParsedMessage(
            size=self._fed,
            header=b"",
            envelope=_EMPTY_ENVELOPE,
            body=body,
            sent_date=None,
            subject="",
            from_="",
            to="",
            cc="",
            bcc="",
            message_id="",
        )


def _synthetic(start: int, end: int, lines: int, encoding: str) -> BodyPart:
    """A TEXT/PLAIN part with an empty header spanning ``[start, end)``."""
    return BodyPart(
        type="TEXT",
        subtype="PLAIN",
        params=(("CHARSET", "US-ASCII"),),
        id=None,
        description=None,
        encoding=encoding,
        lines=lines,
        md5=None,
        disposition=None,
        language=None,
        location=None,
        header_start=start,
        body_start=start,
        end=end,
    )


# -- Header fields (RFC 5322 section 2.2) ------------------------------------

_FIELD_NAME = re.compile(r"[!-9;-~]+")


def _header_fields(block: bytes) -> list[tuple[str, str]]:
    """Split a header block into (lower-case name, unfolded value) pairs.

    Values are "latin-1 text": one character per octet, so that boundaries and
    RFC 2231 octets survive exactly; `_text` turns them into real text.
    """
    fields: list[tuple[str, str]] = []
    name: str | None = None
    value: list[str] = []
    for raw in block.decode("latin-1").split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            break
        if line[0] in " \t":
            if name is not None:
                value.append(line)  # unfolding: the CRLF before WSP goes (section 2.2.3)
            continue
        if name is not None:
            fields.append((name, "".join(value).strip(" \t")))
        name = None
        colon = line.find(":")
        field_name = line[:colon].rstrip(" \t")
        if colon > 0 and _FIELD_NAME.fullmatch(field_name):
            name = field_name.lower()
            value = [line[colon + 1 :]]
    if name is not None:
        fields.append((name, "".join(value).strip(" \t")))
    return fields


def _first(fields: list[tuple[str, str]], name: str) -> str | None:
    for field_name, value in fields:
        if field_name == name:
            return value
    return None


def _text(value: str) -> str:
    """Latin-1 working text to real text: UTF-8, invalid octets and NUL as U+FFFD."""
    if not value.isascii():
        value = value.encode("latin-1").decode("utf-8", "replace")
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _ascii_upper(value: str) -> str:
    """Upper-case a-z only: latin-1 working text must stay one octet per character."""
    return value.translate(_ASCII_UPPER)


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _ntext(value: str | None) -> str | None:
    return None if value is None else _text(value)


# -- MIME fields (RFC 2045, RFC 2046, RFC 2183, RFC 2231) --------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_LOOSE_TOKEN = re.compile(r"[^\s;()\"=]+")
_LOOSE_VALUE = re.compile(r"[^\s;()\"]*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"?', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_SECTION = re.compile(r"(.+?)\*([0-9]{1,3})")
_PLAIN_ENCODINGS = frozenset({"7BIT", "8BIT", "BINARY"})


def _comment_end(text: str, pos: int) -> int:
    """Where the RFC 5322 comment opening at `pos` ends (nested, with quoted pairs)."""
    depth, n = 0, len(text)
    while pos < n:
        char = text[pos]
        if char == "\\":
            pos += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    return n


def _skip_cfws(text: str, pos: int) -> int:
    """Skip white space and comments (RFC 5322 section 3.2.2)."""
    n = len(text)
    while pos < n:
        char = text[pos]
        if char in " \t\r\n":
            pos += 1
        elif char == "(":
            pos = _comment_end(text, pos)
        else:
            break
    return pos


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The content of the quoted-string at `pos`, quoting removed, and where it ends."""
    match = _QUOTED.match(text, pos)
    if match is None:  # pragma: no cover - the pattern matches any '"'
        return "", pos + 1
    return _QUOTED_PAIR.sub(r"\1", match.group(1)), match.end()


def _raw_params(text: str, pos: int) -> list[tuple[str, str]]:
    """``*(";" parameter)`` (RFC 2045 section 5.1), leniently: garbage is skipped."""
    params: list[tuple[str, str]] = []
    n = len(text)
    while pos < n and len(params) < _MAX_PARAMS:
        semicolon = text.find(";", pos)
        if semicolon < 0:
            break
        pos = _skip_cfws(text, semicolon + 1)
        name = _LOOSE_TOKEN.match(text, pos)
        if name is None:
            continue
        pos = _skip_cfws(text, name.end())
        if pos >= n or text[pos] != "=":
            continue
        pos = _skip_cfws(text, pos + 1)
        if pos < n and text[pos] == '"':
            value, pos = _quoted(text, pos)
        else:
            loose = _LOOSE_VALUE.match(text, pos)
            value = "" if loose is None else loose.group()
            pos = pos + len(value)
        params.append((_ascii_upper(name.group()), value))
    return params


def _merge_2231(raw: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merge RFC 2231 continuations as Dovecot does (see the module docstring).

    ``name*0``, ``name*1*`` ... become one ``NAME`` (or ``NAME*`` with the value
    still encoded if any segment is extended, plain segments having ``%`` escaped),
    in the place of the first segment. With gaps or duplicates in the numbering the
    segments are returned as they came.
    """
    sections: dict[str, list[tuple[int, bool, str, int]]] = {}
    for position, (name, value) in enumerate(raw):
        extended = name.endswith("*")
        match = _SECTION.fullmatch(name[:-1] if extended else name)
        if match is not None:
            entry = (int(match.group(2)), extended, value, position)
            sections.setdefault(match.group(1), []).append(entry)
    if not sections:
        return raw
    merged: dict[int, tuple[str, str]] = {}
    skipped: set[int] = set()
    for base, entries in sections.items():
        entries.sort()
        if [entry[0] for entry in entries] != list(range(len(entries))):
            continue
        any_extended = any(entry[1] for entry in entries)
        pieces: list[str] = []
        if any_extended and not entries[0][1]:
            pieces.append("''")
        for _index, extended, value, _position in entries:
            pieces.append(value.replace("%", "%25") if any_extended and not extended else value)
        merged[min(entry[3] for entry in entries)] = (
            base + "*" if any_extended else base,
            "".join(pieces),
        )
        skipped.update(entry[3] for entry in entries)
    out: list[tuple[str, str]] = []
    for position, pair in enumerate(raw):
        if position in merged:
            out.append(merged[position])
        elif position not in skipped:
            out.append(pair)
    return out


def _params(text: str, pos: int) -> list[tuple[str, str]]:
    """Parameters after `pos`, RFC 2231 merged, still in latin-1 working text."""
    return _merge_2231(_raw_params(text, pos))


def _to_params(pairs: list[tuple[str, str]]) -> Params:
    return tuple((_text(name), _text(value)) for name, value in pairs)


def _content_type(value: str) -> tuple[str, str, list[tuple[str, str]]] | None:
    """``type "/" subtype *(";" parameter)`` (RFC 2045 section 5.1); None if invalid."""
    pos = _skip_cfws(value, 0)
    major = _TOKEN.match(value, pos)
    if major is None:
        return None
    pos = _skip_cfws(value, major.end())
    if pos >= len(value) or value[pos] != "/":
        return None
    pos = _skip_cfws(value, pos + 1)
    minor = _TOKEN.match(value, pos)
    if minor is None:
        return None
    return major.group().upper(), minor.group().upper(), _params(value, minor.end())


def _boundary(pairs: list[tuple[str, str]]) -> bytes | None:
    """The boundary parameter as the octets that appear in the body (RFC 2046 5.1.1)."""
    for name, value in pairs:
        if name == "BOUNDARY*":
            parts = value.split("'", 2)
            raw = unquote_to_bytes(parts[-1].encode("latin-1"))
            break
        if name == "BOUNDARY":
            raw = value.encode("latin-1")
            break
    else:
        return None
    return raw if 0 < len(raw) <= _MAX_BOUNDARY else None


def _mime_info(fields: list[tuple[str, str]], *, in_digest: bool) -> _MimeInfo:
    """The Content-* fields, defaulted (RFC 2045 section 5.2, RFC 2046 section 5.1.5)."""
    content_type = _first(fields, "content-type")
    parsed = None if content_type is None else _content_type(content_type)
    if parsed is not None:
        major, minor, pairs = parsed
        if (major, minor) == ("TEXT", "PLAIN") and all(name != "CHARSET" for name, _ in pairs):
            pairs = [*pairs, ("CHARSET", "US-ASCII")]
    elif content_type is None and in_digest:
        major, minor, pairs = "MESSAGE", "RFC822", []
    else:
        major, minor, pairs = "TEXT", "PLAIN", [("CHARSET", "US-ASCII")]

    encoding_value = _first(fields, "content-transfer-encoding")
    encoding = "7BIT"
    if encoding_value is not None:
        token = _LOOSE_TOKEN.match(encoding_value, _skip_cfws(encoding_value, 0))
        if token is not None:
            encoding = _text(token.group()).upper()

    kind = _Kind.LEAF
    boundary = None
    if major == "MULTIPART":
        kind = _Kind.MULTIPART
        boundary = _boundary(pairs)
    elif (major, minor) == ("MESSAGE", "RFC822") and encoding in _PLAIN_ENCODINGS:
        kind = _Kind.MESSAGE

    disposition = None
    disposition_value = _first(fields, "content-disposition")
    if disposition_value is not None:
        token = _LOOSE_TOKEN.match(disposition_value, _skip_cfws(disposition_value, 0))
        if token is not None:
            disposition = Disposition(
                _text(token.group()).upper(), _to_params(_params(disposition_value, token.end()))
            )

    language = None
    language_value = _first(fields, "content-language")
    if language_value is not None:
        tags = tuple(_text(tag.strip(" \t")) for tag in language_value.split(",")[:_MAX_PARAMS])
        language = tuple(tag for tag in tags if tag) or None

    return _MimeInfo(
        type=_text(major),
        subtype=_text(minor),
        params=_to_params(pairs),
        id=_ntext(_first(fields, "content-id")),
        description=_ntext(_first(fields, "content-description")),
        encoding=encoding,
        md5=_ntext(_first(fields, "content-md5")),
        disposition=disposition,
        language=language,
        location=_ntext(_first(fields, "content-location")),
        boundary=boundary,
        kind=kind,
    )


def _param_text(params: Params, name: str) -> str | None:
    wanted = name.upper()
    for key, value in params:
        if key == wanted + "*":
            return _decode_2231(value)
    for key, value in params:
        if key == wanted:
            return decode_words(value)
    return None


def _decode_2231(value: str) -> str:
    """``charset'language'%XX...`` (RFC 2231 section 4) to text."""
    parts = value.split("'", 2)
    charset = parts[0] if len(parts) == 3 else ""
    return _decode_octets(unquote_to_bytes(parts[-1]), charset)


# -- Charsets and RFC 2047 --------------------------------------------------

_NOT_CHARSETS = frozenset(
    {
        "aliases",
        "base64_codec",
        "bz2_codec",
        "charmap",
        "hex_codec",
        "idna",
        "mbcs",
        "oem",
        "punycode",
        "quopri_codec",
        "raw_unicode_escape",
        "rot_13",
        "undefined",
        "unicode_escape",
        "uu_codec",
        "zlib_codec",
    }
)
_CODECS = frozenset(module.name for module in pkgutil.iter_modules(encodings.__path__))


def _codec(charset: str) -> str:
    """A Python codec for a MIME charset name, or utf-8.

    Only names from the stdlib's own list are looked up, so hostile charset names
    neither reach non-text codecs nor grow the codec registry's cache.
    """
    name = encodings.normalize_encoding(charset.strip().lower()[:64])
    for candidate in (name, name.replace(".", "_")):
        canonical = encodings.aliases.aliases.get(candidate, candidate)
        if canonical in _CODECS and canonical not in _NOT_CHARSETS:
            return canonical
    return "utf_8"


def _decode_octets(raw: bytes, charset: str) -> str:
    try:
        text = raw.decode(_codec(charset), "replace")
    except (LookupError, UnicodeError, ValueError):
        text = raw.decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=")


def _word_octets(encoding: str, payload: str) -> bytes | None:
    """The octets of one encoded word's text (RFC 2047 section 4); None if broken."""
    try:
        if encoding in "bB":
            data = payload.rstrip("=")
            return binascii.a2b_base64((data + "=" * (-len(data) % 4)).encode("ascii"))
        return binascii.a2b_qp(payload.encode("utf-8"), header=True)
    except (binascii.Error, ValueError, UnicodeError):
        return None


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words, leniently (RFC 2047 section 6).

    White space between adjacent encoded words is dropped (section 6.2); adjacent
    words in one charset are joined before decoding, so a character split across
    words survives. Broken words are left as they are.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending = b""
    pending_charset = ""
    pos = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        octets = _word_octets(match.group(2), match.group(3))
        pos = match.end()
        if octets is None:
            if pending:
                out.append(_decode_octets(pending, pending_charset))
                pending = b""
            out.append(gap + match.group(0))
            after_word = False
            continue
        charset = match.group(1).split("*", 1)[0]
        if not (after_word and gap.strip(" \t\r\n") == ""):
            if pending:
                out.append(_decode_octets(pending, pending_charset))
                pending = b""
            out.append(gap)
        elif pending and charset.lower() != pending_charset.lower():
            out.append(_decode_octets(pending, pending_charset))
            pending = b""
        pending += octets
        pending_charset = charset
        after_word = True
    if pending:
        out.append(_decode_octets(pending, pending_charset))
    out.append(text[pos:])
    return "".join(out)


def _parse_date(value: str | None) -> datetime | None:
    """The Date field (RFC 5322 section 3.3) as an aware datetime; None if unparsable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value[:256])
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# -- Addresses (RFC 5322 section 3.4, RFC 3501 section 7.4.2) ---------------

_ADDRESS_ATOM = re.compile(r"[^\s()<>\[\]:;@\\,\"]+")
_SPACE = re.compile(r"[ \t\r\n]+")


def _address_tokens(value: str) -> list[tuple[str, str]]:
    """Tokens: ("a", atom), ("q", quoted content), ("d", domain literal),
    ("c", comment text) and specials as (char, char). Dots stay inside atoms."""
    tokens: list[tuple[str, str]] = []
    pos, n = 0, len(value)
    while pos < n:
        char = value[pos]
        if char in " \t\r\n":
            space = _SPACE.match(value, pos)
            pos = n if space is None else space.end()
        elif char == '"':
            text, pos = _quoted(value, pos)
            tokens.append(("q", text))
        elif char == "(":
            end = _comment_end(value, pos)
            inner = value[pos + 1 : end - 1 if value[end - 1] == ")" else end]
            tokens.append(("c", _QUOTED_PAIR.sub(r"\1", inner).strip()))
            pos = end
        elif char == "[":
            close = value.find("]", pos)
            end = n if close < 0 else close + 1
            tokens.append(("d", value[pos:end]))
            pos = end
        elif char in "<>:;@,":
            tokens.append((char, char))
            pos += 1
        elif char in ")]\\":
            pos += 1
        else:
            atom = _ADDRESS_ATOM.match(value, pos)
            end = pos + 1 if atom is None else atom.end()
            tokens.append(("a", value[pos:end]))
            pos = end
    return tokens


def _mailbox_address(
    name_words: list[str],
    comments: list[str],
    tokens: list[tuple[str, str]],
    *,
    comment_names: bool = True,
) -> Address | None:
    """An address from a display name and the tokens of an addr-spec or route-addr.

    Without a display name, the comments become the name (as UW IMAP does in
    ENVELOPE) unless ``comment_names`` is false.
    """
    adl = None
    if tokens and tokens[0][0] == "@":
        colon = next((i for i, token in enumerate(tokens) if token[0] == ":"), -1)
        if colon >= 0:
            adl = "".join(text for kind, text in tokens[:colon] if kind != "c")
            tokens = tokens[colon + 1 :]
    at = max((i for i, token in enumerate(tokens) if token[0] == "@"), default=-1)
    local_tokens = tokens if at < 0 else tokens[:at]
    domain_tokens = [] if at < 0 else tokens[at + 1 :]
    comments = comments + [text for kind, text in tokens if kind == "c"]
    local = "".join(text for kind, text in local_tokens if kind in "aqd")
    domain = "".join(text for kind, text in domain_tokens if kind in "ad")
    name = " ".join(name_words)
    if not name and comment_names:
        name = " ".join(comment for comment in comments if comment)
    if not local and not domain and not name:
        return None
    return Address(
        _text(name) if name else None,
        None if adl is None else _text(adl),
        _text(local),
        _text(domain) if domain else MISSING_HOST,
    )


def _addresses(value: str | None, *, comment_names: bool = True) -> AddressList:
    """An address-list field as ENVELOPE address structures, groups marked.

    ``comment_names``: see `_mailbox_address`.
    """
    if value is None:
        return None
    tokens = _address_tokens(value)
    out: list[Address] = []
    in_group = False
    pos, n = 0, len(tokens)
    while pos < n and len(out) < _MAX_ADDRESSES:
        kind = tokens[pos][0]
        if kind in ",>":
            pos += 1
            continue
        if kind == ";":
            if in_group:
                out.append(Address(None, None, None, None))
                in_group = False
            pos += 1
            continue
        words: list[str] = []
        comments: list[str] = []
        end = pos
        while end < n and tokens[end][0] in "aqdc":
            is_comment = tokens[end][0] == "c"
            (comments if is_comment else words).append(tokens[end][1])
            end += 1
        following = tokens[end][0] if end < n else ""
        if following == ":" and not in_group:
            out.append(Address(None, None, _text(" ".join(words)), None))
            in_group = True
            pos = end + 1
            continue
        if following == "<":
            close = end + 1
            while close < n and tokens[close][0] != ">":
                close += 1
            address = _mailbox_address(
                words, comments, tokens[end + 1 : close], comment_names=comment_names
            )
            pos = close + 1
        elif following == "@":
            stop = end + 1
            while stop < n and tokens[stop][0] in "aqdc.":
                stop += 1
            address = _mailbox_address([], [], tokens[pos:stop], comment_names=comment_names)
            pos = stop
        else:
            address = (
                _mailbox_address([], comments, tokens[pos:end], comment_names=comment_names)
                if words
                else None
            )
            pos = max(end, pos + 1) if following not in ("", ",", ";") else end
        if address is not None:
            out.append(address)
    if in_group:
        out.append(Address(None, None, None, None))
    return tuple(out) or None


def _display(addresses: AddressList) -> str:
    """Decoded text of an address list, e.g. ``Jörg Müller <joerg@example.org>, b@x``."""
    if not addresses:
        return ""
    items: list[str] = []
    group: list[str] | None = None
    group_name = ""
    for address in addresses:
        if address.is_group_start:
            group, group_name = [], decode_words(address.mailbox or "")
            continue
        if address.is_group_end:
            if group is not None:
                items.append(_display_group(group_name, group))
            group = None
            continue
        mailbox = address.mailbox or ""
        spec = mailbox if address.host in (None, MISSING_HOST) else f"{mailbox}@{address.host}"
        text = f"{decode_words(address.name)} <{spec}>" if address.name else spec
        (items if group is None else group).append(text)
    if group is not None:
        items.append(_display_group(group_name, group))
    return ", ".join(items)


_ADDRESS_FIELDS = ("from", "to", "cc", "bcc")


def search_addresses(header: bytes) -> dict[str, tuple[str, ...]]:
    """The addresses of the From, To, Cc and Bcc fields of a header block, as SEARCH
    matches them (RFC 3501 section 6.4.4 FROM, TO, CC, BCC).

    Keyed by lower-case field name, present when the header has that field. Each
    address is one item, ``display name <mailbox@host>`` or ``mailbox@host``: parsed
    as ENVELOPE parses it (RFC 5322 section 3.4: folding and comments removed,
    quoted strings unquoted), the display name RFC 2047-decoded, a comment never
    taken for a name. A group's name is an item of its own. Works on any stored
    header block, so messages stored before this existed are searched the same way.
    """
    found: dict[str, list[str]] = {}
    for name, value in _header_fields(header):
        if name not in _ADDRESS_FIELDS:
            continue
        items = found.setdefault(name, [])
        for address in _addresses(value, comment_names=False) or ():
            if address.is_group_end:
                continue
            if address.is_group_start:
                items.append(decode_words(address.mailbox or ""))
                continue
            mailbox = address.mailbox or ""
            spec = mailbox if address.host in (None, MISSING_HOST) else f"{mailbox}@{address.host}"
            items.append(f"{decode_words(address.name)} <{spec}>" if address.name else spec)
    return {name: tuple(items) for name, items in found.items()}


def _display_group(name: str, members: list[str]) -> str:
    return f"{name}: {', '.join(members)};" if members else f"{name}:;"


def _envelope(fields: list[tuple[str, str]]) -> Envelope:
    """ENVELOPE from a message header (RFC 3501 section 7.4.2's defaulting rules)."""
    from_ = _addresses(_first(fields, "from"))
    return Envelope(
        date=_ntext(_first(fields, "date")),
        subject=_ntext(_first(fields, "subject")),
        from_=from_,
        sender=_addresses(_first(fields, "sender")) or from_,
        reply_to=_addresses(_first(fields, "reply-to")) or from_,
        to=_addresses(_first(fields, "to")),
        cc=_addresses(_first(fields, "cc")),
        bcc=_addresses(_first(fields, "bcc")),
        in_reply_to=_ntext(_first(fields, "in-reply-to")),
        message_id=_ntext(_first(fields, "message-id")),
    )


# -- JSON helpers -----------------------------------------------------------


def _json_list(data: object, low: int, high: int | None) -> list[object]:
    if not isinstance(data, list) or len(data) < low or (high is not None and len(data) > high):
        raise ValueError(f"malformed MIME structure JSON: {data!r:.80}")
    return list(data)


def _json_str(data: object) -> str:
    if not isinstance(data, str):
        raise ValueError(f"malformed MIME structure JSON: expected a string, got {data!r:.80}")
    return data


def _json_nstr(data: object) -> str | None:
    return None if data is None else _json_str(data)


def _json_int(data: object) -> int:
    if not isinstance(data, int) or isinstance(data, bool):
        raise ValueError(f"malformed MIME structure JSON: expected an integer, got {data!r:.80}")
    return data


def _params_to_json(params: Params) -> list[JsonValue]:
    return [item for pair in params for item in pair]


def _params_from_json(data: object) -> Params:
    flat = [_json_str(item) for item in _json_list(data, 0, None)]
    if len(flat) % 2:
        raise ValueError("malformed MIME structure JSON: odd parameter list")
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def _addresses_to_json(addresses: AddressList) -> JsonValue:
    return None if addresses is None else [address.to_json() for address in addresses]


def _addresses_from_json(data: object) -> AddressList:
    if data is None:
        return None
    return tuple(Address.from_json(item) for item in _json_list(data, 1, None))
