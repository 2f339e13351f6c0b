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

Choices, where the RFCs leave room (the fields' own are in `content`, `params`,
`addresses` and `headers`):

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

Limits: ``max_header_bytes`` per header block kept (later octets are still scanned
and counted), a budget of four such blocks across all parts after which MIME headers
are kept to 8 KiB each, ``max_parts`` parts (after which the rest of the message is
the opaque body of the innermost open part), ``max_depth`` nesting (deeper multiparts
and messages are opaque).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field, replace

from lightmail.mailstore.mime.addresses import display, parse_envelope
from lightmail.mailstore.mime.content import MAX_BOUNDARY, Kind, MimeInfo, mime_info
from lightmail.mailstore.mime.delimiters import delimiter_pattern, line_pattern
from lightmail.mailstore.mime.headers import Fields, header_fields, parse_date
from lightmail.mailstore.mime.sorting import sort_keys
from lightmail.mailstore.mime.types import EMPTY_ENVELOPE, BodyPart, Envelope, ParsedMessage
from lightmail.mailstore.mime.words import decode_words

_log = logging.getLogger(__name__)

_PREFIX = 2 + MAX_BOUNDARY + 2
_MIN_HEADER_KEEP = 8 * 1024
_CR, _LF = 13, 10
_DASH = 45


class _Line(enum.Enum):
    """Where the scanner is in the current line."""

    START = enum.auto()  # at its first octet (some may wait in the prefix buffer)
    MIDDLE = enum.auto()  # inside an ordinary line
    DASHES = enum.auto()  # inside a line that starts with "--": collecting its prefix
    DELIMITER = enum.auto()  # inside a boundary delimiter line already acted on


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
    info: MimeInfo | None = None
    envelope: Envelope | None = None
    delimiter: bytes | None = None
    closed: bool = False
    children: list[BodyPart] = field(default_factory=list)
    message: BodyPart | None = None
    message_envelope: Envelope | None = None


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
        self._root_fields: Fields = []  # the message's own header, for its sort keys
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
        match = line_pattern(top.in_header, self._delimiters).search(data, pos)
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
        if delimiter_pattern(self._delimiters).match(data, pos) is not None:
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
            in_digest = info is not None and info.part.subtype == "DIGEST"
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
        if info.kind is Kind.MULTIPART and info.boundary is not None and room:
            frame.delimiter = b"--" + info.boundary
        elif info.kind is Kind.MESSAGE and room:
            if self._parts >= self._max_parts:
                self._cut = True
            else:
                self._push(_Frame(self._at, self._child_keep(), in_digest=False, is_message=True))
        self._refresh()
        self._begin_line()

    def _parse_header(self, frame: _Frame) -> MimeInfo:
        fields = header_fields(bytes(frame.header))
        info = mime_info(fields, in_digest=frame.in_digest)
        frame.info = info
        if frame.is_message:
            frame.envelope = parse_envelope(fields)
        self._header_budget -= len(frame.header)
        if frame is self._stack[0]:
            self._root_fields = fields
        else:
            frame.header = bytearray()  # only the top-level header block is kept
        return info

    def _close_above(self, index: int, end: int, lf_at_end: int) -> None:
        while len(self._stack) - 1 > index:
            frame = self._stack.pop()
            part = self._finish(frame, end, lf_at_end)
            parent = self._stack[-1]
            parent_info = parent.info
            if parent_info is not None and parent_info.kind is Kind.MESSAGE:
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
        part = info.part
        lines = max(0, lf_at_end - frame.lf_at_body)
        children: tuple[BodyPart, ...] = ()
        envelope = message = None
        if info.kind is Kind.MULTIPART:
            children = tuple(frame.children) or (_synthetic(frame.body_start, end, lines, "7BIT"),)
        elif info.kind is Kind.MESSAGE or (part.type, part.subtype) == ("MESSAGE", "RFC822"):
            message = frame.message
            envelope = frame.message_envelope
            if message is None or envelope is None:
                message = _synthetic(frame.body_start, end, lines, part.encoding)
                envelope = EMPTY_ENVELOPE
        return replace(
            part,
            lines=lines,
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
        envelope = root.envelope or EMPTY_ENVELOPE
        return _parsed(self._at, bytes(root.header), envelope, self._root_fields, body)

    def _fallback(self) -> ParsedMessage:
        return _parsed(self._fed, b"", EMPTY_ENVELOPE, [], _synthetic(0, self._fed, 0, "7BIT"))


def _parsed(
    size: int, header: bytes, envelope: Envelope, fields: Fields, body: BodyPart
) -> ParsedMessage:
    """The parse results, with the search and sort fields derived from the envelope
    and the header's ``fields``."""
    return ParsedMessage(
        size=size,
        header=header,
        envelope=envelope,
        body=body,
        sent_date=parse_date(envelope.date),
        subject=decode_words(envelope.subject or ""),
        from_=display(envelope.from_),
        to=display(envelope.to),
        cc=display(envelope.cc),
        bcc=display(envelope.bcc),
        message_id=envelope.message_id or "",
        sort=sort_keys(envelope, fields),
    )


_EMPTY_HEADER = mime_info([], in_digest=False).part  # TEXT/PLAIN; CHARSET=US-ASCII, 7BIT


def _synthetic(start: int, end: int, lines: int, encoding: str) -> BodyPart:
    """A part with an empty MIME header (so TEXT/PLAIN) spanning ``[start, end)``."""
    return replace(
        _EMPTY_HEADER, encoding=encoding, lines=lines, header_start=start, body_start=start, end=end
    )
