"""The incremental IMAP command receiver (sans-I/O, h11-shaped): the framing.

Bytes go in with ``receive_data``; ``next_event`` returns one event at a time:
a typed command (``lightmail.imap.wire.commands``), a ``BadCommand`` value,
``ContinuationRequest``, APPEND's ``LiteralChunk``/``AppendMessage``/``AppendEnd``
and CATENATE's ``CatenateUrl``/``CatenateText``, ``IdleDone``, ``SaslResponse``,
or the ``NEED_DATA`` / ``CONNECTION_CLOSED`` sentinels.

The receiver finds where a command ends. A command is lines joined by
literals: a line that ends in ``{n}`` or ``{n+}`` before CRLF is followed by n
octets and then the rest of the command (RFC 3501 section 4.3, RFC 7888). It
enforces every limit and streams APPEND's message literal instead of
buffering it. After each APPEND message comes either the CRLF that ends the
command (``AppendEnd``) or, for MULTIAPPEND (RFC 3502), the head of one more
message (``AppendMessage``), which the session answers like the
``AppendCommand``. A message may instead be a CATENATE list (RFC 4469): its
head (``catenate`` set) is followed by its parts, ``CatenateUrl`` and
``CatenateText``, each TEXT literal streamed as a message literal is; APPEND is
parsed piece by piece, from one streamed literal to the next
(``grammar.parse_append``). Its input buffer is ``lightmail.sansio.LineBuffer``, shared with
LMTP and POP3. The complete raw bytes of each command go to
``lightmail.imap.wire.grammar`` (RFC 3501 section 9, strictly): a typed
command comes back, or a grammar error that becomes a ``BadCommand``.

Limits and the choices made where the RFCs leave room:

* ``max_line``: the octets outside literals in one command (all its lines);
  of an APPEND, in each line between two of its messages.
  Longer: ``BadCommand`` as soon as the line cannot fit (``max_line`` octets
  without their LF already cannot), then the rest of that line is discarded
  unread.
* ``max_literal``: the octets of all literals in one non-APPEND command.
  Larger: ``BadCommand``; a synchronizing literal is then not requested (the
  client will not send it, RFC 3501 section 7.5), a non-synchronizing one is
  read and discarded.
* ``max_append``: each APPEND message literal. A synchronizing APPEND is
  returned whatever its size: the session answers ``NO [TOOBIG]`` with
  ``reject_literal()`` (RFC 7889) and no octet is sent. A non-synchronizing
  one over the limit is a *fatal* ``BadCommand`` (code ``TOOBIG``): reading
  gigabytes only to discard them is worse than RFC 7888 section 4's option 2,
  answering ``* BYE`` and closing. Any non-synchronizing literal that must be
  discarded is discarded only up to ``max_append`` octets, beyond that it is
  fatal too.
* LITERAL+ (RFC 7888 section 3) semantics: non-synchronizing literals of any
  size up to the limits above are accepted in every command, so the server
  should advertise ``LITERAL+`` (never ``LITERAL-``) and ``APPENDLIMIT``.
* ``max_depth``: nesting of SEARCH keys (parentheses, NOT, OR).
* ``max_search_keys``: search keys in one SEARCH, each counted (a parenthesised
  list, NOT and OR count as one more each). More: ``BadCommand``, so that one
  command cannot ask for keys x messages evaluations without bound.
* Lines end in CRLF; a bare LF ends the line too but makes it a ``BadCommand``.
* NUL is refused everywhere (CHAR8, RFC 3501 section 9), APPEND's message
  included unless it came as a ``literal8`` (``~{n}``, RFC 3516 section 4.4),
  which is allowed there only: the session then gets ``BadCommand`` instead of
  ``AppendEnd``, and a ``~{n}`` anywhere else is a ``BadCommand`` before its
  octets are asked for.
  8-bit octets are refused outside literals, except in quoted strings of a
  SEARCH that names a CHARSET other than US-ASCII, and in quoted strings of
  valid UTF-8 once the session called ``accept_utf8`` (RFC 9755 section 3,
  RFC 9051 section 4.3.1).
* An empty line, or one without a readable tag, gives ``BadCommand(None, ...)``.
* ``receive_data`` buffers what it is given: call ``next_event`` until
  ``NEED_DATA`` before feeding more (memory is then bounded by the limits plus
  one read).

Modal states (the session calls these after sending its own reply):
``accept_literal``/``reject_literal`` after every ``AppendCommand``, ``AppendMessage``
and ``CatenateText`` that has a literal,
``accept_utf8`` after ``ENABLE UTF8=ACCEPT`` or ``IMAP4rev2`` (for the rest of the connection),
``start_idle`` after ``+ idling``, ``expect_sasl_response`` after each ``+``
of AUTHENTICATE, ``discard_pending`` after ``OK`` to STARTTLS. Using them out
of turn is a bug in the caller and raises ``LocalProtocolError``; nothing the
peer sends makes the receiver raise.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import TypeAlias

from lightmail.imap.wire.commands import (
    AppendCommand,
    AppendMessage,
    CatenateText,
    CatenateUrl,
    Command,
)
from lightmail.imap.wire.grammar import AppendEvent, Position, parse_append, parse_command
from lightmail.imap.wire.parser import Incomplete, ParseError, Utf8, extract_tag, literal_tail
from lightmail.sansio import CONNECTION_CLOSED, NEED_DATA, LineBuffer, LocalProtocolError, Sentinel

__all__ = [
    "CONNECTION_CLOSED",
    "NEED_DATA",
    "AppendEnd",
    "AppendMessage",
    "BadCommand",
    "CatenateText",
    "CatenateUrl",
    "ContinuationRequest",
    "Event",
    "IdleDone",
    "LiteralChunk",
    "LocalProtocolError",
    "Receiver",
    "SaslResponse",
    "Sentinel",
]

# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class BadCommand:
    """The peer broke the grammar or a limit: answer ``tag BAD`` (or ``* BAD`` if no tag).

    ``fatal``: the connection cannot continue; answer ``* BYE`` and close.
    ``code`` is a response code atom to include, such as ``TOOBIG``.
    ``text`` is ours, never contains client bytes, and is safe on the wire.
    """

    tag: bytes | None
    text: str
    fatal: bool = False
    code: str | None = None


@dataclass(frozen=True, slots=True)
class ContinuationRequest:
    """A synchronizing literal of ``size`` octets is due: send ``+ Ready for literal``."""

    size: int


@dataclass(frozen=True, slots=True)
class LiteralChunk:
    """A piece of the accepted APPEND message, in order; never the whole at once."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class AppendEnd:
    """The APPEND message and the CRLF ending the command arrived complete."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class IdleDone:
    """``DONE`` ended the IDLE with this tag (RFC 2177)."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class SaslResponse:
    """One line answering an AUTHENTICATE challenge, CRLF removed (base64, or ``*``)."""

    data: bytes = field(repr=False)

    @property
    def cancelled(self) -> bool:
        """``*`` cancels the exchange (RFC 3501 section 6.2.2): answer BAD."""
        return self.data == b"*"


