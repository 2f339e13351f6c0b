"""The LMTP wire layer: bytes in, events out, however the bytes are split.

Every transcript is fed whole, one byte at a time and split at every position
(sampled for long ones) and must give the same events; consecutive
``DataChunk`` events are merged first since their boundaries follow the
reads. The session side is simulated by ``_accept`` (answers 354 to every
DATA) or ``_refuse`` (refuses every DATA).
"""

from __future__ import annotations

import ast
import itertools
import random
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypedDict, Unpack

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lightmail.lmtp.wire
from lightmail.lmtp.wire import (
    CONNECTION_CLOSED,
    NEED_DATA,
    BadCommand,
    DataChunk,
    DataCommand,
    DataEnd,
    Event,
    HeloCommand,
    LhloCommand,
    LmtpReceiver,
    LocalProtocolError,
    MailCommand,
    NoopCommand,
    QuitCommand,
    RcptCommand,
    Reply,
    RsetCommand,
    VrfyCommand,
)

# --------------------------------------------------------------------------- harness

React = Callable[[LmtpReceiver, Event], None]


class Limits(TypedDict, total=False):
    max_line: int
    max_message_size: int
    chunk_size: int


def _accept(r: LmtpReceiver, event: Event) -> None:
    if isinstance(event, DataCommand):
        r.start_data()


def _refuse(r: LmtpReceiver, event: Event) -> None:
    pass


def _merge(events: list[Event]) -> list[Event]:
    """Join consecutive DataChunk events; drop those before a DataEnd(too_large=True).

    How many octets come out before the receiver finds the message too large
    depends on the reads (it is a prefix of at most max_message_size octets),
    and the session throws them away.
    """
    merged: list[Event] = []
    pieces: list[bytes] = []
    for event in events:
        if isinstance(event, DataChunk):
            pieces.append(event.data)
            continue
        if pieces and not (isinstance(event, DataEnd) and event.too_large):
            merged.append(DataChunk(b"".join(pieces)))
        pieces = []
        merged.append(event)
    if pieces:
        merged.append(DataChunk(b"".join(pieces)))
    return merged


class Harness:
    """One receiver; records events, checks chunk bounds, simulates the session."""

    def __init__(self, react: React = _accept, **limits: Unpack[Limits]) -> None:
        self.r = LmtpReceiver(**limits)
        self.chunk_size = limits.get("chunk_size", 64 << 10)
        self.react = react
        self.events: list[Event] = []
        self.closed = False

    def feed(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.r.receive_data(data)
        self.drain()

    def eof(self) -> None:
        if not self.closed:
            self.r.receive_data(b"")
            self.drain()

    def drain(self) -> None:
        for _ in range(1_000_000):  # a bound, so a receiver bug cannot hang the tests
            event = self.r.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, DataChunk):
                assert 0 < len(event.data) <= self.chunk_size
            self.events.append(event)
            if event is CONNECTION_CLOSED:
                self.closed = True
                assert self.r.next_event() is CONNECTION_CLOSED
                return
            self.react(self.r, event)
        raise AssertionError("next_event never returned NEED_DATA")


def run(
    chunks: Iterable[bytes], *, eof: bool = False, react: React = _accept, **limits: Unpack[Limits]
) -> list[Event]:
    h = Harness(react, **limits)
    for chunk in chunks:
        h.feed(chunk)
    if eof:
        h.eof()
    return _merge(h.events)


def splits(data: bytes, *, exhaustive: bool) -> Iterator[list[bytes]]:
    yield [data]
    if exhaustive:
        yield [data[i : i + 1] for i in range(len(data))]
        positions: Iterable[int] = range(1, len(data))
    else:
        rng = random.Random(len(data))
        positions = sorted(rng.sample(range(1, len(data)), min(20, len(data) - 1)))
        yield [data[i : i + 997] for i in range(0, len(data), 997)]
    for i in positions:
        yield [data[:i], data[i:]]


def check(
    data: bytes, *, eof: bool = False, react: React = _accept, **limits: Unpack[Limits]
) -> list[Event]:
    """Events for ``data``, asserting they are the same for every way of splitting it."""
    expected = run([data], eof=eof, react=react, **limits)
    for chunks in splits(data, exhaustive=len(data) <= 400):
        assert run(chunks, eof=eof, react=react, **limits) == expected, chunks
    return expected


def one(line: bytes) -> Event:
    events = check(line)
    assert len(events) == 1, events
    return events[0]


