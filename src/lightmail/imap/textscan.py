"""BODY and TEXT search in a message's text (RFC 3501 section 6.4.4), sans-I/O.

The search handler reads the message range by range (`text_segments`: the
MIME headers of the parts and their TEXT/* bodies), decodes each text part
from its transfer encoding and charset to UTF-8 (`PartDecoder`) and feeds the
bytes to a `TextScan`, which says which needles it found. Needles with
non-ASCII characters are matched against the text decoded as UTF-8; ASCII
needles octet-wise with ASCII case folding, so they find text in any
ASCII-compatible charset. :mod:`lightmail.imap.search` evaluates the keys.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lightmail.mailstore.mime.transfer import TransferDecoder
from lightmail.mailstore.mime.types import BodyPart

__all__ = [
    "Needle",
    "PartDecoder",
    "Segment",
    "TextScan",
    "fold",
    "text_segments",
]

Needle = tuple[bytes, bool]
"""A BODY or TEXT search string as sent, and whether it covers the whole message (TEXT)."""


def fold(value: bytes) -> str:
    """A search string for comparison: UTF-8 decoded, case-folded."""
    return value.decode("utf-8", "replace").casefold()


_S = TypeVar("_S", bytes, str)


class _Window(Generic[_S]):
    """Needles searched in one representation of the message stream.

    Keeps only the last ``longest needle - 1`` units between chunks, so that a
    match straddling two chunks is found and memory stays bounded. Positions are in
    the stream's own units (octets, or case-folded characters).
    """

    __slots__ = ("_body", "_keep", "_needles", "_tail", "_tail_start")

    def __init__(self, needles: list[tuple[_S, Needle]], empty: _S) -> None:
        self._needles: list[tuple[_S, Needle]] = needles
        self._keep = max((len(folded) for folded, _ in needles), default=1) - 1
        self._tail: _S = empty
        self._tail_start = 0
        self._body: int | None = None

    def mark_body(self) -> None:
        """The next unit fed is the first of the body."""
        self._body = self._tail_start + len(self._tail)

    def scan(self, data: _S, found: set[Needle]) -> None:
        buffer = self._tail + data
        for folded, needle in self._needles:
            if needle in found:
                continue
            if needle[1]:
                start = 0
            elif self._body is None:
                continue
            else:
                start = max(0, self._body - self._tail_start)
            if buffer.find(folded, start) >= 0:
                found.add(needle)
        cut = max(0, len(buffer) - self._keep)
        self._tail = buffer[cut:]
        self._tail_start += cut


class TextScan:
    """Find BODY/TEXT needles in a message fed in chunks of any size.

    TEXT needles (``whole_message=True``) match anywhere; BODY needles only where
    the match starts at or after `body_start` (the offset of the root body).
    ASCII needles are matched octet-wise with ASCII case folding; needles with
    non-ASCII characters are matched in the message decoded as UTF-8 (invalid octets
    as U+FFFD) with Unicode case folding, a decoder carrying split characters across
    chunks. Encoded bodies are searched as transmitted (see the module docstring).
    Any chunking gives the same result.
    """

    __slots__ = (
        "_body_start",
        "_decoder",
        "_found",
        "_in_body",
        "_needles",
        "_octets",
        "_pos",
        "_text",
    )

    def __init__(self, needles: Iterable[Needle], body_start: int) -> None:
        self._needles = frozenset(needles)
        self._body_start = max(0, body_start)
        self._pos = 0
        self._in_body = False
        self._found: set[Needle] = {n for n in self._needles if not n[0]}
        ascii_needles: list[tuple[bytes, Needle]] = []
        text_needles_: list[tuple[str, Needle]] = []
        for needle in self._needles - self._found:
            if needle[0].isascii():
                ascii_needles.append((needle[0].lower(), needle))
            else:
                text_needles_.append((fold(needle[0]), needle))
        self._octets = _Window(ascii_needles, b"") if ascii_needles else None
        self._text = _Window(text_needles_, "") if text_needles_ else None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    @property
    def done(self) -> bool:
        """Every needle was found: the rest of the message need not be read."""
        return len(self._found) == len(self._needles)

    def feed(self, chunk: bytes) -> None:
        """Scan the next chunk of the raw message."""
        if not chunk or self.done:
            return
        cut = self._body_start - self._pos
        if 0 < cut < len(chunk):
            self._scan(chunk[:cut])
            self._scan(chunk[cut:])
        else:
            self._scan(chunk)

    def found(self) -> frozenset[Needle]:
        """The needles found so far."""
        return frozenset(self._found)

    def _scan(self, data: bytes) -> None:
        if not self._in_body and self._pos >= self._body_start:
            self._in_body = True
            for window in (self._octets, self._text):
                if window is not None:
                    window.mark_body()
        self._pos += len(data)
        if self._octets is not None:
            self._octets.scan(data.lower(), self._found)
        if self._text is not None:
            self._text.scan(self._decoder.decode(data).casefold(), self._found)


@dataclass(frozen=True, slots=True)
class Segment:
    """A byte range of the raw message that BODY/TEXT search reads.

    ``part`` is the TEXT/* part whose body this is (decode it with a
    `PartDecoder`), or None for a MIME header block, searched as it is.
    """

    start: int
    end: int
    part: BodyPart | None = None


def text_segments(body: BodyPart) -> list[Segment]:
    """What BODY and TEXT search of a message read, in message order.

    The MIME headers of every part below the top (so a file name is found)
    and the body of every TEXT/* part, encapsulated messages included.
    Other parts' bodies (attachments) are skipped. The top-level header is
    not here: `matches` searches it from the cache.
    """
    segments: list[Segment] = []

    def visit(part: BodyPart, top: bool) -> None:
        if not top and part.header_start < part.body_start:
            segments.append(Segment(part.header_start, part.body_start))
        if part.is_multipart:
            for child in part.children:
                visit(child, top=False)
        elif part.is_message and part.message is not None:
            inner = part.message
            if inner.header_start < inner.body_start:
                segments.append(Segment(inner.header_start, inner.body_start))
            visit(inner, top=True)
        elif part.type == "TEXT" and part.body_start < part.end:
            segments.append(Segment(part.body_start, part.end, part))

    visit(body, top=True)
    return segments


class PartDecoder:
    """Turns a part's raw body, fed in chunks, into UTF-8 text (sans-I/O).

    Undoes the Content-Transfer-Encoding (`TransferDecoder`) and converts
    the part's charset; unknown charsets and broken bytes degrade to U+FFFD,
    never to an exception.
    """

    def __init__(self, encoding: str, charset: str | None) -> None:
        self._transfer = TransferDecoder(encoding)
        try:
            codec = codecs.lookup(charset or "us-ascii")
            if not codec._is_text_encoding:
                codec = codecs.lookup("utf-8")
        except LookupError:
            codec = codecs.lookup("utf-8")
        self._text = codec.incrementaldecoder(errors="replace")

    def feed(self, chunk: bytes) -> bytes:
        return self._convert(self._transfer.feed(chunk))

    def close(self) -> bytes:
        return self._convert(self._transfer.close(), final=True)

    def _convert(self, data: bytes, *, final: bool = False) -> bytes:
        return self._text.decode(data, final).encode("utf-8", "surrogatepass")