Event: TypeAlias = (
    Command
    | BadCommand
    | ContinuationRequest
    | LiteralChunk
    | AppendMessage
    | CatenateUrl
    | CatenateText
    | AppendEnd
    | IdleDone
    | SaslResponse
    | Sentinel
)

# --------------------------------------------------------------------------- framer


class _State(enum.Enum):
    COMMAND = enum.auto()  # reading a line of a command (its first or a later one)
    LITERAL = enum.auto()  # reading a literal of a non-APPEND command into the buffer
    DISCARD_LINE = enum.auto()  # skipping to the end of a bad line
    DISCARD_LITERAL = enum.auto()  # skipping a non-synchronizing literal of a bad command
    APPEND_DECISION = enum.auto()  # waiting for accept_literal() / reject_literal()
    APPEND_DATA = enum.auto()  # streaming APPEND's message as LiteralChunk
    APPEND_END = enum.auto()  # expecting the CRLF after APPEND's message, or SP and another
    IDLE = enum.auto()  # expecting DONE
    SASL = enum.auto()  # expecting one AUTHENTICATE response line
    CLOSED = enum.auto()


_MAX_CHUNK = 64 * 1024
_TAIL = 32  # of a discarded line: enough to recognise "{4294967295+}\r\n" at its end


class Receiver(LineBuffer[Event]):
    """Bytes in, IMAP events out; see the module docstring for limits and modes."""

    def __init__(
        self,
        *,
        max_line: int = 64 * 1024,
        max_literal: int = 64 * 1024,
        max_append: int = 64 * 1024 * 1024,
        max_depth: int = 32,
        max_search_keys: int = 100,
    ) -> None:
        if min(max_line, max_literal, max_append) < 1024 or not 1 <= max_depth <= 100:
            raise ValueError("limits too small (or max_depth outside 1..100)")
        if max_search_keys < 1:
            raise ValueError("max_search_keys must be at least 1")
        self._max_line = max_line
        self._max_literal = max_literal
        self._max_append = max_append
        self._max_depth = max_depth
        self._max_search_keys = max_search_keys
        super().__init__()
        self._state = _State.COMMAND
        self._cmd = bytearray()  # the current command so far: lines and literal data
        self._line_total = 0  # octets outside literals in the current command
        self._literal_total = 0
        self._remaining = 0  # octets left in the current literal
        self._tail = b""  # the end of the line being discarded
        self._discarded = 0  # octets of that line discarded so far
        self._mode_tag = b""  # tag of the APPEND, IDLE or AUTHENTICATE in progress
        self._append: AppendCommand | AppendMessage | CatenateText | None = None
        self._resume: Position | None = None  # reading APPEND on from a streamed literal
        self._after_text = False  # the literal being streamed is a CATENATE TEXT
        self._pending: deque[Event] = deque()  # events parsed with the one returned
        self._last_tag = b""
        self._utf8 = Utf8.OFF
        self._binary = False  # the APPEND message being read is a literal8

    # -- session -> receiver

    def accept_literal(self) -> None:
        """The session takes APPEND's message: LiteralChunk events follow, then
        AppendEnd, or AppendMessage when a MULTIAPPEND sends one more."""
        append = self._expect_append_decision()
        if append.size > self._max_append:
            raise LocalProtocolError("APPEND literal over max_append: reject it (TOOBIG)")
        self._append = None
        self._remaining = append.size
        self._binary = append.binary
        self._after_text = isinstance(append, CatenateText)
        self._state = _State.APPEND_DATA

    def reject_literal(self) -> None:
        """The session answered NO: a synchronizing literal will not come, else it is
        discarded, and with it the rest of the command (further MULTIAPPEND messages
        in non-synchronizing literals included)."""
        append = self._expect_append_decision()
        self._append = None
        if append.synchronizing:
            self._state = _State.COMMAND
        else:
            self._remaining = append.size
            self._tail = b""
            self._discarded = 0
            self._state = _State.DISCARD_LITERAL

    def accept_utf8(self, mode: Utf8) -> None:
        """After ``ENABLE UTF8=ACCEPT`` or ``ENABLE IMAP4rev2``: quoted strings may hold
        UTF-8 (RFC 9755 section 3, RFC 9051 section 4.3.1). Once UTF8=ACCEPT is on,
        its rules on charset labels stay, whatever is enabled after it."""
        self._expect_between_commands("accept_utf8")
        if self._utf8 is not Utf8.ACCEPT:
            self._utf8 = mode

    def start_idle(self) -> None:
        """After ``+ idling``: the next line must be DONE (RFC 2177)."""
        self._expect_between_commands("start_idle")
        self._mode_tag = self._last_tag
        self._state = _State.IDLE

    def expect_sasl_response(self) -> None:
        """After a ``+`` challenge to AUTHENTICATE: the next line is a SaslResponse."""
        self._expect_between_commands("expect_sasl_response")
        self._mode_tag = self._last_tag
        self._state = _State.SASL

    def discard_pending(self) -> int:
        """:meth:`LineBuffer.discard_pending`, only between commands."""
        self._expect_between_commands("discard_pending")
        return super().discard_pending()

    def _expect_append_decision(self) -> AppendCommand | AppendMessage | CatenateText:
        if self._state is not _State.APPEND_DECISION or self._append is None or self._pending:
            raise LocalProtocolError("no APPEND literal is waiting for a decision")
        return self._append

    def _expect_between_commands(self, what: str) -> None:
        if self._state is not _State.COMMAND or self._cmd or self._resume or self._pending:
            raise LocalProtocolError(f"{what}() is only valid between commands")

    # -- output

    def _step(self) -> Event | None:
        """Advance by one state; None means "call again"."""
        if self._pending:
            return self._pending.popleft()
        match self._state:
            case _State.COMMAND:
                return self._read_command_line()
            case _State.LITERAL:
                return self._read_literal()
            case _State.DISCARD_LINE:
                return self._discard_line()
            case _State.DISCARD_LITERAL:
                return self._discard_literal()
            case _State.APPEND_DECISION:
                raise LocalProtocolError("call accept_literal() or reject_literal() first")
            case _State.APPEND_DATA:
                return self._read_append_data()
            case _State.APPEND_END:
                return self._read_append_end()
            case _State.IDLE:
                return self._read_idle_line()
            case _State.SASL:
                return self._read_sasl_line()
            case _State.CLOSED:
                return CONNECTION_CLOSED

    # -- helpers

    def _close(self) -> None:
        super()._close()
        self._state = _State.CLOSED

    def _reset_command(self) -> None:
        self._cmd.clear()
        self._line_total = 0
        self._literal_total = 0
        self._resume = None

    def _fatal(self, tag: bytes | None, text: str, code: str | None = None) -> BadCommand:
        self._reset_command()
        self._close()
        return BadCommand(tag, text, fatal=True, code=code)

    def _bad(self, tag: bytes | None, text: str, line: bytes) -> BadCommand:
        """A bad command whose last line was ``line``, consumed whole.

        If that line announced a non-synchronizing literal the client sends it
        regardless, so it is discarded (RFC 7888 section 4, option 1) before
        the next command is read; a synchronizing one is simply never asked for.
        """
        self._reset_command()
        self._state = _State.COMMAND
        literal = literal_tail(line)
        if literal is not None and not literal[1]:
            size = literal[0]
            if size is None or size > self._max_append:
                return self._fatal(tag, text + "; literal too large to discard", "TOOBIG")
            self._remaining = size
            self._tail = b""
            self._discarded = 0
            self._state = _State.DISCARD_LITERAL
        return BadCommand(tag, text)

    def _line_too_long(self, tag: bytes | None, text: str) -> BadCommand:
        self._reset_command()
        self._tail = b""
        self._discarded = 0
        self._state = _State.DISCARD_LINE
        return BadCommand(tag, text)

    # -- states

    def _tag(self, data: bytes | bytearray) -> bytes | None:
        """The tag of the command ``data`` starts, or of the APPEND it goes on."""
        return self._mode_tag if self._resume is not None else extract_tag(data)

    def _read_command_line(self) -> Event | None:
        limit = self._max_line - self._line_total
        line = self._take_line(limit)
        if line == "overflow":
            tag = self._tag(self._cmd or self._buf[:limit])
            return self._line_too_long(tag, "command line too long")
        if line is None:
            return self._no_data()
        self._cmd += line
        self._line_total += len(line)
        tag = self._tag(self._cmd)
        if not line.endswith(b"\r\n"):
            return self._bad(tag, "line not terminated by CRLF", line)
        if b"\x00" in line:
            return self._bad(tag, "NUL in command", line)
        literal = literal_tail(line)
        if literal is None:
            return self._complete_command(line)
        size, synchronizing = literal
        if size is None:
            return self._bad(tag, "literal size out of range", line)
        try:
            append = self._parse_append()
        except ParseError as e:
            return self._bad(tag, e.args[0], line)
        except Incomplete:  # the literal is an argument: the mailbox, or a URL
            append = None
        if append is not None:
            return self._append_piece(*append)
        if line[: line.rfind(b"{")].endswith(b"~"):
            return self._bad(tag, "literal8 is allowed only for an APPEND message", line)
        if self._literal_total + size > self._max_literal:
            return self._bad(tag, "literal too large", line)
        self._literal_total += size
        self._remaining = size
        self._state = _State.LITERAL
        return ContinuationRequest(size) if synchronizing else None

    def _parse_append(self) -> tuple[list[AppendEvent], Position | None] | None:
        """The next piece of an APPEND (`grammar.parse_append`), None if the
        command is not one."""
        resume = None if self._resume is None else (self._mode_tag, self._resume)
        return parse_append(bytes(self._cmd), self._max_depth, utf8=self._utf8, resume=resume)

    def _complete_command(self, line: bytes) -> Event:
        cmd = bytes(self._cmd)
        tag = self._tag(cmd)
        try:
            append = self._parse_append()
            if append is not None:
                return self._append_piece(*append)
            command = parse_command(cmd, self._max_depth, self._max_search_keys, utf8=self._utf8)
        except ParseError as e:
            return self._bad(tag, e.args[0], line)
        except Incomplete:  # cannot happen: every literal before the last line is complete
            return self._bad(tag, "incomplete literal", line)
        self._reset_command()
        self._last_tag = command.tag
        return command

    def _append_piece(self, events: list[AppendEvent], position: Position | None) -> Event:
        """A piece of APPEND parsed: its events, then either the end of the command
        or the head of a literal to stream (the session decides on it)."""
        tag = self._tag(self._cmd) or b""  # parsed: the command has a tag
        self._reset_command()
        self._mode_tag = self._last_tag = tag
        if position is None:
            self._pending.extend(events)
            self._pending.append(AppendEnd(tag))
            self._state = _State.COMMAND
            return self._pending.popleft()
        head = events[-1]
        if isinstance(head, CatenateUrl):  # cannot happen: a piece ends at a literal's head
            return self._fatal(tag, "APPEND piece without a literal")
        if not head.synchronizing and head.size > self._max_append:
            return self._fatal(tag, "APPEND message too large", "TOOBIG")
        self._append = head
        self._state = _State.APPEND_DECISION
        self._pending.extend(events)
        return self._pending.popleft()

    def _read_literal(self) -> Event | None:
        if not self._buf:
            return self._no_data()
        n = min(self._remaining, len(self._buf))
        self._cmd += self._consume(n)
        self._remaining -= n
        if self._remaining == 0:
            self._state = _State.COMMAND
        return None

    def _discard_line(self) -> Event | None:
        dropped = self._skip_line()
        if dropped is None:
            return self._no_data()
        self._discarded += len(dropped)
        self._tail = (self._tail + dropped[-_TAIL:])[-_TAIL:]
        if not dropped.endswith(b"\n"):
            return None
        literal = literal_tail(self._tail, truncated=self._discarded > len(self._tail))
        self._tail = b""
        self._discarded = 0
        self._state = _State.COMMAND
        if literal is not None and not literal[1]:
            size = literal[0]
            if size is None or size > self._max_append:
                return self._fatal(None, "literal too large to discard", "TOOBIG")
            self._remaining = size
            self._state = _State.DISCARD_LITERAL
        return None

    def _discard_literal(self) -> Event | None:
        if self._remaining == 0:
            self._state = _State.DISCARD_LINE
            return None
        if not self._buf:
            return self._no_data()
        self._remaining -= len(self._consume(self._remaining))
        return None

    def _read_append_data(self) -> Event | None:
        if self._remaining == 0:
            if self._after_text:  # the CATENATE list goes on (RFC 4469)
                self._resume = Position.PART_END
                self._state = _State.COMMAND
            else:
                self._state = _State.APPEND_END
            return None
        if not self._buf:
            return self._no_data()
        data = self._consume(min(self._remaining, _MAX_CHUNK))
        self._remaining -= len(data)
        if b"\x00" in data and not self._binary:
            self._tail = b""
            self._discarded = 0
            self._state = _State.DISCARD_LITERAL
            return BadCommand(self._mode_tag, "NUL in APPEND literal")
        return LiteralChunk(data)

    def _read_append_end(self) -> Event | None:
        if len(self._buf) < 2 and b"\r\n".startswith(self._buf):  # b"" or b"\r": wait
            return self._no_data()
        if self._buf.startswith(b"\r\n"):
            self._consume(2)
            self._state = _State.COMMAND
            return AppendEnd(self._mode_tag)
        if self._buf.startswith(b" "):  # MULTIAPPEND: one more message (RFC 3502)
            self._resume = Position.MESSAGE
            self._state = _State.COMMAND
            return None
        self._tail = b""
        self._discarded = 0
        self._state = _State.DISCARD_LINE
        return BadCommand(self._mode_tag, "expected CRLF after the APPEND literal")

    def _read_mode_line(self) -> bytes | BadCommand | Sentinel:
        """A line in IDLE or SASL mode, without CRLF; errors end the mode."""
        line = self._take_line(self._max_line)
        if line == "overflow":
            return self._line_too_long(self._mode_tag, "line too long")
        if line is None:
            return self._no_data()
        if not line.endswith(b"\r\n"):
            return self._bad(self._mode_tag, "line not terminated by CRLF", line)
        if b"\x00" in line:
            return self._bad(self._mode_tag, "NUL in line", line)
        self._state = _State.COMMAND
        return line[:-2]

    def _read_idle_line(self) -> Event:
        line = self._read_mode_line()
        if not isinstance(line, bytes):
            return line
        if line.upper() != b"DONE":
            return self._bad(self._mode_tag, "expected DONE", line + b"\r\n")
        return IdleDone(self._mode_tag)

    def _read_sasl_line(self) -> Event:
        line = self._read_mode_line()
        return SaslResponse(line) if isinstance(line, bytes) else line
