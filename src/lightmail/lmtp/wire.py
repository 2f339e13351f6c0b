"""The LMTP wire layer (sans-I/O, h11-shaped): bytes in, events out; replies to bytes.

``LmtpReceiver.receive_data`` takes bytes (``b""`` is end of file) and
``next_event`` returns one event at a time: a typed command, a ``BadCommand``
value, after ``start_data()`` the message as ``DataChunk`` events and one
``DataEnd``, or the ``NEED_DATA`` / ``CONNECTION_CLOSED`` sentinels.
``Reply.to_bytes`` renders what the session answers.

Grammar: RFC 2033 (LMTP) over RFC 5321 sections 4.1.1 and 4.1.2, with the
extensions SIZE (RFC 1870), 8BITMIME (RFC 6152), PIPELINING (RFC 2920) and
ENHANCEDSTATUSCODES (RFC 2034, codes from RFC 3463).

Choices made where the RFCs leave room (or where we deliberately differ):

* Command lines are read as :mod:`lightmail.sansio` says (a bare LF ends one
  too: outside DATA nothing can be smuggled with it). Verbs and the
  ``FROM:``/``TO:`` keywords are case-insensitive; trailing spaces and tabs
  (RFC 5321 section 4.1.1) and extra spaces between the verb, ``FROM:``/``TO:``,
  the path and parameters are ignored.
* NUL, other controls (a CR inside the line included) and 8-bit octets give
  ``501 5.5.2`` (RFC 5321 section 4.1.2; SMTPUTF8 is not offered). A line
  over ``max_line`` (at least RFC 5321's 512) gives ``500 5.5.2``.
* Unknown verb: ``500 5.5.1``; a line that does not start with a verb (empty,
  digits, leading space): ``500 5.5.2``. SMTP verbs we know but do not offer
  (EXPN, HELP, TURN, ETRN, ATRN, BDAT, STARTTLS, AUTH, SEND, SOML, SAML):
  ``502 5.5.1``. HELO and EHLO come out as ``HeloCommand``: the session must
  refuse them (RFC 2033 section 4.1).
* Bad arguments: ``501 5.5.4``, except a malformed path: ``501 5.1.7`` for
  MAIL and ``501 5.1.3`` for RCPT (RFC 3463). A well-formed parameter we do
  not implement, or a BODY value other than 7BIT/8BITMIME: ``555 5.5.4``
  (RFC 5321 section 4.1.1.11). Every RCPT parameter is one of those (we offer
  no RCPT extension).
* Paths need their angle brackets; a source route is accepted and dropped
  (RFC 5321 section 4.1.1.3); a quoted local-part is kept as sent, quotes and
  backslashes included (comparing local-parts is the session's business).
  Domain labels may hold ``_`` (real hostnames do; RFC 5321 forbids it) and an
  address literal is any ``[dcontent]`` (its IP form is not checked).
  ``RCPT TO:<Postmaster>`` (no domain) is accepted as RFC 5321 requires, and
  returned as ``"Postmaster"`` with the case as sent. The RFC 5321 section
  4.5.3.1 length minimums are not enforced as maximums: SRS and VERP senders
  exceed 64 octets of local-part; ``max_line`` is the bound.
* LHLO takes one Domain or address-literal (same tolerance as above).
  NOOP ignores any argument; VRFY takes any non-empty argument, unparsed.

DATA (after the session sent 354 and called ``start_data()``):

* Only ``<CRLF>.<CRLF>`` ends the message: the line ``.`` must be ended by
  CRLF and the line before it too (or be the first line of the message). With
  ``\\n.\\n``, ``\\r\\n.\\n`` or ``\\n.\\r\\n`` the message goes on, so a front MTA
  that passes such a sequence through cannot make us see two messages where
  it saw one ("SMTP smuggling", CVE-2023-51764/51765/51766). Such a ``.`` line
  is kept as one ``.`` line in the message.
* Transparency (RFC 5321 section 4.5.2): a line starting with ``.`` and longer
  than that loses the dot. A bare LF counts as a line end here too (so
  ``\\n..x`` gives ``.x``), and it is normalised to CRLF. A bare CR is neither
  a line end nor changed: it is passed through as is.
* NUL and 8-bit octets are passed through; line length is not limited.
* ``max_message_size`` bounds the message as delivered (unstuffed, CRLF
  line ends, terminator excluded). Once it would be exceeded no more
  ``DataChunk`` is returned (at most ``max_message_size`` octets were), the
  rest is read and dropped up to the terminator, and ``DataEnd(too_large=True)``
  follows: the session answers ``552 5.3.4`` for each recipient and stays in
  step with the client.
* ``DataChunk.data`` is never empty nor longer than ``chunk_size``; chunk
  boundaries follow the reads, only their concatenation is meaningful.
* End of file before the terminator: ``CONNECTION_CLOSED``; the message is
  abandoned (some ``DataChunk`` events may already have been returned).

Pipelining (RFC 2920): commands come out strictly in order. After a
``DataCommand`` the receiver reads nothing more until the session decides:
it either sends 354 and calls ``start_data()``, or refuses DATA (503, 554) and
just calls ``next_event()`` again, and the bytes that follow are read as
commands. Memory is bounded by one read plus ``max_line`` (commands) or
twice ``chunk_size`` (DATA: decoded output not yet returned; bare LFs double
in size), whatever the peer sends. ``start_data`` not right after a
``DataCommand`` raises ``LocalProtocolError`` (see :mod:`lightmail.sansio`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from lightmail.sansio import (
    CONNECTION_CLOSED,
    CR,
    LF,
    NEED_DATA,
    LineBuffer,
    LocalProtocolError,
    Sentinel,
    crlf,
    no_args,
    reply_line,
    safe_text,
    split_command,
)

__all__ = [
    "CONNECTION_CLOSED",
    "NEED_DATA",
    "BadCommand",
    "Command",
    "DataChunk",
    "DataCommand",
    "DataEnd",
    "Event",
    "HeloCommand",
    "LhloCommand",
    "LmtpReceiver",
    "LocalProtocolError",
    "MailCommand",
    "NoopCommand",
    "QuitCommand",
    "RcptCommand",
    "Reply",
    "RsetCommand",
    "Sentinel",
    "VrfyCommand",
]

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class LhloCommand:
    """``LHLO domain`` (RFC 2033 section 4.1): answer like EHLO, listing the extensions."""

    domain: str


@dataclass(frozen=True, slots=True)
class HeloCommand:
    """``HELO`` or ``EHLO`` (``verb`` upper-cased): LMTP refuses both with 500 5.5.1."""

    verb: str


@dataclass(frozen=True, slots=True)
class MailCommand:
    """``MAIL FROM:<reverse-path>`` (RFC 5321 section 4.1.1.2).

    ``reverse_path`` is without angle brackets, ``""`` for the null path ``<>``.
    ``size`` is the SIZE= declaration (RFC 1870), ``body`` ``"7BIT"`` or
    ``"8BITMIME"`` (RFC 6152), each None when absent.
    """

    reverse_path: str
    size: int | None = None
    body: str | None = None


@dataclass(frozen=True, slots=True)
class RcptCommand:
    """``RCPT TO:<forward-path>`` (RFC 5321 section 4.1.1.3), source route removed."""

    forward_path: str


@dataclass(frozen=True, slots=True)
class DataCommand:
    """``DATA``: answer 354 and call ``start_data()``, or refuse (503/554) and do not."""


@dataclass(frozen=True, slots=True)
class RsetCommand:
    """``RSET`` (RFC 5321 section 4.1.1.5)."""


@dataclass(frozen=True, slots=True)
class NoopCommand:
    """``NOOP`` (RFC 5321 section 4.1.1.9); an argument is ignored."""


@dataclass(frozen=True, slots=True)
class QuitCommand:
    """``QUIT`` (RFC 5321 section 4.1.1.10)."""


@dataclass(frozen=True, slots=True)
class VrfyCommand:
    """``VRFY argument`` (RFC 5321 section 4.1.1.6), the argument unparsed."""

    argument: str


Command: TypeAlias = (
    LhloCommand
    | HeloCommand
    | MailCommand
    | RcptCommand
    | DataCommand
    | RsetCommand
    | NoopCommand
    | QuitCommand
    | VrfyCommand
)


@dataclass(frozen=True, slots=True)
class BadCommand:
    """The peer broke the grammar or a limit: answer this and read on.

    ``text`` is ours, never contains client bytes, and is safe on the wire.
    """

    code: int
    enhanced: str
    text: str

    def to_reply(self) -> Reply:
        return Reply(self.code, self.enhanced, (self.text,))


# --------------------------------------------------------------------------- DATA events


@dataclass(frozen=True, slots=True)
class DataChunk:
    """A piece of the message, unstuffed and with CRLF line ends; never the whole at once."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DataEnd:
    """``<CRLF>.<CRLF>`` arrived: reply once per accepted recipient (RFC 2033 section 4.2).

    ``too_large``: the message exceeded ``max_message_size`` and was dropped
    (answer ``552 5.3.4`` for each recipient).
    """

    too_large: bool = False


