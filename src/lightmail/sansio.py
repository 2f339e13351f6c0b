"""What every sans-I/O protocol receiver shares (IMAP, LMTP, POP3).

A receiver takes bytes with ``receive_data`` and returns events from
``next_event``; these two sentinels are the events that carry no data.
Nothing the peer sends makes a receiver raise; using one out of turn is our
bug and raises ``LocalProtocolError``. ``receive_data`` keeps what it is
given: call ``next_event`` until ``NEED_DATA`` before feeding more.

The line protocols (LMTP, POP3) share more: a command line ends in CRLF or a
bare LF; one longer than the receiver's ``max_line`` is refused at once and
the rest of it is read and discarded unseen (``LineBuffer._next_line``);
:func:`split_command` and :func:`no_args` parse it; :func:`safe_text` and
:func:`reply_line` make reply lines safe and cut them to 512 octets.
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sized
from typing import Generic, Literal, TypeVar

_C = TypeVar("_C")
_B = TypeVar("_B")
_E = TypeVar("_E")


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


CR = 0x0D
LF = 0x0A
MAX_REPLY_LINE = 512
"""Octets in a reply line, CRLF included (RFC 5321 section 4.5.3.1.5, RFC 2449 section 4)."""
_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")


def printable(line: bytes) -> bool:
    """Whether ``line`` holds only the octets a command line may: printable ASCII and SP."""
    return _NOT_PRINTABLE.search(line) is None


_UNSAFE = re.compile(r"[^\x20-\x7e]")
_UNSAFE_BUT_TAB = re.compile(r"[^\t\x20-\x7e]")


def safe_text(text: str, *, tab: bool = False) -> str:
    """``text`` with each character other than printable ASCII (and HTAB if ``tab``) as ``?``."""
    return (_UNSAFE_BUT_TAB if tab else _UNSAFE).sub("?", text)


def reply_line(line: str) -> bytes:
    """A safe reply line cut to ``MAX_REPLY_LINE`` octets, CRLF included."""
    return line[: MAX_REPLY_LINE - 2].encode("ascii") + b"\r\n"


def split_command(
    line: bytes, keyword: re.Pattern[str]
) -> tuple[str, str] | Literal["invalid", "syntax"]:
    """A command line (line end removed) as its upper-cased keyword and the rest.

    Trailing spaces and tabs are dropped first. "invalid": an octet other than
    :func:`printable`; "syntax": the text before the first space is not ``keyword``.
    """
    line = line.rstrip(b" \t")
    if not printable(line):
        return "invalid"
    word, _, rest = line.decode("ascii").partition(" ")
    if keyword.fullmatch(word) is None:
        return "syntax"
    return word.upper(), rest


def no_args(make: Callable[[], _C], bad: _B) -> Callable[[Sized], _C | _B]:
    """The parser of a command that takes no argument: ``bad`` when it gets one."""

    def parse(args: Sized) -> _C | _B:
        return bad if len(args) else make()

    return parse


def crlf(data: bytes, after_cr: bool) -> bytes:
    """``data`` with each bare LF made CRLF; a leading LF right ``after_cr`` is kept as is."""
    head = b""
    if after_cr and data[:1] == b"\n":
        head, data = b"\n", data[1:]
    if data.count(b"\n") != data.count(b"\r\n"):
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return head + data


class LineBuffer(ABC, Generic[_E]):
    """The input buffer of a line-based receiver (IMAP, LMTP, POP3) and how lines leave it.

    Subclasses call ``super().__init__()``, implement ``_step``, read lines
    with ``_next_line`` (or ``_take_line`` and ``_skip_line``), return
    ``_no_data()`` when the buffer cannot advance them, and extend ``_close``
    to enter their own closed state. ``_consume`` is the only place bytes
    leave the buffer.
    """

    def __init__(self) -> None:
        self._buf = bytearray()  # received, not yet consumed
        self._eof = False
        self._closed = False  # _close() was called: nothing more is read
        self._scan = 0  # how far _buf was searched for LF without finding one
        self._discarding = False  # _next_line: skipping the rest of a line that was too long
        self._last: _E | None = None  # the last event next_event returned, NEED_DATA aside

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

    def next_event(self) -> _E:
        """The next event; ``NEED_DATA`` when the buffered bytes are used up."""
        while (event := self._step()) is None:
            pass
        if event is not NEED_DATA:
            self._last = event
        return event

    @abstractmethod
    def _step(self) -> _E | None:
        """Advance by one state; None means "call again"."""

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

    def _next_line(self, limit: int) -> bytes | Literal["overflow"] | Sentinel:
        """The next line of at most ``limit`` octets, its line end (CRLF or LF) removed.

        "overflow" as soon as it cannot fit: the rest of it is then discarded
        unseen and the line after it is the next one. A sentinel from
        ``_no_data`` when no whole line is buffered.
        """
        while self._discarding:
            dropped = self._skip_line()
            if dropped is None:
                return self._no_data()
            self._discarding = not dropped.endswith(b"\n")
        line = self._take_line(limit)
        if line == "overflow":
            self._discarding = True
            return line
        if line is None:
            return self._no_data()
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

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