def bad(line: bytes) -> BadCommand:
    """``line`` is one bad command; the receiver then still parses the next one."""
    events = check(line + b"NOOP\r\n")
    assert len(events) == 2, events
    assert events[1] == NoopCommand(), events
    assert isinstance(events[0], BadCommand), events
    return events[0]


ENVELOPE = (
    b"LHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
)
HEAD: list[Event] = [
    LhloCommand("client.example"),
    MailCommand("a@example.org"),
    RcptCommand("b@example.net"),
    DataCommand(),
]


def message(
    body: bytes, *, eof: bool = False, **limits: Unpack[Limits]
) -> tuple[bytes, list[Event]]:
    """Deliver ``body`` (the raw DATA stream, terminator included) then QUIT.

    Returns the decoded message and the events after it.
    """
    events = check(ENVELOPE + body + b"QUIT\r\n", eof=eof, **limits)
    assert events[:4] == HEAD, events
    rest = events[4:]
    if rest and isinstance(rest[0], DataChunk):
        return rest[0].data, rest[1:]
    return b"", rest


def decoded(body: bytes, **limits: Unpack[Limits]) -> bytes:
    """The message for ``body`` (terminator included), asserting it ended well."""
    data, rest = message(body, **limits)
    assert rest == [DataEnd(too_large=False), QuitCommand()], rest
    return data


# --------------------------------------------------------------------------- reference decoder

_LINE = re.compile(rb"[^\n]*\n")


def reference(stream: bytes) -> bytes | None:
    """The message up to the first <CRLF>.<CRLF>, by whole lines (None: no terminator)."""
    out = bytearray()
    crlf_before = True
    pos = 0
    for m in _LINE.finditer(stream):
        line = m.group()
        crlf = line.endswith(b"\r\n")
        text = line[:-2] if crlf else line[:-1]
        if text == b"." and crlf and crlf_before:
            return bytes(out)
        if text.startswith(b".") and text != b".":
            text = text[1:]
        out += text + b"\r\n"
        crlf_before = crlf
        pos = m.end()
    del pos
    return None


# --------------------------------------------------------------------------- RFC 2033 example


def test_rfc2033_section4_2_example() -> None:
    transcript = (
        b"LHLO foo.edu\r\n"
        b"MAIL FROM:<chris@bar.com>\r\n"
        b"RCPT TO:<pat@foo.edu>\r\n"
        b"RCPT TO:<jones@foo.edu>\r\n"
        b"RCPT TO:<green@foo.edu>\r\n"
        b"DATA\r\n"
        b"Blah blah blah...\r\n"
        b"...etc. etc. etc.\r\n"
        b".\r\n"
        b"QUIT\r\n"
    )
    assert check(transcript) == [
        LhloCommand("foo.edu"),
        MailCommand("chris@bar.com"),
        RcptCommand("pat@foo.edu"),
        RcptCommand("jones@foo.edu"),
        RcptCommand("green@foo.edu"),
        DataCommand(),
        DataChunk(b"Blah blah blah...\r\n..etc. etc. etc.\r\n"),
        DataEnd(too_large=False),
        QuitCommand(),
    ]


# --------------------------------------------------------------------------- every command