Event: TypeAlias = Command | BadCommand | DataChunk | DataEnd | Sentinel

# --------------------------------------------------------------------------- replies

_ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP/LMTP reply (RFC 5321 section 4.2, RFC 2034).

    Rendered one line per entry of ``lines`` (none: one line with the code
    alone), ``250-`` on all but the last, the enhanced code after the basic
    code on every line. Text is made safe: each character other than HTAB and
    printable ASCII (CR and LF included) becomes ``?`` (RFC 5321 textstring),
    and a line is cut to 512 octets.
    A code outside 200..599, or an enhanced code of another class (or on a
    3xx reply) is our bug: ``LocalProtocolError``.
    """

    code: int
    enhanced: str | None
    lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise LocalProtocolError(f"reply code {self.code} out of range")
        if self.enhanced is not None and (
            _ENHANCED.fullmatch(self.enhanced) is None or self.enhanced[0] != str(self.code)[0]
        ):
            raise LocalProtocolError(f"enhanced code {self.enhanced!r} for {self.code}")

    def to_bytes(self) -> bytes:
        lines = self.lines or ("",)
        out: list[bytes] = []
        last = len(lines) - 1
        for i, text in enumerate(lines):
            body = " ".join(x for x in (self.enhanced, safe_text(text, tab=True)) if x)
            sep = " " if i == last else "-"
            line = f"{self.code}{sep}{body}" if body else f"{self.code}{sep}".rstrip(" ")
            out.append(reply_line(line))
        return b"".join(out)


# --------------------------------------------------------------------------- command grammar

# RFC 5321 section 4.1.2 (labels also allow "_", see the module docstring).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_LABEL = r"[A-Za-z0-9_]+(?:-+[A-Za-z0-9_]+)*"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_ADDRESS_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_MAILBOX = rf"(?:{_DOT_STRING}|{_QUOTED_STRING})@(?:{_DOMAIN}|{_ADDRESS_LITERAL})"
_ADL = rf"@{_DOMAIN}(?:,@{_DOMAIN})*"

_PATH = re.compile(rf"<(?:{_ADL}:)?({_MAILBOX})>")
_REVERSE_PATH = re.compile(rf"<(?:(?:{_ADL}:)?({_MAILBOX}))?>")  # or the null path "<>"
_POSTMASTER = re.compile(r"<(postmaster)>", re.IGNORECASE)
_HELO_ARG = re.compile(rf"{_DOMAIN}|{_ADDRESS_LITERAL}")
_PARAM = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e]+))?")
_SIZE_VALUE = re.compile(r"[0-9]{1,20}")  # RFC 1870 size-value
_BODY_VALUES = frozenset({"7BIT", "8BITMIME"})  # RFC 6152 body-value
_VERB = re.compile(r"[A-Za-z]+")
_FROM = re.compile(r"FROM:[ ]*", re.IGNORECASE)
_TO = re.compile(r"TO:[ ]*", re.IGNORECASE)
_NOT_IMPLEMENTED = frozenset(
    {"EXPN", "HELP", "TURN", "ETRN", "ATRN", "BDAT", "STARTTLS", "AUTH", "SEND", "SOML", "SAML"}
)


def _bad_args(text: str) -> BadCommand:
    return BadCommand(501, "5.5.4", text)


_Params: TypeAlias = list[tuple[str, str | None]]


def _parse_params(text: str) -> _Params | BadCommand:
    """``esmtp-param *(SP esmtp-param)``; keywords upper-cased."""
    params: _Params = []
    for token in text.split(" "):
        if not token:
            continue
        m = _PARAM.fullmatch(token)
        if m is None:
            return _bad_args("Syntax error in parameters")
        params.append((m.group(1).upper(), m.group(2)))
    return params


def _parse_path(args: str, *, sender: bool) -> tuple[str, _Params] | BadCommand:
    """The arguments of MAIL or RCPT up to the parameters, parsed (RFC 5321 section 4.1.2).

    ``sender``: ``FROM:Reverse-path [SP Mail-parameters]``, where ``<>`` is the
    null path (mailbox ``""``); else ``TO:Forward-path [SP Rcpt-parameters]``,
    where ``<Postmaster>`` is one too (section 4.1.1.3). Returns the mailbox and
    the parameters.
    """
    keyword = (_FROM if sender else _TO).match(args)
    if keyword is None:
        return _bad_args(
            "Syntax: MAIL FROM:<address> [parameters]" if sender else "Syntax: RCPT TO:<address>"
        )
    text = args[keyword.end() :]
    m = _REVERSE_PATH.match(text) if sender else _PATH.match(text) or _POSTMASTER.match(text)
    if m is None or text[m.end() : m.end() + 1] not in ("", " "):
        if sender:
            return BadCommand(501, "5.1.7", "Bad sender address syntax")
        return BadCommand(501, "5.1.3", "Bad recipient address syntax")
    params = _parse_params(text[m.end() :])
    return params if isinstance(params, BadCommand) else (m.group(1) or "", params)


def _parse_lhlo(args: str) -> Command | BadCommand:
    if _HELO_ARG.fullmatch(args) is None:
        return _bad_args("Syntax: LHLO domain")
    return LhloCommand(args)


def _parse_mail(args: str) -> Command | BadCommand:
    """``MAIL FROM:<reverse-path> [SP Mail-parameters]``, SIZE and BODY understood."""
    path = _parse_path(args, sender=True)
    if isinstance(path, BadCommand):
        return path
    reverse_path, params = path
    size: int | None = None
    body: str | None = None
    for keyword, value in params:
        if keyword == "SIZE":
            if size is not None or value is None or _SIZE_VALUE.fullmatch(value) is None:
                return _bad_args("Syntax: SIZE=octets, once")
            size = int(value)
        elif keyword == "BODY":
            if body is not None or value is None:
                return _bad_args("Syntax: BODY=7BIT or BODY=8BITMIME, once")
            if value.upper() not in _BODY_VALUES:
                return BadCommand(555, "5.5.4", "BODY type not supported")
            body = value.upper()
        else:
            return BadCommand(555, "5.5.4", "MAIL parameter not supported")
    return MailCommand(reverse_path, size, body)


def _parse_rcpt(args: str) -> Command | BadCommand:
    """``RCPT TO:<forward-path> [SP Rcpt-parameters]``; no parameter is supported."""
    path = _parse_path(args, sender=False)
    if isinstance(path, BadCommand):
        return path
    forward_path, params = path
    if params:
        return BadCommand(555, "5.5.4", "RCPT parameters not supported")
    return RcptCommand(forward_path)


def _parse_vrfy(args: str) -> Command | BadCommand:
    if not args:
        return _bad_args("Syntax: VRFY address")
    return VrfyCommand(args)


def _no_args(make: Callable[[], Command], verb: str) -> Callable[[str], Command | BadCommand]:
    return no_args(make, _bad_args(f"Syntax: {verb} takes no argument"))


_VERBS: dict[str, Callable[[str], Command | BadCommand]] = {
    "LHLO": _parse_lhlo,
    "HELO": lambda _: HeloCommand("HELO"),
    "EHLO": lambda _: HeloCommand("EHLO"),
    "MAIL": _parse_mail,
    "RCPT": _parse_rcpt,
    "DATA": _no_args(DataCommand, "DATA"),
    "RSET": _no_args(RsetCommand, "RSET"),
    "NOOP": lambda _: NoopCommand(),
    "QUIT": _no_args(QuitCommand, "QUIT"),
    "VRFY": _parse_vrfy,
}


def _parse_command(line: bytes) -> Command | BadCommand:
    """One command line, its line end removed."""
    split = split_command(line, _VERB)
    if split == "invalid":
        return BadCommand(501, "5.5.2", "Invalid character in command")
    if split == "syntax":
        return BadCommand(500, "5.5.2", "Syntax error")
    verb, args = split
    parse = _VERBS.get(verb)
    if parse is not None:
        return parse(args.lstrip(" "))
    if verb in _NOT_IMPLEMENTED:
        return BadCommand(502, "5.5.1", "Command not implemented")
    return BadCommand(500, "5.5.1", "Command unrecognized")


# --------------------------------------------------------------------------- receiver


class _State(enum.Enum):
    COMMAND = enum.auto()  # reading command lines
    DATA_LINE_START = enum.auto()  # in the message, at the start of a line
    DATA_TEXT = enum.auto()  # in the message, inside a line
    DATA_END = enum.auto()  # terminator seen: flush the output, then DataEnd
    CLOSED = enum.auto()


_DOT = 0x2E


class LmtpReceiver(LineBuffer[Event]):
    """Bytes in, LMTP events out; see the module docstring for limits and choices."""

    def __init__(
        self,
        *,
        max_line: int = 4096,
        max_message_size: int = 64 << 20,
        chunk_size: int = 64 << 10,
    ) -> None:
        if max_line < 512 or max_message_size < 0 or chunk_size < 1:
            raise ValueError("max_line must be >= 512, chunk_size >= 1, max_message_size >= 0")
        self._max_line = max_line
        self._max_message_size = max_message_size
        self._chunk_size = chunk_size
        super().__init__()
        self._state = _State.COMMAND
        # DATA
        self._out = bytearray()  # decoded message not yet returned
        self._size = 0  # octets of decoded message so far
        self._too_large = False
        self._crlf_before = True  # at a line start: the previous line ended in CRLF
        self._last_cr = False  # inside a line: the last octet consumed was CR

    @property
    def buffered(self) -> int:
        """Octets held: received but not yet consumed, plus decoded but not yet returned."""
        return len(self._buf) + len(self._out)

    # -- input

    def start_data(self) -> None:
        """After sending 354 to a ``DataCommand``: the bytes that follow are the message."""
        if not isinstance(self._last, DataCommand) or self._state is not _State.COMMAND:
            raise LocalProtocolError("start_data() is only valid right after a DataCommand")
        self._out.clear()
        self._size = 0
        self._too_large = False
        self._crlf_before = True
        self._last_cr = False
        self._state = _State.DATA_LINE_START

    # -- output

    def _step(self) -> Event | None:
        """Advance by one state; None means "call again"."""
        match self._state:
            case _State.COMMAND:
                return self._read_command()
            case _State.DATA_LINE_START | _State.DATA_TEXT:
                if len(self._out) >= self._chunk_size:
                    return self._emit()
                if not self._buf:
                    return self._starved()
                if self._state is _State.DATA_TEXT:
                    return self._read_text()
                return self._read_line_start()
            case _State.DATA_END:
                return self._end_data()
            case _State.CLOSED:
                return CONNECTION_CLOSED

    def _close(self) -> None:
        super()._close()
        self._out.clear()
        self._state = _State.CLOSED

    def _read_command(self) -> Event:
        line = self._next_line(self._max_line)
        if isinstance(line, Sentinel):
            return line
        if line == "overflow":
            return BadCommand(500, "5.5.2", "Line too long")
        return _parse_command(line)

    # -- DATA

    def _emit(self) -> DataChunk:
        data = bytes(self._out[: self._chunk_size])
        del self._out[: self._chunk_size]
        return DataChunk(data)

    def _starved(self) -> Event:
        """The buffer cannot advance the message: return what is decoded, then wait."""
        return self._emit() if self._out else self._no_data()

    def _deliver(self, data: bytes) -> None:
        """Append decoded octets to the message, unless it is or becomes too large."""
        if self._too_large:
            return
        if self._size + len(data) > self._max_message_size:
            self._too_large = True
            self._out.clear()
            return
        self._size += len(data)
        self._out += data

    def _read_line_start(self) -> Event | None:
        """RFC 5321 section 4.5.2 at the first octet of a line (one is buffered)."""
        buf = self._buf
        if buf[0] != _DOT:
            self._last_cr = False
            self._state = _State.DATA_TEXT
            return None
        if len(buf) < 2 or (buf[1] == CR and len(buf) < 3):
            return self._starved()  # ".", ".\r": the next octet decides
        if buf[1] == LF:  # ".\n": not the end (bare LF), a line holding "."
            self._consume(2)
            self._deliver(b".\r\n")
            self._crlf_before = False
            return None
        if buf[1] == CR and buf[2] == LF:  # ".\r\n"
            self._consume(3)
            if self._crlf_before:
                self._state = _State.DATA_END
                return None
            self._deliver(b".\r\n")  # "\n.\r\n": not the end (bare LF before it)
            self._crlf_before = True
            return None
        self._consume(1)  # a longer line: its leading dot goes
        self._last_cr = False
        self._state = _State.DATA_TEXT
        return None

    def _read_text(self) -> Event | None:
        """Inside a line: take everything up to the next line starting with a dot."""
        buf = self._buf
        # at most chunk_size - len(out) raw octets, which decode to at most twice that
        limit = min(len(buf), self._chunk_size - len(self._out))
        dot = buf.find(b"\n.", 0, limit)
        raw = self._consume(dot + 1 if dot >= 0 else limit)
        if raw[-1] == LF:
            self._crlf_before = raw[-2] == CR if len(raw) > 1 else self._last_cr
            self._state = _State.DATA_LINE_START
        if not self._too_large:
            self._deliver(crlf(raw, self._last_cr))
        self._last_cr = raw[-1] == CR
        return None

    def _end_data(self) -> Event:
        if self._out:
            return self._emit()
        self._state = _State.COMMAND
        return DataEnd(too_large=self._too_large)
