"""APPEND (RFC 3501 section 6.3.11) as the receiver frames it: one or more
messages (MULTIAPPEND, RFC 3502), each a literal, a ``literal8`` (RFC 3516
section 4.4) or a CATENATE list of ``TEXT`` literals and ``URL``\\s (RFC 4469
section 5), in RFC 4466's ``append-message`` syntax.

The receiver streams every message and TEXT literal instead of buffering the
command, so it parses APPEND piece by piece: from the start of the command, or
from where the last streamed literal left it (a `Position`), up to the end of
the command or to the head of the next streamed literal. A literal anywhere
else (the mailbox name, a URL) is an argument the receiver buffers: the parse
then stops with ``Incomplete`` until its octets are there.
"""

from __future__ import annotations

import datetime
import enum
from typing import TypeAlias

from lightmail.imap.wire.commands import AppendCommand, AppendMessage, CatenateText, CatenateUrl
from lightmail.imap.wire.parser import ParseError, Parser

__all__ = ["AppendEvent", "Position", "append_events"]

AppendEvent: TypeAlias = AppendCommand | AppendMessage | CatenateUrl | CatenateText


class Position(enum.Enum):
    """Where in APPEND's grammar a piece starts."""

    MESSAGE = enum.auto()  # SP append-message: after the mailbox, or SP after a message
    MESSAGE_END = enum.auto()  # after a message: CRLF ends the command, SP starts another
    PART_END = enum.auto()  # after a cat-part: SP and one more, or ")" ending the list


def append_events(
    p: Parser, tag: bytes, position: Position, mailbox: bytes | None = None
) -> tuple[list[AppendEvent], Position | None]:
    """The events in ``p`` from ``position`` on, and where the next piece starts
    (None: the command ended with this CRLF).

    ``mailbox`` is given when the piece follows the mailbox name: its first
    message's head is then the ``AppendCommand``. The piece ends with the head of
    a literal to stream (a message or a TEXT) or with the command's CRLF.
    """
    events: list[AppendEvent] = []
    while True:
        if position is Position.MESSAGE_END:
            if p.at(b"\r\n"):
                p.end()
                return events, None
            position = Position.MESSAGE
        elif position is Position.MESSAGE:
            p.sp()
            flags: tuple[bytes, ...] = ()
            date_time: datetime.datetime | None = None
            if p.at(b"("):
                flags = p.flag_list()
                p.sp()
            if p.at(b'"'):
                date_time = p.date_time()
                p.sp()
            if p.buf[p.pos : p.pos + 8].upper() == b"CATENATE":
                p.pos += 8
                p.sp()
                p.expect(b"(", '"("')
                events.append(_head(tag, mailbox, flags, date_time, (0, False, False), True))
                mailbox = None
                events.append(_part(p, tag))
                if isinstance(events[-1], CatenateText):
                    return events, Position.PART_END
                position = Position.PART_END
                continue
            literal = _streamed_literal(p, "the APPEND literal")
            events.append(_head(tag, mailbox, flags, date_time, literal, False))
            return events, Position.MESSAGE_END
        elif p.at(b")"):  # PART_END
            p.pos += 1
            position = Position.MESSAGE_END
        else:
            p.sp()
            events.append(_part(p, tag))
            if isinstance(events[-1], CatenateText):
                return events, Position.PART_END


def _head(
    tag: bytes,
    mailbox: bytes | None,
    flags: tuple[bytes, ...],
    date_time: datetime.datetime | None,
    literal: tuple[int, bool, bool],
    catenate: bool,
) -> AppendCommand | AppendMessage:
    size, synchronizing, binary = literal
    if mailbox is not None:
        return AppendCommand(
            tag, flags, date_time, size, synchronizing, binary, catenate, mailbox=mailbox
        )
    return AppendMessage(tag, flags, date_time, size, synchronizing, binary, catenate)


def _part(p: Parser, tag: bytes) -> CatenateUrl | CatenateText:
    """``cat-part = "TEXT" SP literal / "URL" SP astring`` (RFC 4469 section 5);
    a TEXT literal may be a ``literal8`` (RFC 3516, RFC 4466's ``literal8``)."""
    word = p.word('"TEXT" or "URL"')
    p.sp()
    if word == b"URL":
        return CatenateUrl(p.astring())
    if word != b"TEXT":
        raise ParseError('expected "TEXT" or "URL"')
    return CatenateText(tag, *_streamed_literal(p, "a CATENATE TEXT literal"))


def _streamed_literal(p: Parser, what: str) -> tuple[int, bool, bool]:
    """The head of a literal the receiver streams: ``{n}``, ``{n+}``, or the same
    after ``~`` (``literal8``); the piece ends there. (size, synchronizing, binary)."""
    binary = p.at(b"~")
    if binary:
        p.pos += 1
    size, synchronizing = p.literal_head()
    if p.pos != len(p.buf):  # the framer stops right after a streamed literal's head
        raise ParseError(f"unexpected data after {what}")
    return size, synchronizing, binary