GOOD: list[tuple[bytes, Event]] = [
    (b"LHLO foo.edu\r\n", LhloCommand("foo.edu")),
    (b"lhlo localhost\r\n", LhloCommand("localhost")),
    (b"LhLo mx_1.example-host.org\r\n", LhloCommand("mx_1.example-host.org")),
    (b"LHLO [192.0.2.1]\r\n", LhloCommand("[192.0.2.1]")),
    (b"LHLO [IPv6:2001:db8::1]\r\n", LhloCommand("[IPv6:2001:db8::1]")),
    (b"LHLO foo.edu   \r\n", LhloCommand("foo.edu")),
    (b"LHLO foo.edu\n", LhloCommand("foo.edu")),
    (b"HELO foo.edu\r\n", HeloCommand("HELO")),
    (b"ehlo foo.edu\r\n", HeloCommand("EHLO")),
    (b"EHLO\r\n", HeloCommand("EHLO")),
    (b"MAIL FROM:<chris@bar.com>\r\n", MailCommand("chris@bar.com")),
    (b"mail from:<chris@bar.com>\r\n", MailCommand("chris@bar.com")),
    (b"MAIL FROM:<>\r\n", MailCommand("")),
    (b"MAIL FROM:<> SIZE=0\r\n", MailCommand("", 0)),
    (b"MAIL FROM: <chris@bar.com>\r\n", MailCommand("chris@bar.com")),
    (b"MAIL FROM:<chris@bar.com> SIZE=1000\r\n", MailCommand("chris@bar.com", 1000)),
    (b"MAIL FROM:<c@b> size=12 body=8bitmime\r\n", MailCommand("c@b", 12, "8BITMIME")),
    (b"MAIL FROM:<c@b> BODY=7BIT  SIZE=5  \r\n", MailCommand("c@b", 5, "7BIT")),
    (
        b"MAIL FROM:<c@b> SIZE=99999999999999999999\r\n",
        MailCommand("c@b", 99999999999999999999),
    ),
    (b"MAIL FROM:<@a,@b.c:user@d.example>\r\n", MailCommand("user@d.example")),
    (b'MAIL FROM:<"joe smith"@example.org>\r\n', MailCommand('"joe smith"@example.org')),
    (
        b"MAIL FROM:<srs0=ab=cd=example.com=joe@fwd.example>\r\n",
        MailCommand("srs0=ab=cd=example.com=joe@fwd.example"),
    ),
    (b"MAIL FROM:<a.b+tag@[192.0.2.1]>\r\n", MailCommand("a.b+tag@[192.0.2.1]")),
    (b"RCPT TO:<pat@foo.edu>\r\n", RcptCommand("pat@foo.edu")),
    (b"rcpt to:<Pat@Foo.EDU>\r\n", RcptCommand("Pat@Foo.EDU")),
    (b"RCPT TO: <pat@foo.edu>\r\n", RcptCommand("pat@foo.edu")),
    (b"RCPT TO:<pat@foo.edu>  \r\n", RcptCommand("pat@foo.edu")),
    (b'RCPT TO:<"quoted local"@example.org>\r\n', RcptCommand('"quoted local"@example.org')),
    (b'RCPT TO:<"a\\"b\\\\c"@example.org>\r\n', RcptCommand('"a\\"b\\\\c"@example.org')),
    (b'RCPT TO:<""@example.org>\r\n', RcptCommand('""@example.org')),
    (b"RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>\r\n", RcptCommand("userc@d.bar.org")),
    (b"RCPT TO:<@hosta.int:userc@d.bar.org>\r\n", RcptCommand("userc@d.bar.org")),
    (b"RCPT TO:<Postmaster>\r\n", RcptCommand("Postmaster")),
    (b"RCPT TO:<postmaster>\r\n", RcptCommand("postmaster")),
    (b"RCPT TO:<Postmaster@foo.edu>\r\n", RcptCommand("Postmaster@foo.edu")),
    (b"RCPT TO:<!#$%&'*+/=?^_`{|}~-@x.y>\r\n", RcptCommand("!#$%&'*+/=?^_`{|}~-@x.y")),
    (b"RCPT TO:<pat@foo.edu>\n", RcptCommand("pat@foo.edu")),
    (b"DATA\r\n", DataCommand()),
    (b"data \r\n", DataCommand()),
    (b"RSET\r\n", RsetCommand()),
    (b"rset\t\r\n", RsetCommand()),
    (b"NOOP\r\n", NoopCommand()),
    (b"NOOP anything at all\r\n", NoopCommand()),
    (b"QUIT\r\n", QuitCommand()),
    (b"Quit\n", QuitCommand()),
    (b"VRFY Smith\r\n", VrfyCommand("Smith")),
    (b"VRFY <smith@example.org>\r\n", VrfyCommand("<smith@example.org>")),
    (b'VRFY "Joe Smith"\r\n', VrfyCommand('"Joe Smith"')),
]


@pytest.mark.parametrize(("line", "expected"), GOOD, ids=[repr(g[0])[2:42] for g in GOOD])
def test_command(line: bytes, expected: Event) -> None:
    assert one(line) == expected
    assert isinstance(expected, DataCommand) or one(line) == expected


