"""Content-Transfer-Encoding (RFC 2045 section 6), undone in chunks as a part streams.

SEARCH decodes text parts with it, FETCH BINARY (RFC 3516) every part, and
iMIP the calendar part of a delivered invitation.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["TRANSFER_ENCODINGS", "TransferDecoder", "decode"]

_MAX_QP_LINE = 64 * 1024
TRANSFER_ENCODINGS = frozenset({"7BIT", "8BIT", "BINARY", "BASE64", "QUOTED-PRINTABLE"})
"""The Content-Transfer-Encodings of RFC 2045 section 6.1 that `TransferDecoder` undoes."""


class TransferDecoder:
    """Undoes a part's Content-Transfer-Encoding, fed in chunks (sans-I/O).

    Base64 is cut only at whole units of 4 characters (others are ignored, RFC
    2045 section 6.8), quoted-printable at whole lines (an endless line is cut
    elsewhere, never inside an ``=XX`` escape or a soft line break); any other
    encoding passes through. Any chunking of the input gives the same output,
    so a decoded size computed in one pass holds for the next.
    """

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding.upper()
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        return self._decode(self._pending + chunk, final=False)

    def close(self) -> bytes:
        return self._decode(self._pending, final=True)

    def _decode(self, data: bytes, *, final: bool) -> bytes:
        self._pending = b""
        if self._encoding == "BASE64":
            compact = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
            cut = len(compact) if final else len(compact) - len(compact) % 4
            self._pending = compact[cut:]
            usable = compact[:cut]
            usable += b"=" * (-len(usable) % 4)
            try:
                return binascii.a2b_base64(usable)
            except binascii.Error:
                return b""
        if self._encoding == "QUOTED-PRINTABLE":
            cut = len(data) if final else data.rfind(b"\n") + 1
            if cut == 0 and len(data) > _MAX_QP_LINE:  # a hostile endless line: bounded memory
                cut = len(data) - (2 - data[-2:].find(b"=")) % 3  # keep "=", "=X" or "=\r"
            self._pending = data[cut:]
            return binascii.a2b_qp(data[:cut])
        return data


def decode(body: bytes, encoding: str) -> bytes:
    """A whole body without its transfer encoding."""
    decoder = TransferDecoder(encoding)
    return decoder.feed(body) + decoder.close()
