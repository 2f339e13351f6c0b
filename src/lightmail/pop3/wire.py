"""The POP3 wire layer (sans-I/O, h11-shaped): bytes in, events out; replies to bytes.

``Pop3Receiver.receive_data`` takes bytes (``b""`` is end of file) and
``next_event`` returns one event at a time: a typed command, a ``BadCommand``
value, after ``expect_sasl_response()`` one ``SaslResponse``, or the
``NEED_DATA`` / ``CONNECTION_CLOSED`` sentinels. ``Pop3Reply`` renders the
replies; the bodies of RETR and TOP are :mod:`lightmail.pop3.body`'s.

Grammar: RFC 1939 (POP3) with RFC 2449 (CAPA, RESP-CODES, 255-octet command
lines), RFC 5034 (SASL AUTH with an initial response) and RFC 2595 (STLS).

Choices made where the RFCs leave room:

* Command lines end in CRLF; a bare LF is accepted as a line end too. A CR
  anywhere else in a line is an invalid character.
* Keywords are case-insensitive (returned upper-cased where they are kept:
  the SASL mechanism). Extra spaces between arguments and trailing spaces and
  tabs are ignored; a line starting with a space is a syntax error.
* ``max_line`` (octets, line end included; at least RFC 2449's 255) bounds a
  command line. Longer: ``BadCommand`` at once, then the rest of that line is
  read and discarded unseen, and the next line is a new command.
* A command line may hold only printable ASCII and SP (RFC 1939 section 3);
  NUL, other controls and 8-bit octets give ``BadCommand``. Except PASS:
  everything after ``"PASS "`` (one space) up to the line end is the password,
  verbatim: leading, inner and trailing spaces included (RFC 1939 allows
  treating spaces as part of the password). It may hold 8-bit octets if they
  are valid UTF-8 (clients send UTF-8 passwords whatever the RFCs say); it may
  not hold NUL or any other control character (HTAB and DEL included), and it
  may not be empty.
* Message numbers are ``1*DIGIT`` (ASCII) with a value of at least 1, leading
  zeros allowed; no sign, no upper bound (the session looks them up). The TOP
  line count is ``1*DIGIT`` and may be 0.
* USER takes exactly one argument (no spaces in user names). APOP is
  recognised with any arguments, so the session can refuse it. Every other
  command that takes no argument gives ``BadCommand`` when it gets one.
* ``AUTH`` alone lists the mechanisms (``mechanism=None``). The mechanism is
  upper-cased and must be a SASL mechanism name (RFC 4422: 1 to 20 of A-Z,
  0-9, ``-``, ``_``). An initial response ``=`` becomes ``""`` (present but
  empty, RFC 5034); any other is returned as sent, undecoded: decode it
  with :mod:`lightmail.auth.sasl`.

SASL (RFC 5034 section 4): after answering an ``AuthCommand`` (or a
``SaslResponse``) with a ``+`` continuation, the session calls
``expect_sasl_response()``: the next line is then returned as a
``SaslResponse`` (``cancelled`` when it is ``*``), verbatim. Such a line may be
up to ``max_sasl_line`` octets (RFC 5034: responses may be of any length the
mechanism needs, beyond the command limit) and must be printable ASCII; a
longer line or one with another octet gives ``BadCommand`` (the session ends
the exchange with -ERR; a longer line is discarded to its end as above).

Pipelining (RFC 2449 PIPELINING): commands come out strictly in order, and a
line is only parsed when ``next_event`` reaches it, so a line sent right after
an AUTH is read as a SASL response if and only if the session called
``expect_sasl_response()`` first. After ``StlsCommand`` and its +OK,
``discard_pending()`` drops what the client sent after STLS in the clear
(the connection driver calls it before starting TLS): it must not be read
as if it came over TLS (RFC 2595 section 3.1; the CVE-2011-0411 class of
bug). ``receive_data`` keeps what it is given: call
``next_event`` until ``NEED_DATA`` before feeding more, and memory is bounded
by one read plus ``max_sasl_line``.

Nothing the peer sends makes the receiver raise. Using it out of turn
(``expect_sasl_response`` not right after an ``AuthCommand`` or
``SaslResponse``, ``receive_data`` after end of file) is a bug on our side and
raises ``LocalProtocolError``.

Replies: ``Pop3Reply.ok``/``err``/``continuation`` (also module functions
``ok``, ``err``, ``continuation``) make one line; each character of the text
other than printable ASCII (CR, LF, HTAB and 8-bit included) becomes ``?``,
and a ``[`` opening the text of a reply without a response code too (it would
read as one, RFC 2449 section 8). ``+OK``/``-ERR`` lines are cut to 512
octets, CRLF included (RFC 2449 section 4); a continuation is not cut (SASL
challenges may be longer, RFC 5034).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

from lightmail.sansio import (
    CONNECTION_CLOSED,
    NEED_DATA,
    LineBuffer,
    LocalProtocolError,
    Sentinel,
    no_args,
    printable,
    reply_line,
    safe_text,
    split_command,
)

__all__ = [
    "CONNECTION_CLOSED",
    "NEED_DATA",
    "ApopCommand",
    "AuthCommand",
    "BadCommand",
    "CapaCommand",
    "Command",
    "DeleCommand",
    "Event",
    "ListCommand",
    "LocalProtocolError",
    "NoopCommand",
    "PassCommand",
    "Pop3Receiver",
    "Pop3Reply",
    "QuitCommand",
    "RetrCommand",
    "RsetCommand",
    "SaslResponse",
    "Sentinel",
    "StatCommand",
    "StlsCommand",
    "TopCommand",
    "UidlCommand",
    "UserCommand",
    "continuation",
    "err",
    "ok",
]

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class UserCommand:
    """``USER name`` (RFC 1939 section 7)."""

    name: str


@dataclass(frozen=True, slots=True)
class PassCommand:
    """``PASS string`` (RFC 1939 section 7): the rest of the line after ``"PASS "``, verbatim."""

    password: str

    def __repr__(self) -> str:
        return "PassCommand(password=<hidden>)"


@dataclass(frozen=True, slots=True)
class AuthCommand:
    """``AUTH [mechanism [initial-response]]`` (RFC 5034 section 4).

    ``mechanism`` is upper-cased, None for a bare ``AUTH`` (list the
    mechanisms, RFC 1734 style). ``initial_response`` is None when absent,
    ``""`` for ``=`` (empty), else the base64 text as sent, undecoded.
    """

    mechanism: str | None
    initial_response: str | None

    def __repr__(self) -> str:
        shown = None if self.initial_response is None else "<hidden>"
        return f"AuthCommand(mechanism={self.mechanism!r}, initial_response={shown})"


@dataclass(frozen=True, slots=True)
class CapaCommand:
    """``CAPA`` (RFC 2449 section 5)."""


@dataclass(frozen=True, slots=True)
class StlsCommand:
    """``STLS`` (RFC 2595 section 4): what was pipelined after it is dropped before TLS
    (``Pop3Receiver.discard_pending``, from the connection driver)."""


@dataclass(frozen=True, slots=True)
class StatCommand:
    """``STAT`` (RFC 1939 section 5)."""


@dataclass(frozen=True, slots=True)
class ListCommand:
    """``LIST [msg]`` (RFC 1939 section 5); ``msg`` None lists every message."""

    msg: int | None


@dataclass(frozen=True, slots=True)
class RetrCommand:
    """``RETR msg`` (RFC 1939 section 5)."""

    msg: int


@dataclass(frozen=True, slots=True)
class TopCommand:
    """``TOP msg n`` (RFC 1939 section 7): header, blank line, at most ``lines`` body lines."""

    msg: int
    lines: int


@dataclass(frozen=True, slots=True)
class UidlCommand:
    """``UIDL [msg]`` (RFC 1939 section 7); ``msg`` None lists every message."""

    msg: int | None


@dataclass(frozen=True, slots=True)
class NoopCommand:
    """``NOOP`` (RFC 1939 section 5)."""


@dataclass(frozen=True, slots=True)
class RsetCommand:
    """``RSET`` (RFC 1939 section 5)."""


@dataclass(frozen=True, slots=True)
class DeleCommand:
    """``DELE msg`` (RFC 1939 section 5)."""

    msg: int


@dataclass(frozen=True, slots=True)
class QuitCommand:
    """``QUIT`` (RFC 1939 sections 4 and 6)."""


@dataclass(frozen=True, slots=True)
class ApopCommand:
    """``APOP ...`` (RFC 1939 section 7), arguments ignored: we do not offer it, refuse it."""


Command: TypeAlias = (
    UserCommand
    | PassCommand
    | AuthCommand
    | CapaCommand
    | StlsCommand
    | StatCommand
    | ListCommand
    | RetrCommand
    | TopCommand
    | UidlCommand
    | NoopCommand
    | RsetCommand
    | DeleCommand
    | QuitCommand
    | ApopCommand
)


@dataclass(frozen=True, slots=True)
class SaslResponse:
    """One client line of a SASL exchange (RFC 5034 section 4), verbatim.

    ``cancelled``: the line was ``*``; answer -ERR. Otherwise decode ``data``
    with :mod:`lightmail.auth.sasl` (invalid: answer -ERR).
    """

    data: str

    @property
    def cancelled(self) -> bool:
        return self.data == "*"

    def __repr__(self) -> str:
        return "SaslResponse(data=<hidden>)"


@dataclass(frozen=True, slots=True)
class BadCommand:
    """The peer broke the grammar or a limit: answer ``-ERR text`` and read on.

    ``text`` is ours, never contains client bytes, and is safe on the wire.
    """

    text: str

    def to_bytes(self) -> bytes:
        return err(self.text)


Event: TypeAlias = Command | SaslResponse | BadCommand | Sentinel


# --------------------------------------------------------------------------- replies

# RFC 2449 section 3: resp-code = "[" resp-level *("/" resp-level) "]", rchar (no DEL here).
_RESP_CODE = re.compile(r"[\x21-\x2e\x30-\x5c\x5e-\x7e]+(?:/[\x21-\x2e\x30-\x5c\x5e-\x7e]+)*")


def _status_line(status: str, text: str, code: str | None) -> bytes:
    text = safe_text(text)
    if code is not None:
        if _RESP_CODE.fullmatch(code) is None:
            raise LocalProtocolError(f"bad response code {code!r}")
        text = f"[{code}] {text}" if text else f"[{code}]"
    elif text.startswith("["):
        text = "?" + text[1:]
    line = f"{status} {text}" if text else status
    return reply_line(line)


class Pop3Reply:
    """Single-line replies (RFC 1939 section 3, RFC 2449 section 8, RFC 5034 section 4)."""

    @staticmethod
    def ok(text: str = "") -> bytes:
        """``+OK text`` CRLF (``+OK`` alone for no text)."""
        return _status_line("+OK", text, None)

    @staticmethod
    def err(text: str = "", code: str | None = None) -> bytes:
        """``-ERR [CODE] text`` CRLF; ``code`` like ``AUTH``, ``SYS/TEMP``, ``IN-USE``.

        A code that is not resp-level *("/" resp-level) is our bug: ``LocalProtocolError``.
        """
        return _status_line("-ERR", text, code)

    @staticmethod
    def continuation(text: str = "") -> bytes:
        """``+ text`` CRLF: a SASL challenge (base64) or ``+ `` CRLF, the empty one."""
        return b"+ " + safe_text(text).encode("ascii") + b"\r\n"

    @staticmethod
    def multiline(text: str, lines: Iterable[str]) -> bytes:
        """``+OK text``, the lines (made safe, dot-stuffed), then ``.``: CAPA, LIST, UIDL."""
        out = [Pop3Reply.ok(text)]
        for line in lines:
            safe = safe_text(line)
            out.append((("." + safe) if safe.startswith(".") else safe).encode("ascii") + b"\r\n")
        out.append(b".\r\n")
        return b"".join(out)


ok = Pop3Reply.ok
err = Pop3Reply.err
continuation = Pop3Reply.continuation

# --------------------------------------------------------------------------- command grammar

_KEYWORD = re.compile(r"[A-Za-z]{3,4}")
_NUMBER = re.compile(r"[0-9]+")
_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}")
_CONTROLS = frozenset([*range(0x20), 0x7F])

_Parse = Callable[[list[str]], Command | BadCommand]


def _number(text: str, *, zero: bool = False) -> int | None:
    if _NUMBER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value >= 1 or zero else None


def _no_args(make: Callable[[], Command], keyword: str) -> _Parse:
    return no_args(make, BadCommand(f"Syntax: {keyword} takes no argument"))


def _one_msg(make: Callable[[int], Command], keyword: str) -> _Parse:
    def parse(args: list[str]) -> Command | BadCommand:
        msg = _number(args[0]) if len(args) == 1 else None
        return BadCommand(f"Syntax: {keyword} msg") if msg is None else make(msg)

    return parse


def _optional_msg(make: Callable[[int | None], Command], keyword: str) -> _Parse:
    def parse(args: list[str]) -> Command | BadCommand:
        if not args:
            return make(None)
        msg = _number(args[0]) if len(args) == 1 else None
        return BadCommand(f"Syntax: {keyword} [msg]") if msg is None else make(msg)

    return parse


def _parse_user(args: list[str]) -> Command | BadCommand:
    return UserCommand(args[0]) if len(args) == 1 else BadCommand("Syntax: USER name")


def _parse_top(args: list[str]) -> Command | BadCommand:
    if len(args) == 2:
        msg, lines = _number(args[0]), _number(args[1], zero=True)
        if msg is not None and lines is not None:
            return TopCommand(msg, lines)
    return BadCommand("Syntax: TOP msg lines")


def _parse_auth(args: list[str]) -> Command | BadCommand:
    if not args:
        return AuthCommand(None, None)
    if len(args) > 2:
        return BadCommand("Syntax: AUTH mechanism [initial-response]")
    mechanism = args[0].upper()
    if _MECHANISM.fullmatch(mechanism) is None:
        return BadCommand("Invalid SASL mechanism name")
    if len(args) == 1:
        return AuthCommand(mechanism, None)
    return AuthCommand(mechanism, "" if args[1] == "=" else args[1])


_COMMANDS: dict[str, _Parse] = {
    "USER": _parse_user,
    "AUTH": _parse_auth,
    "CAPA": _no_args(CapaCommand, "CAPA"),
    "STLS": _no_args(StlsCommand, "STLS"),
    "STAT": _no_args(StatCommand, "STAT"),
    "LIST": _optional_msg(ListCommand, "LIST"),
    "RETR": _one_msg(RetrCommand, "RETR"),
    "TOP": _parse_top,
    "UIDL": _optional_msg(UidlCommand, "UIDL"),
    "NOOP": _no_args(NoopCommand, "NOOP"),
    "RSET": _no_args(RsetCommand, "RSET"),
    "DELE": _one_msg(DeleCommand, "DELE"),
    "QUIT": _no_args(QuitCommand, "QUIT"),
    "APOP": lambda _: ApopCommand(),
    "PASS": lambda _: BadCommand("Syntax: PASS password"),  # "PASS " is read before the table
}


def _parse_pass(password: bytes) -> Command | BadCommand:
    if not password:
        return BadCommand("Syntax: PASS password")
    if any(c in _CONTROLS for c in password):
        return BadCommand("Invalid character in password")
    try:
        return PassCommand(password.decode("utf-8"))
    except UnicodeDecodeError:
        return BadCommand("Invalid character in password")


def _parse_command(line: bytes) -> Command | BadCommand:
    """One command line, its line end removed."""
    if line[:5].upper() == b"PASS ":
        return _parse_pass(line[5:])
    split = split_command(line, _KEYWORD)
    if split == "invalid":
        return BadCommand("Invalid character in command")
    if split == "syntax":
        return BadCommand("Syntax error")
    keyword, rest = split
    parse = _COMMANDS.get(keyword)
    if parse is None:
        return BadCommand("Unknown command")
    return parse(rest.split())


def _parse_sasl(line: bytes) -> SaslResponse | BadCommand:
    if not printable(line):
        return BadCommand("Invalid character in SASL response")
    return SaslResponse(line.decode("ascii"))


# --------------------------------------------------------------------------- receiver


class Pop3Receiver(LineBuffer[Event]):
    """Bytes in, POP3 events out; see the module docstring for limits and choices."""

    def __init__(self, *, max_line: int = 255, max_sasl_line: int = 16384) -> None:
        if max_line < 255 or max_sasl_line < max_line:
            raise ValueError("max_line must be >= 255 and max_sasl_line >= max_line")
        self._max_line = max_line
        self._max_sasl_line = max_sasl_line
        super().__init__()
        self._sasl = False  # the next line is a SASL response

    @property
    def buffered(self) -> int:
        """Octets received but not yet consumed."""
        return len(self._buf)

    def expect_sasl_response(self) -> None:
        """After a ``+`` continuation to AUTH (or a SASL response): the next line is a response."""
        if not isinstance(self._last, AuthCommand | SaslResponse):
            raise LocalProtocolError(
                "expect_sasl_response() is only valid right after an AuthCommand or SaslResponse"
            )
        self._sasl = True

    def _step(self) -> Event:
        if self._closed:
            return CONNECTION_CLOSED
        sasl = self._sasl
        line = self._next_line(self._max_sasl_line if sasl else self._max_line)
        if isinstance(line, Sentinel):
            return line
        self._sasl = False
        if line == "overflow":
            return BadCommand("SASL response too long" if sasl else "Command line too long")
        return _parse_sasl(line) if sasl else _parse_command(line)
