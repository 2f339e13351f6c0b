"""BINARY (RFC 3516, RFC 9051 section 6.4.5): a part's content with its
Content-Transfer-Encoding undone, sans-I/O.

The FETCH handler finds the part with `binary_part`, reads its body from the
blob store in chunks, feeds them to a `ContentDecoder` and cuts the decoded
stream to the client's ``<partial>`` with a `Window`. The size of a literal is
due before its first octet, so a large part is decoded twice: once to count
(and to see whether it holds NUL, which decides between ``literal`` and
``literal8``), once while it is sent. Both passes give the same octets, as the
decoding does not depend on how the blob store chunks the body.

Choices, where the RFCs leave room:

- BINARY is for leaf parts only (RFC 9051 section 6.4.5): ``BINARY[]`` (the
  whole message), a MULTIPART part and a MESSAGE/RFC822 part make the FETCH fail
  with NO, as does an encoding we cannot undo (``UNKNOWN-CTE``, RFC 3516 section
  4.3). A part that does not exist is an empty string, as for ``BODY[]``.
- TEXT/* content goes out with CRLF line ends (RFC 3516 section 6): a bare CR
  or LF becomes CRLF. Other media types are sent exactly as decoded.
"""

from __future__ import annotations

import re

from lightmail.mailstore.mime.transfer import TRANSFER_ENCODINGS, TransferDecoder
from lightmail.mailstore.mime.types import BodyPart

__all__ = ["BinaryRefused", "ContentDecoder", "Window", "binary_part", "is_identity"]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_IDENTITY = frozenset({"7BIT", "8BIT", "BINARY"})


class BinaryRefused(Exception):
    """BINARY cannot be answered for this part: the FETCH ends NO.

    ``unknown_cte``: the reason is an encoding we do not know (the NO carries
    ``UNKNOWN-CTE``); otherwise the part is not a leaf. ``args[0]`` is wire-safe.
    """

    def __init__(self, text: str, *, unknown_cte: bool) -> None:
        super().__init__(text)
        self.unknown_cte = unknown_cte


def binary_part(body: BodyPart, section: tuple[int, ...]) -> BodyPart | None:
    """The leaf part ``BINARY[section]`` decodes, or None when there is none.

    Raises `BinaryRefused` for a part that is not a leaf (RFC 9051 section
    6.4.5) and for a Content-Transfer-Encoding other than those of RFC 2045.
    """
    part = body.find(section) if section else None
    if section and part is None:
        return None
    if part is None or part.is_multipart or part.is_message:
        raise BinaryRefused("BINARY is only for leaf body parts", unknown_cte=False)
    if part.encoding.upper() not in TRANSFER_ENCODINGS:
        raise BinaryRefused("Unknown Content-Transfer-Encoding", unknown_cte=True)
    return part


def is_identity(part: BodyPart) -> bool:
    """Whether the decoded content is the body as stored: no transfer encoding to
    undo and no line ends to rewrite, so its size is known without reading it."""
    return part.encoding.upper() in _IDENTITY and part.type != "TEXT"


class ContentDecoder:
    """A part's body, fed in chunks, out as its decoded content.

    `TransferDecoder` undoes the encoding; for TEXT/* a bare CR or LF then
    becomes CRLF (a CR at the end of a chunk waits for the next one).
    """

    def __init__(self, part: BodyPart) -> None:
        self._transfer = TransferDecoder(part.encoding)
        self._text = part.type == "TEXT"
        self._cr = b""

    def feed(self, chunk: bytes) -> bytes:
        return self._lines(self._transfer.feed(chunk), final=False)

    def close(self) -> bytes:
        return self._lines(self._transfer.close(), final=True)

    def _lines(self, data: bytes, *, final: bool) -> bytes:
        if not self._text:
            return data
        data = self._cr + data
        self._cr = b""
        if not final and data.endswith(b"\r"):
            data, self._cr = data[:-1], b"\r"
        return _LINE_END.sub(b"\r\n", data)


class Window:
    """Octets ``[origin, origin + count)`` of a stream fed in pieces (all of it
    when ``count`` is None): what ``<origin.count>`` asks of decoded content."""

    def __init__(self, origin: int = 0, count: int | None = None) -> None:
        self._start = origin
        self._stop = None if count is None else origin + count
        self._pos = 0
        self.taken = 0
        """Octets of the window seen so far."""
        self.nul = False
        """Whether those octets hold NUL (then they go out as ``literal8``)."""

    @property
    def full(self) -> bool:
        """Nothing more of the stream falls in the window: stop reading."""
        return self._stop is not None and self._pos >= self._stop

    def feed(self, data: bytes) -> bytes:
        """The part of ``data`` (the next octets of the stream) inside the window."""
        begin = self._pos
        self._pos += len(data)
        low = max(self._start - begin, 0)
        high = len(data) if self._stop is None else max(min(self._stop - begin, len(data)), 0)
        piece = data[low:high] if low < high else b""
        self.taken += len(piece)
        self.nul = self.nul or b"\x00" in piece
        return piece