BAD: list[tuple[bytes, int, str]] = [
    # unknown or missing verb
    (b"FOO\r\n", 500, "5.5.1"),
    (b"MAILX FROM:<a@b>\r\n", 500, "5.5.1"),
    (b"\r\n", 500, "5.5.2"),
    (b"\n", 500, "5.5.2"),
    (b"   \r\n", 500, "5.5.2"),
    (b" NOOP\r\n", 500, "5.5.2"),
    (b"123\r\n", 500, "5.5.2"),
    (b"NO-OP\r\n", 500, "5.5.2"),
    # known but not offered
    (b"EXPN list\r\n", 502, "5.5.1"),
    (b"HELP\r\n", 502, "5.5.1"),
    (b"STARTTLS\r\n", 502, "5.5.1"),
    (b"AUTH PLAIN\r\n", 502, "5.5.1"),
    (b"BDAT 10 LAST\r\n", 502, "5.5.1"),
    # invalid characters
    (b"NOOP \x00\r\n", 501, "5.5.2"),
    (b"\x00\r\n", 501, "5.5.2"),
    (b"RCPT TO:<j\xc3\xb6rg@example.org>\r\n", 501, "5.5.2"),
    (b"NOOP\rRSET\r\n", 501, "5.5.2"),
    (b"NOOP\r\r\n", 501, "5.5.2"),
    (b"NOOP \x7f\r\n", 501, "5.5.2"),
    (b"NOOP\x1b\r\n", 501, "5.5.2"),
    # LHLO
    (b"LHLO\r\n", 501, "5.5.4"),
    (b"LHLO two words\r\n", 501, "5.5.4"),
    (b"LHLO bad..domain\r\n", 501, "5.5.4"),
    (b"LHLO -lead.example\r\n", 501, "5.5.4"),
    (b"LHLO <foo.edu>\r\n", 501, "5.5.4"),
    # MAIL
    (b"MAIL\r\n", 501, "5.5.4"),
    (b"MAIL TO:<a@b>\r\n", 501, "5.5.4"),
    (b"MAIL FROM<a@b>\r\n", 501, "5.5.4"),
    (b"MAIL FROM:a@b\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a@b\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<@b>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a@>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a..b@c>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a@b><c@d>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<>x\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a@b c>\r\n", 501, "5.1.7"),
    (b'MAIL FROM:<"unterminated@b>\r\n', 501, "5.1.7"),
    (b"MAIL FROM:<Postmaster>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<@a:>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a@b> SIZE\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> SIZE=\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> SIZE=-1\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> SIZE=12k\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> SIZE=123456789012345678901\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> SIZE=1 SIZE=2\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> BODY\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> BODY=7BIT BODY=7BIT\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> =x\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> -X=1\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> X=a=b\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n", 555, "5.5.4"),
    (b"MAIL FROM:<a@b> SMTPUTF8\r\n", 555, "5.5.4"),
    (b"MAIL FROM:<a@b> RET=HDRS ENVID=x\r\n", 555, "5.5.4"),
    (b"MAIL FROM:<a@b> AUTH=<>\r\n", 555, "5.5.4"),
    # RCPT
    (b"RCPT\r\n", 501, "5.5.4"),
    (b"RCPT TO\r\n", 501, "5.5.4"),
    (b"RCPT FROM:<a@b>\r\n", 501, "5.5.4"),
    (b"RCPT TO:<>\r\n", 501, "5.1.3"),
    (b"RCPT TO:pat@foo.edu\r\n", 501, "5.1.3"),
    (b"RCPT TO:<pat>\r\n", 501, "5.1.3"),
    (b"RCPT TO:<pat@foo.edu\r\n", 501, "5.1.3"),
    (b"RCPT TO:<@a,b:pat@foo.edu>\r\n", 501, "5.1.3"),
    (b"RCPT TO:<pat@foo.edu>x\r\n", 501, "5.1.3"),
    (b'RCPT TO:<"a"b"@c>\r\n', 501, "5.1.3"),
    (b"RCPT TO:<pat@foo.edu> =\r\n", 501, "5.5.4"),
    (b"RCPT TO:<pat@foo.edu> NOTIFY=NEVER\r\n", 555, "5.5.4"),
    (b"RCPT TO:<pat@foo.edu> SIZE=1\r\n", 555, "5.5.4"),
    # no-argument commands
    (b"DATA x\r\n", 501, "5.5.4"),
    (b"RSET now\r\n", 501, "5.5.4"),
    (b"QUIT please\r\n", 501, "5.5.4"),
    (b"VRFY\r\n", 501, "5.5.4"),
    (b"VRFY   \r\n", 501, "5.5.4"),
]


@pytest.mark.parametrize(("line", "code", "enhanced"), BAD, ids=[repr(b[0])[2:42] for b in BAD])
def test_bad_command(line: bytes, code: int, enhanced: str) -> None:
    event = bad(line)
    assert (event.code, event.enhanced) == (code, enhanced)
    assert event.text.isascii()
    assert event.text.isprintable()
    Reply(event.code, event.enhanced, (event.text,)).to_bytes()
    assert event.to_reply() == Reply(code, enhanced, (event.text,))


def test_bad_command_text_never_echoes_client_bytes() -> None:
    for line, _, _ in BAD:
        event = bad(line)
        words = {w for w in re.split(rb"[^A-Za-z0-9@.]+", line) if len(w) > 4}
        assert not any(w.decode() in event.text for w in words), (line, event)


