"""What every sans-I/O protocol receiver shares (IMAP, LMTP, POP3).

A receiver takes bytes with ``receive_data`` and returns events from
``next_event``; these two sentinels are the events that carry no data.
"""

from __future__ import annotations

import enum
from typing import Literal


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"
    CONNECTION_CLOSED = "CONNECTION_CLOSED"


NEED_DATA = Sentinel.NEED_DATA
"""Feed more bytes with ``receive_data`` before asking again."""
CONNECTION_CLOSED = Sentinel.CONNECTION_CLOSED
"""The peer closed (``receive_data(b"")``), or the receiver cannot go on; anything
in progress is abandoned."""


class LocalProtocolError(Exception):
    """The caller used a receiver out of turn or built a reply wrongly: our bug,
    never the peer's."""


class LineBuffer:
    """The input buffer of a line-based receiver (IMAP, LMTP, POP3) and how lines leave it.

    Subclasses call ``super().__init__()``, read lines with ``_take_line`` and
    ``_skip_line``, return ``_no_data()`` when the buffer cannot advance them,
    and extend ``_close`` to enter their own closed state. ``_consume`` is the
    only place bytes leave the buffer.
    """

    def __init__(self) -> None:
        self._buf = bytearray()  # received, not yet consumed
        self._eof = False
        self._closed = False  # _close() was called: nothing more is read
        self._scan = 0  # how far _buf was searched for LF without finding one

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed its side."""
        if self._closed and not self._eof:
            return  # the receiver closed (a fatal error): what follows is not read
        if self._eof:
            raise LocalProtocolError("receive_data after end of file")
        if data:
            self._buf += data
        else:
            self._eof = True

    def discard_pending(self) -> int:
        """Drop bytes received but not yet parsed, and return how many.

        Call after the go-ahead to STARTTLS or STLS: anything pipelined after
        it arrived in clear text and must not be treated as sent under TLS
        (command injection, RFC 2595 section 3.1, CVE-2011-0411).
        """
        return len(self._consume(len(self._buf)))

    def _close(self) -> None:
        """Stop reading: drop what is buffered and ignore what arrives later."""
        self._closed = True
        self._consume(len(self._buf))

    def _no_data(self) -> Sentinel:
        """The buffer cannot advance the receiver: wait for more, or close at end of file."""
        if self._eof:
            self._close()
            return CONNECTION_CLOSED
        return NEED_DATA

    def _consume(self, n: int) -> bytes:
        """Remove and return the first ``n`` buffered octets."""
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._scan = 0
        return data

    def _take_line(self, limit: int) -> bytes | Literal["overflow"] | None:
        """One line with its LF, at most ``limit`` octets LF included.

        None when more data is needed; "overflow" as soon as the line cannot fit.
        """
        lf = self._buf.find(b"\n", self._scan)
        if lf < 0:
            self._scan = len(self._buf)
            return "overflow" if len(self._buf) >= limit else None
        if lf + 1 > limit:
            return "overflow"
        return self._consume(lf + 1)

    def _skip_line(self) -> bytes | None:
        """Drop buffered octets up to and including the next LF, and return them.

        They end in LF when the line ended, else more of it may follow; None
        when nothing was buffered.
        """
        lf = self._buf.find(b"\n")
        if lf < 0:
            if not self._buf:
                return None
            return self._consume(len(self._buf))
        return self._consume(lf + 1)