# --------------------------------------------------------------------------- line limit


def test_line_too_long_is_reported_then_discarded() -> None:
    line = b"NOOP " + b"x" * 5000 + b"\r\n"
    events = check(line + b"RSET\r\n", max_line=1024)
    assert events == [BadCommand(500, "5.5.2", "Line too long"), RsetCommand()]


def test_line_exactly_max_line_is_accepted() -> None:
    line = b"NOOP " + b"x" * (1024 - 7) + b"\r\n"
    assert len(line) == 1024
    assert check(line, max_line=1024) == [NoopCommand()]
    longer = b"NOOP " + b"x" * (1024 - 6) + b"\r\n"
    assert check(longer + b"QUIT\r\n", max_line=1024) == [
        BadCommand(500, "5.5.2", "Line too long"),
        QuitCommand(),
    ]


def test_huge_command_line_is_not_buffered() -> None:
    h = Harness(max_line=1024)
    piece = b"A" * (1 << 20)
    for _ in range(20):
        h.feed(piece)
        assert h.r.buffered == 0
    h.feed(b"\r\nQUIT\r\n")
    assert h.events == [BadCommand(500, "5.5.2", "Line too long"), QuitCommand()]


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_line"):
        LmtpReceiver(max_line=100)
    with pytest.raises(ValueError, match="max_line"):
        LmtpReceiver(chunk_size=0)


# --------------------------------------------------------------------------- pipelining


def test_pipelined_commands_come_out_in_order() -> None:
    group = (
        b"RSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nBOGUS\r\nRCPT TO:<g@h>\r\n"
    )
    assert check(group) == [
        RsetCommand(),
        MailCommand("a@b"),
        RcptCommand("c@d"),
        RcptCommand("e@f"),
        BadCommand(500, "5.5.1", "Command unrecognized"),
        RcptCommand("g@h"),
    ]


def test_receiver_does_not_read_past_data_before_start_data() -> None:
    r = LmtpReceiver()
    r.receive_data(b"DATA\r\n.leading\r\n.\r\nQUIT\r\n")
    assert r.next_event() == DataCommand()
    assert r.buffered == len(b".leading\r\n.\r\nQUIT\r\n")
    r.start_data()
    assert r.next_event() == DataChunk(b"leading\r\n")
    assert r.next_event() == DataEnd(too_large=False)
    assert r.next_event() == QuitCommand()
    assert r.next_event() is NEED_DATA


def test_refused_data_reads_the_message_as_commands() -> None:
    """RFC 2920 section 3.1: if DATA is refused, the client's message is read as commands."""
    events = check(b"DATA\r\nNOOP\r\nSubject: hi\r\n.\r\nQUIT\r\n", react=_refuse)
    assert events == [
        DataCommand(),
        NoopCommand(),
        BadCommand(500, "5.5.2", "Syntax error"),  # "Subject:" is not a verb
        BadCommand(500, "5.5.2", "Syntax error"),  # nor is "."
        QuitCommand(),
    ]


def test_start_data_out_of_turn_is_our_bug() -> None:
    r = LmtpReceiver()
    with pytest.raises(LocalProtocolError):
        r.start_data()
    r.receive_data(b"DATA\r\nNOOP\r\n")
    assert r.next_event() == DataCommand()
    assert r.next_event() == NoopCommand()
    with pytest.raises(LocalProtocolError):
        r.start_data()


def test_start_data_after_need_data() -> None:
    r = LmtpReceiver()
    r.receive_data(b"DATA\r\n")
    assert r.next_event() == DataCommand()
    assert r.next_event() is NEED_DATA
    r.start_data()
    r.receive_data(b"x\r\n.\r\n")
    assert r.next_event() == DataChunk(b"x\r\n")
    assert r.next_event() == DataEnd(too_large=False)
    with pytest.raises(LocalProtocolError):
        r.start_data()


def test_two_transactions_in_one_stream() -> None:
    stream = ENVELOPE + b"one\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\ntwo\r\n.\r\n"
    assert check(stream) == [
        *HEAD,
        DataChunk(b"one\r\n"),
        DataEnd(too_large=False),
        MailCommand(""),
        RcptCommand("x@y"),
        DataCommand(),
        DataChunk(b"two\r\n"),
        DataEnd(too_large=False),
    ]


# --------------------------------------------------------------------------- end of file


def test_eof_between_commands() -> None:
    assert check(b"NOOP\r\n", eof=True) == [NoopCommand(), CONNECTION_CLOSED]
    assert check(b"NOOP\r\nQUI", eof=True) == [NoopCommand(), CONNECTION_CLOSED]
    assert check(b"NOOP " + b"x" * 2000, eof=True, max_line=1024) == [
        BadCommand(500, "5.5.2", "Line too long"),
        CONNECTION_CLOSED,
    ]


def test_eof_in_data_abandons_the_message() -> None:
    data, rest = message(b"Subject: x\r\n\r\nbody\r\n", eof=True)
    assert data == b"Subject: x\r\n\r\nbody\r\nQUIT\r\n"  # returned, then abandoned
    assert rest[-1] is CONNECTION_CLOSED
    assert not any(isinstance(e, DataEnd) for e in rest)
    for tail in (b".", b"\r\n.", b"\r\n.\r", b"x\r\n.\n"):
        _, rest = message(b"a" + tail, eof=True)
        assert rest[-1] is CONNECTION_CLOSED
        assert not any(isinstance(e, DataEnd) for e in rest), tail


def test_receive_data_after_eof_is_our_bug() -> None:
    r = LmtpReceiver()
    r.receive_data(b"")
    assert r.next_event() is CONNECTION_CLOSED
    with pytest.raises(LocalProtocolError):
        r.receive_data(b"NOOP\r\n")


# --------------------------------------------------------------------------- DATA: transparency


def test_empty_message() -> None:
    assert decoded(b".\r\n") == b""


def test_dot_stuffing_is_undone() -> None:
    assert decoded(b"..leading\r\n.\r\n") == b".leading\r\n"
    assert decoded(b"..\r\n.\r\n") == b".\r\n"
    assert decoded(b"...\r\n.\r\n") == b"..\r\n"
    assert decoded(b"a\r\n..\r\nb\r\n.\r\n") == b"a\r\n.\r\nb\r\n"
    assert decoded(b"a.b\r\n .c\r\n.\r\n") == b"a.b\r\n .c\r\n"
    assert decoded(b"a\r\n.x\r\n.\r\n") == b"a\r\nx\r\n"  # not stuffed by the client: dot lost


def test_dot_lines_in_the_middle_of_chunks() -> None:
    body = b"".join(b"line %d\r\n..dot %d\r\n" % (i, i) for i in range(200)) + b".\r\n"
    expected = b"".join(b"line %d\r\n.dot %d\r\n" % (i, i) for i in range(200))
    assert decoded(body, chunk_size=64) == expected
    assert decoded(body, chunk_size=1) == expected


def test_terminator_split_across_feeds() -> None:
    body = b"hello\r\n.\r\n"
    stream = ENVELOPE + body + b"QUIT\r\n"
    expected = [*HEAD, DataChunk(b"hello\r\n"), DataEnd(too_large=False), QuitCommand()]
    for i in range(len(ENVELOPE), len(stream)):
        assert run([stream[:i], stream[i:]]) == expected
    assert run([bytes([b]) for b in stream]) == expected


def test_bare_lf_line_ends_are_normalised() -> None:
    assert decoded(b"a\nb\r\nc\n\r\n.\r\n") == b"a\r\nb\r\nc\r\n\r\n"
    assert decoded(b"a\n..b\r\n.\r\n") == b"a\r\n.b\r\n"  # a bare LF starts a line
    assert decoded(b"\n\n\r\n.\r\n") == b"\r\n\r\n\r\n"
    # the line before the terminator must end in CRLF: "c\n.\r\n" goes on
    assert decoded(b"c\n.\r\nd\r\n.\r\n") == b"c\r\n.\r\nd\r\n"


def test_bare_cr_is_passed_through() -> None:
    assert decoded(b"a\rb\r\n.\r\n") == b"a\rb\r\n"
    assert decoded(b"a\r\r\n.\r\n") == b"a\r\r\n"
    assert decoded(b".\rb\r\n.\r\n") == b"\rb\r\n"
    assert decoded(b"\r.\r\r\n.\r\n") == b"\r.\r\r\n"


def test_eight_bit_and_nul_are_passed_through() -> None:
    body = b"Subject: \xe2\x82\xac\r\n\r\n\x00\xff\xfe nul\x00\r\n.\r\n"
    assert decoded(body) == b"Subject: \xe2\x82\xac\r\n\r\n\x00\xff\xfe nul\x00\r\n"


def test_last_line_without_line_end_before_terminator() -> None:
    # "abc" then "\r\n.\r\n": the CRLF ends "abc" and starts the terminator.
    assert decoded(b"abc\r\n.\r\n") == b"abc\r\n"


# --------------------------------------------------------------------------- DATA: smuggling


@pytest.mark.parametrize(
    "fake_end",
    [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n\x00.\r\n"],
)
def test_smtp_smuggling_bare_lf_dot_does_not_end_data(fake_end: bytes) -> None:
    """Only <CRLF>.<CRLF> ends DATA (RFC 5321 section 4.5.2).

    A front MTA that does not see e.g. "\\n.\\r\\n" as the end passes it through;
    if we ended DATA there, the smuggled MAIL/RCPT/DATA after it would become
    a second, forged message (SMTP smuggling, CVE-2023-51764 and friends).
    """
    smuggled = (
        b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nforged\r\n"
    )
    body = b"Subject: hi\r\n\r\nhello" + fake_end + smuggled + b".\r\n"
    data, rest = message(body)
    assert rest == [DataEnd(too_large=False), QuitCommand()]
    assert b"MAIL FROM:<admin@example.org>" in data
    assert data.endswith(b"forged\r\n")
    assert data == reference(body)


# --------------------------------------------------------------------------- DATA: size limit


def test_message_over_max_message_size() -> None:
    limit = 1000
    body = b"".join(b"%04d " % i + b"x" * 73 + b"\r\n" for i in range(100)) + b".\r\n"
    h = Harness(max_message_size=limit, chunk_size=128)
    for i in range(0, len(ENVELOPE + body), 7):
        h.feed((ENVELOPE + body)[i : i + 7])
    h.feed(b"RSET\r\n")
    emitted = sum(len(e.data) for e in h.events if isinstance(e, DataChunk))
    assert emitted <= limit
    assert h.events[-2:] == [DataEnd(too_large=True), RsetCommand()]
    assert check(ENVELOPE + body + b"RSET\r\n", max_message_size=limit, chunk_size=128)[-2:] == [
        DataEnd(too_large=True),
        RsetCommand(),
    ]


def test_message_exactly_max_message_size_is_accepted() -> None:
    text = b"x" * 98 + b"\r\n"
    assert decoded(text + b".\r\n", max_message_size=100) == text
    data, rest = message(text + b"y\r\n.\r\n", max_message_size=100)
    assert rest == [DataEnd(too_large=True), QuitCommand()]
    assert len(data) <= 100


def test_too_large_counts_the_unstuffed_normalised_size() -> None:
    # 50 lines "..\n" are 150 octets on the wire and 150 decoded (".\r\n"); 100 would be lost.
    body = b"..\n" * 49 + b"..\r\n.\r\n"
    assert decoded(body, max_message_size=150) == b".\r\n" * 50
    _, rest = message(body, max_message_size=149)
    assert rest == [DataEnd(too_large=True), QuitCommand()]


def test_huge_line_in_data_is_not_buffered() -> None:
    h = Harness(max_message_size=8 << 20, chunk_size=64 << 10)
    h.feed(ENVELOPE)
    piece = b"x" * (1 << 20)
    for _ in range(100):
        h.feed(piece)
        assert h.r.buffered <= (64 << 10) + 4096
    h.feed(b"\r\n.\r\nQUIT\r\n")
    emitted = sum(len(e.data) for e in h.events if isinstance(e, DataChunk))
    assert emitted <= 8 << 20
    assert h.events[-2:] == [DataEnd(too_large=True), QuitCommand()]


# --------------------------------------------------------------------------- DATA: big bodies


def _big_body(size: int) -> tuple[bytes, bytes]:
    """A stuffed body of about ``size`` octets (mixed line ends, dot lines) and its message."""
    rng = random.Random(size)
    variants: list[tuple[bytes, bytes]] = []
    for _ in range(2000):
        text = bytes(rng.choice(b"abc .\x00\xff\r") for _ in range(rng.randrange(0, 120)))
        text = text.rstrip(b"\r")
        ending = b"\r\n" if rng.random() < 0.9 else b"\n"
        stuffed = b"." + text if text.startswith(b".") else text
        variants.append((stuffed + ending, text + b"\r\n"))
    picks = rng.choices(variants, k=size // 60)
    return (
        b"".join(w for w, _ in picks) + b"\r\n.\r\n",
        b"".join(p for _, p in picks) + b"\r\n",
    )


def test_20mb_body_in_1kb_and_1mb_pieces() -> None:
    body, expected = _big_body(20 << 20)
    assert reference(body) == expected
    stream = ENVELOPE + body + b"QUIT\r\n"
    results = []
    for piece in (1 << 10, 1 << 20, len(stream)):
        h = Harness()
        for i in range(0, len(stream), piece):
            h.feed(stream[i : i + piece])
            assert h.r.buffered <= piece + (64 << 10) * 3
        results.append(_merge(h.events))
    assert results[0] == results[1] == results[2]
    assert results[0] == [*HEAD, DataChunk(expected), DataEnd(too_large=False), QuitCommand()]


# --------------------------------------------------------------------------- hypothesis

_BODY_BYTES = st.lists(
    st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"\x00", b"\xff", b" "]), max_size=60
).map(b"".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    for prefix in (b"", ENVELOPE):
        stream = prefix + data
        bounds = sorted({0, len(stream), *(min(c, len(stream)) for c in cuts)})
        chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
        events = run(chunks, eof=True, max_line=512, chunk_size=16)
        assert events == run([stream], eof=True, max_line=512, chunk_size=16)
        assert events[-1] is CONNECTION_CLOSED


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_BODY_BYTES, st.lists(st.integers(0, 400), max_size=8), st.integers(1, 40))
def test_random_splits_of_a_transaction(body: bytes, cuts: list[int], chunk_size: int) -> None:
    stream = ENVELOPE + body + b"\r\n.\r\n"
    bounds = sorted({0, len(stream), *(min(c, len(stream)) for c in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    events = run(chunks, chunk_size=chunk_size)
    assert events == run([stream], chunk_size=chunk_size)
    assert events[:4] == HEAD
    expected = reference(body + b"\r\n.\r\n")
    assert expected is not None
    data = events[4].data if isinstance(events[4], DataChunk) else b""
    assert data == expected
    assert DataEnd(too_large=False) in events


@settings(max_examples=200)
@given(_BODY_BYTES, st.integers(0, 80))
def test_random_bodies_respect_the_size_limit(body: bytes, limit: int) -> None:
    stream = ENVELOPE + body + b"\r\n.\r\nQUIT\r\n"
    events = run([stream], max_message_size=limit, chunk_size=8)
    expected = reference(body + b"\r\n.\r\n")
    assert expected is not None
    data = events[4].data if isinstance(events[4], DataChunk) else b""
    end = next(e for e in events if isinstance(e, DataEnd))
    assert len(data) <= limit
    assert end.too_large == (len(expected) > limit)
    if not end.too_large:
        assert data == expected


# --------------------------------------------------------------------------- replies


def test_reply_single_line() -> None:
    assert Reply(250, "2.1.5", ("OK",)).to_bytes() == b"250 2.1.5 OK\r\n"
    assert Reply(354, None, ("Start mail input",)).to_bytes() == b"354 Start mail input\r\n"
    assert Reply(220, None, ("mx LMTP ready",)).to_bytes() == b"220 mx LMTP ready\r\n"


def test_reply_multi_line_lhlo() -> None:
    reply = Reply(250, None, ("mx.example", "PIPELINING", "ENHANCEDSTATUSCODES", "SIZE 1000"))
    assert reply.to_bytes() == (
        b"250-mx.example\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 1000\r\n"
    )


def test_reply_enhanced_code_on_every_line() -> None:
    assert Reply(550, "5.1.1", ("No such user", "really")).to_bytes() == (
        b"550-5.1.1 No such user\r\n550 5.1.1 really\r\n"
    )


def test_reply_without_text() -> None:
    assert Reply(250, None, ()).to_bytes() == b"250\r\n"
    assert Reply(250, "2.0.0", ()).to_bytes() == b"250 2.0.0\r\n"
    assert Reply(250, None, ("", "x")).to_bytes() == b"250-\r\n250 x\r\n"


def test_reply_text_is_sanitised() -> None:
    out = Reply(550, "5.1.1", ("evil\r\n250 OK\x00 caf\u00e9",)).to_bytes()
    assert out == b"550 5.1.1 evil??250 OK? caf?\r\n"
    long = Reply(250, "2.0.0", ("x" * 1000,)).to_bytes()
    assert len(long) == 512
    assert long.endswith(b"x\r\n")


@pytest.mark.parametrize(
    ("code", "enhanced"),
    [(199, None), (600, None), (250, "5.0.0"), (550, "2.0.0"), (354, "3.0.0"), (250, "2.0")],
)
def test_reply_invalid_is_our_bug(code: int, enhanced: str | None) -> None:
    with pytest.raises(LocalProtocolError):
        Reply(code, enhanced, ("x",))


# --------------------------------------------------------------------------- layering


def test_wire_imports_only_stdlib() -> None:
    path = Path(lightmail.lmtp.wire.__file__)
    banned = {"asyncio", "socket", "ssl", "selectors", "threading", "subprocess"}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name == "lightmail.sansio":  # the sentinels every receiver shares
                continue
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names, name
            assert top not in banned, name
