"""The IMAP receiver's framing: modes, literals, APPEND, line limits, misuse, properties.

Each case goes through ``check`` (``receiver_harness``): fed whole, one byte at
a time and split everywhere, it must give the same events.
"""

from __future__ import annotations

import datetime
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightmail.imap.wire.commands import (
    AppendCommand,
    AppendMessage,
    AuthenticateCommand,
    CatenateText,
    CatenateUrl,
    DeleteCommand,
    IdleCommand,
    LoginCommand,
    NoopCommand,
    StartTlsCommand,
)
from lightmail.imap.wire.receiver import (
    CONNECTION_CLOSED,
    NEED_DATA,
    AppendEnd,
    BadCommand,
    ContinuationRequest,
    Event,
    IdleDone,
    LiteralChunk,
    LocalProtocolError,
    Receiver,
    SaslResponse,
)
from tests.unit.imap.receiver_harness import (
    MAX_APPEND,
    SMALL,
    _merge,
    _reject,
    bad,
    check,
    run,
    splits,
)
from tests.unit.imap.test_grammar import SIMPLE_COMMANDS

# --------------------------------------------------------------------------- IDLE and AUTHENTICATE


def test_idle_done() -> None:
    assert check(b"a IDLE\r\ndone\r\nb NOOP\r\n") == [
        IdleCommand(b"a"),
        IdleDone(b"a"),
        NoopCommand(b"b"),
    ]


def test_idle_without_done_ends_idle_with_bad() -> None:
    events = check(b"a IDLE\r\nb NOOP\r\nc NOOP\r\n")
    assert events[0] == IdleCommand(b"a")
    assert isinstance(events[1], BadCommand)
    assert events[1].tag == b"a"
    assert events[2] == NoopCommand(b"c")


def test_authenticate_with_continuation() -> None:
    ticket = b"YIIB+wYJKoZIhvcSAQICAQBuggHqMIIB5qADAgEFoQMCAQ6iBw=="
    assert check(b"A001 AUTHENTICATE GSSAPI\r\n" + ticket + b"\r\n\r\nb NOOP\r\n") == [
        AuthenticateCommand(b"A001", "GSSAPI"),
        SaslResponse(ticket),
        BadCommand(None, "empty command line"),  # the session did not ask for a 2nd response
        NoopCommand(b"b"),
    ]


def test_sasl_cancel_and_multiple_rounds() -> None:
    def react(r: Receiver, event: Event) -> None:
        if isinstance(event, AuthenticateCommand) or (
            isinstance(event, SaslResponse) and not event.cancelled
        ):
            r.expect_sasl_response()

    events = check(b"a AUTHENTICATE SCRAM-SHA-256\r\nbiws\r\n\r\n*\r\nb NOOP\r\n", react=react)
    assert events == [
        AuthenticateCommand(b"a", "SCRAM-SHA-256"),
        SaslResponse(b"biws"),
        SaslResponse(b""),
        SaslResponse(b"*"),
        NoopCommand(b"b"),
    ]
    assert isinstance(events[3], SaslResponse)
    assert events[3].cancelled


def test_sasl_line_too_long() -> None:
    def react(r: Receiver, event: Event) -> None:
        if isinstance(event, AuthenticateCommand):
            r.expect_sasl_response()

    events = check(
        b"a AUTHENTICATE PLAIN\r\n" + b"A" * 3000 + b"\r\nb NOOP\r\n", react=react, limits=SMALL
    )
    assert events[1] == BadCommand(b"a", "line too long")
    assert events[2] == NoopCommand(b"b")


# --------------------------------------------------------------------------- literals


def test_synchronizing_literals_ask_for_continuation() -> None:
    assert check(b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n") == [
        ContinuationRequest(11),
        ContinuationRequest(7),
        LoginCommand(b"A001", b"FRED FOOBAR", b"fat man"),
    ]


def test_literal_plus_rfc7888_example() -> None:
    assert check(b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n") == [
        LoginCommand(b"A001", b"FRED FOOBAR", b"fat man")
    ]


def test_literal_may_hold_crlf_8bit_and_braces() -> None:
    data = b"a\r\n\xff{3}\r\n"
    assert check(b"A LOGIN {%d}\r\n" % len(data) + data + b" {0}\r\n\r\n") == [
        ContinuationRequest(len(data)),
        ContinuationRequest(0),
        LoginCommand(b"A", data, b""),
    ]


def test_literal_of_a_bad_command_is_not_requested() -> None:
    events = check(b"a FROB {5}\r\nb NOOP\r\n")
    assert events == [BadCommand(b"a", "unknown command"), NoopCommand(b"b")]


def test_non_sync_literal_of_a_bad_command_is_discarded_not_executed() -> None:
    smuggled = b"x DELETE INBOX\r\n"
    events = check(b"a FROB {%d+}\r\n" % len(smuggled) + smuggled + b" tail\r\nb NOOP\r\n")
    assert events == [BadCommand(b"a", "unknown command"), NoopCommand(b"b")]


def test_non_sync_literal_after_bad_argument_is_discarded() -> None:
    smuggled = b"x DELETE INBOX\r\n"
    data = b"a LOGIN {3+}\r\nabc {%d+}\r\n" % len(smuggled) + smuggled + b" more\r\nb NOOP\r\n"
    events = check(data)
    assert events[-1] == NoopCommand(b"b")
    assert all(not isinstance(e, DeleteCommand) for e in events)


def test_literal_over_max_literal_sync_is_refused_without_continuation() -> None:
    events = check(b"a LOGIN {2000}\r\nb NOOP\r\n", limits=SMALL)
    assert events == [BadCommand(b"a", "literal too large"), NoopCommand(b"b")]


def test_literal_over_max_literal_non_sync_is_discarded() -> None:
    data = b"a LOGIN {2000+}\r\n" + b"x DELETE INBOX\r\n" * 125 + b" pw\r\nb NOOP\r\n"
    assert check(data, limits=SMALL) == [BadCommand(b"a", "literal too large"), NoopCommand(b"b")]


def test_literals_count_together_against_max_literal() -> None:
    data = b"a LOGIN {600+}\r\n" + b"u" * 600 + b" {600+}\r\n" + b"p" * 600 + b"\r\nb NOOP\r\n"
    assert check(data, limits=SMALL) == [BadCommand(b"a", "literal too large"), NoopCommand(b"b")]


def test_huge_literal_count_sync() -> None:
    events = check(b"a LOGIN {99999999999999999999}\r\nb NOOP\r\n")
    assert events == [BadCommand(b"a", "literal size out of range"), NoopCommand(b"b")]


def test_huge_literal_count_non_sync_is_fatal() -> None:
    events = check(b"a LOGIN {99999999999999999999+}\r\nb NOOP\r\n")
    assert len(events) == 2
    assert isinstance(events[0], BadCommand)
    assert events[0].fatal
    assert events[1] is CONNECTION_CLOSED


def test_unterminated_literal_then_eof() -> None:
    assert check(b"a LOGIN {10}\r\nabc", eof=True) == [ContinuationRequest(10), CONNECTION_CLOSED]


def test_nul_in_literal_is_bad() -> None:
    assert bad(b"a LOGIN {3+}\r\na\x00b x\r\n").tag == b"a"


# --------------------------------------------------------------------------- APPEND

MESSAGE = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred <fred@example.com>\r\n\r\nHi\r\n"
)


def test_append_sync_accepted() -> None:
    data = b"A003 APPEND saved-messages (\\Seen) {%d}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n"
    assert check(data + b"b NOOP\r\n") == [
        AppendCommand(b"A003", (b"\\Seen",), None, len(MESSAGE), True, mailbox=b"saved-messages"),
        LiteralChunk(MESSAGE),
        AppendEnd(b"A003"),
        NoopCommand(b"b"),
    ]


def test_append_sync_rejected_literal_never_comes() -> None:
    data = b"A003 APPEND nowhere {%d}\r\nb NOOP\r\n" % len(MESSAGE)
    assert check(data, react=_reject) == [
        AppendCommand(b"A003", (), None, len(MESSAGE), True, mailbox=b"nowhere"),
        NoopCommand(b"b"),
    ]


def test_append_non_sync_accepted_with_date_time() -> None:
    data = (
        b'a APPEND INBOX () " 7-Feb-1994 21:52:25 -0800" {%d+}\r\n' % len(MESSAGE)
        + MESSAGE
        + b"\r\n"
    )
    when = datetime.datetime(
        1994, 2, 7, 21, 52, 25, tzinfo=datetime.timezone(-datetime.timedelta(hours=8))
    )
    assert check(data) == [
        AppendCommand(b"a", (), when, len(MESSAGE), False, mailbox=b"INBOX"),
        LiteralChunk(MESSAGE),
        AppendEnd(b"a"),
    ]


def test_append_non_sync_rejected_is_discarded() -> None:
    smuggled = b"x DELETE INBOX\r\n"
    data = b"a APPEND INBOX {%d+}\r\n" % len(smuggled) + smuggled + b"\r\nb NOOP\r\n"
    assert check(data, react=_reject) == [
        AppendCommand(b"a", (), None, len(smuggled), False, mailbox=b"INBOX"),
        NoopCommand(b"b"),
    ]


def test_append_mailbox_as_literal_and_flags() -> None:
    data = b'a APPEND {5}\r\nDraft (\\draft $Label1) "01-Jan-2024 00:00:00 +0000" {3}\r\nabc\r\n'
    assert check(data) == [
        ContinuationRequest(5),
        AppendCommand(
            b"a",
            (b"\\Draft", b"$Label1"),
            datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
            3,
            True,
            mailbox=b"Draft",
        ),
        LiteralChunk(b"abc"),
        AppendEnd(b"a"),
    ]


def test_append_empty_message() -> None:
    assert check(b"a APPEND INBOX {0+}\r\n\r\n") == [
        AppendCommand(b"a", (), None, 0, False, mailbox=b"INBOX"),
        AppendEnd(b"a"),
    ]


def test_append_followed_by_garbage_instead_of_crlf() -> None:
    events = check(b"a APPEND INBOX {3+}\r\nabcX Y\r\nb NOOP\r\n")
    assert events == [
        AppendCommand(b"a", (), None, 3, False, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        BadCommand(b"a", "expected CRLF after the APPEND literal"),
        NoopCommand(b"b"),
    ]


def test_append_nul_in_message_is_bad() -> None:
    data = b"a APPEND INBOX {5+}\r\nab\x00cd\r\nb NOOP\r\n"
    for chunks in splits(data, exhaustive=True):
        # the octets before the NUL may already have gone out as a chunk
        events = [e for e in run(chunks) if not isinstance(e, LiteralChunk)]
        assert events == [
            AppendCommand(b"a", (), None, 5, False, mailbox=b"INBOX"),
            BadCommand(b"a", "NUL in APPEND literal"),
            NoopCommand(b"b"),
        ]


def test_append_literal8_carries_nul() -> None:
    """RFC 3516 section 4.4: ``~{n}`` (and ``~{n+}``, RFC 7888) may hold NUL."""
    message = b"Subject: x\r\n\r\n\x00\x01\xff\x00"
    for marker in (b"", b"+"):
        data = b"a APPEND INBOX (\\Seen) ~{%d%s}\r\n" % (len(message), marker)
        assert check(data + message + b"\r\nb NOOP\r\n") == [
            AppendCommand(
                b"a", (b"\\Seen",), None, len(message), not marker, True, mailbox=b"INBOX"
            ),
            LiteralChunk(message),
            AppendEnd(b"a"),
            NoopCommand(b"b"),
        ]


def test_multiappend_mixes_literal_and_literal8() -> None:
    data = b"a APPEND INBOX {3+}\r\nabc ~{2+}\r\n\x00z\r\nb NOOP\r\n"
    assert check(data) == [
        AppendCommand(b"a", (), None, 3, False, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        AppendMessage(b"a", (), None, 2, False, True),
        LiteralChunk(b"\x00z"),
        AppendEnd(b"a"),
        NoopCommand(b"b"),
    ]


@pytest.mark.parametrize(
    "line",
    [
        b"a LOGIN user ~{6}\r\n",  # a literal8 where only a string may be
        b"a SELECT ~{5+}\r\n",
        b"a APPEND ~{5}\r\n",  # APPEND's mailbox is not its message
        b"a SEARCH TEXT ~{3}\r\n",
    ],
)
def test_literal8_outside_append_message_is_bad_before_its_octets(line: bytes) -> None:
    """The grammar has ``literal8`` only in APPEND's message (RFC 3516 section 7): a
    synchronizing one is never asked for, a non-synchronizing one is discarded."""
    size = int(line[line.index(b"{") + 1 :].split(b"}")[0].rstrip(b"+"))
    events = check(line + b"x" * size + b"\r\nb NOOP\r\n")
    assert isinstance(events[0], BadCommand)
    assert events[0].tag == b"a"
    assert not any(isinstance(e, ContinuationRequest) for e in events)
    assert events[-1] == NoopCommand(b"b")


def test_literal8_non_sync_outside_append_is_discarded_not_parsed() -> None:
    """Octets of a refused ``~{n+}`` that look like a command are not run."""
    smuggled = b"x DELETE INBOX"
    data = b"a LOGIN u ~{%d+}\r\n" % len(smuggled) + smuggled + b"\r\nb NOOP\r\n"
    events = check(data)
    assert events == [
        BadCommand(b"a", "literal8 is allowed only for an APPEND message"),
        NoopCommand(b"b"),
    ]


@pytest.mark.parametrize(
    "line",
    [
        b"a APPEND INBOX ~{3\r\n",  # unterminated
        b"a APPEND INBOX ~3}\r\n",
        b"a APPEND INBOX ~ {3}\r\n",
        b"a APPEND INBOX ~~{3}\r\n",
        b"a APPEND INBOX ~{-3}\r\n",
        b"a APPEND INBOX ~{99999999999}\r\n",  # number out of range
        b"a APPEND INBOX {3}~\r\n",
        b"a APPEND INBOX (\\Seen)~{3}\r\n",  # SP needed
    ],
)
def test_malformed_literal8_is_bad(line: bytes) -> None:
    events = check(line + b"b NOOP\r\n")
    assert isinstance(events[0], BadCommand)
    assert events[-1] == NoopCommand(b"b")
    assert not any(isinstance(e, AppendCommand | ContinuationRequest) for e in events)


def test_append_literal8_over_max_append_non_sync_is_fatal() -> None:
    events = check(b"a APPEND INBOX ~{%d+}\r\n\x00\x00" % (MAX_APPEND + 1))
    assert events == [
        BadCommand(b"a", "APPEND message too large", fatal=True, code="TOOBIG"),
        CONNECTION_CLOSED,
    ]


def test_append_non_sync_over_max_append_is_fatal() -> None:
    events = check(b"a APPEND INBOX {%d+}\r\nxxxx" % (MAX_APPEND + 1))
    assert events == [
        BadCommand(b"a", "APPEND message too large", fatal=True, code="TOOBIG"),
        CONNECTION_CLOSED,
    ]


def test_append_sync_over_max_append_is_returned_for_the_session_to_refuse() -> None:
    r = Receiver(max_append=MAX_APPEND)
    r.receive_data(b"a APPEND INBOX {%d}\r\n" % (MAX_APPEND + 1))
    event = r.next_event()
    assert isinstance(event, AppendCommand)
    assert event.size == MAX_APPEND + 1
    with pytest.raises(LocalProtocolError):
        r.accept_literal()
    r.reject_literal()
    r.receive_data(b"b NOOP\r\n")
    assert r.next_event() == NoopCommand(b"b")


def test_append_streams_in_bounded_chunks() -> None:
    size = 300_000
    r = Receiver()
    r.receive_data(b"a APPEND INBOX {%d+}\r\n" % size)
    assert isinstance(r.next_event(), AppendCommand)
    r.accept_literal()
    assert r.next_event() is NEED_DATA
    received = 0
    for _ in range(size // 100_000):
        r.receive_data(b"m" * 100_000)
        while (event := r.next_event()) is not NEED_DATA:
            assert isinstance(event, LiteralChunk)
            assert 0 < len(event.data) <= 64 * 1024
            received += len(event.data)
        assert received % 100_000 == 0  # delivered as it arrives, not at the end
    r.receive_data(b"\r\n")
    assert r.next_event() == AppendEnd(b"a")
    assert received == size


# --------------------------------------------------------------------------- MULTIAPPEND (RFC 3502)


def test_multiappend_three_messages_sync_and_non_sync() -> None:
    data = (
        b"a APPEND INBOX (\\Seen) {3}\r\nabc"
        b' (\\Flagged) "01-Jan-2024 00:00:00 +0000" {4+}\r\ndefg'
        b" {2}\r\nhi\r\nb NOOP\r\n"
    )
    assert check(data) == [
        AppendCommand(b"a", (b"\\Seen",), None, 3, True, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        AppendMessage(
            b"a", (b"\\Flagged",), datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), 4, False
        ),
        LiteralChunk(b"defg"),
        AppendMessage(b"a", (), None, 2, True),
        LiteralChunk(b"hi"),
        AppendEnd(b"a"),
        NoopCommand(b"b"),
    ]


def _accept_first_only(r: Receiver, event: Event) -> None:
    if isinstance(event, AppendCommand):
        r.accept_literal()
    elif isinstance(event, AppendMessage):
        r.reject_literal()


def test_multiappend_refused_sync_message_is_never_sent() -> None:
    # RFC 3502's example A005: the server answers NO instead of "+"; the
    # client then sends its next command, not the literal.
    data = b"a APPEND INBOX {3}\r\nabc {35403}\r\nb NOOP\r\n"
    assert check(data, react=_accept_first_only) == [
        AppendCommand(b"a", (), None, 3, True, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        AppendMessage(b"a", (), None, 35403, True),
        NoopCommand(b"b"),
    ]


def test_multiappend_refused_non_sync_message_is_discarded_with_the_rest() -> None:
    """A smuggled command in a refused message's literal, or in a later one's, never runs."""
    smuggled = b"x DELETE INBOX\r\n"
    data = b"a APPEND INBOX {3+}\r\nabc {%d+}\r\n%s () {%d+}\r\n%s\r\nb NOOP\r\n" % (
        len(smuggled),
        smuggled,
        len(smuggled),
        smuggled,
    )
    assert check(data, react=_accept_first_only) == [
        AppendCommand(b"a", (), None, 3, False, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        AppendMessage(b"a", (), None, len(smuggled), False),
        NoopCommand(b"b"),
    ]


@pytest.mark.parametrize(
    ("between", "text"),
    [
        (b" (\\Seen)\r\n", "expected a single space"),
        (b" (\\Seen) {3} x\r\n", "invalid literal"),
        (b" {3+} \r\n", "invalid literal"),
        (b' "99-Foo-2024 00:00:00 +0000" {3}\r\n', "invalid date-time"),
    ],
)
def test_multiappend_bad_syntax_between_messages(between: bytes, text: str) -> None:
    events = check(b"a APPEND INBOX {3+}\r\nabc" + between + b"b NOOP\r\n")
    assert events[:2] == [
        AppendCommand(b"a", (), None, 3, False, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
    ]
    assert events[2:] == [BadCommand(b"a", text), NoopCommand(b"b")]


def test_multiappend_bad_line_with_non_sync_literal_discards_it() -> None:
    smuggled = b"x DELETE INBOX\r\n"
    data = b"a APPEND INBOX {3+}\r\nabc (\\Bogus\\) {%d+}\r\n%s\r\nb NOOP\r\n" % (
        len(smuggled),
        smuggled,
    )
    events = check(data)
    assert [type(e) for e in events] == [AppendCommand, LiteralChunk, BadCommand, NoopCommand]


def test_multiappend_nul_between_messages() -> None:
    events = check(b"a APPEND INBOX {3+}\r\nabc (\x00) {3}\r\nb NOOP\r\n")
    assert events[2:] == [BadCommand(b"a", "NUL in command"), NoopCommand(b"b")]


def test_multiappend_overlong_line_between_messages() -> None:
    data = b"a APPEND INBOX {3+}\r\nabc (" + b"\\Seen " * 300 + b") {3+}\r\nxyz\r\nb NOOP\r\n"
    events = check(data, limits=SMALL)
    assert events[2:] == [BadCommand(b"a", "command line too long"), NoopCommand(b"b")]


def test_multiappend_non_sync_over_max_append_is_fatal() -> None:
    events = check(b"a APPEND INBOX {3+}\r\nabc {%d+}\r\nxxxx" % (MAX_APPEND + 1))
    assert events[2:] == [
        BadCommand(b"a", "APPEND message too large", fatal=True, code="TOOBIG"),
        CONNECTION_CLOSED,
    ]


def test_multiappend_eof_in_the_second_message() -> None:
    assert check(b"a APPEND INBOX {3+}\r\nabc {10+}\r\nde", eof=True) == [
        AppendCommand(b"a", (), None, 3, False, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        AppendMessage(b"a", (), None, 10, False),
        LiteralChunk(b"de"),
        CONNECTION_CLOSED,
    ]


def test_append_message_needs_a_decision() -> None:
    r = Receiver()
    r.receive_data(b"a APPEND INBOX {1+}\r\nx {1+}\r\ny\r\n")
    assert isinstance(r.next_event(), AppendCommand)
    r.accept_literal()
    assert r.next_event() == LiteralChunk(b"x")
    assert r.next_event() == AppendMessage(b"a", (), None, 1, False)
    with pytest.raises(LocalProtocolError):
        r.next_event()
    r.accept_literal()
    assert r.next_event() == LiteralChunk(b"y")
    assert r.next_event() == AppendEnd(b"a")
    with pytest.raises(LocalProtocolError):
        r.accept_literal()


def test_append_eof_mid_message() -> None:
    assert check(b"a APPEND INBOX {10+}\r\nabc", eof=True) == [
        AppendCommand(b"a", (), None, 10, False, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        CONNECTION_CLOSED,
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"a APPEND INBOX\r\n",
        b'a APPEND INBOX "msg"\r\n',
        b"a APPEND INBOX (\\Seen {3}\r\n",
        b'a APPEND INBOX "7-Feb-1994 21:52:25 -0800" {3}\r\n',  # date-day-fixed needs 2 chars
        b'a APPEND INBOX "07-Feb-1994 21:52:25 0800" {3}\r\n',
        b'a APPEND INBOX "30-Feb-1994 21:52:25 +0800" {3}\r\n',
        b'a APPEND INBOX "07-Feb-1994 24:52:25 +0800" {3}\r\n',
        b'a APPEND INBOX "07-Foo-1994 21:52:25 +0800" {3}\r\n',
        b"a APPEND INBOX  {3}\r\n",
    ],
)
def test_append_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


def test_overlong_line_is_refused_then_discarded() -> None:
    data = b"a LOGIN " + b"x" * 5000 + b" y\r\n"
    events = check(data + b"b NOOP\r\n", limits=SMALL)
    assert events == [BadCommand(b"a", "command line too long"), NoopCommand(b"b")]


def test_overlong_line_without_newline_is_refused_at_the_limit() -> None:
    r = Receiver(**SMALL)
    r.receive_data(b"x" * 1000)
    assert r.next_event() is NEED_DATA
    r.receive_data(b"x" * 1000)
    assert r.next_event() == BadCommand(None, "command line too long")
    for _ in range(100):  # garbage keeps being discarded in bounded memory
        r.receive_data(b"y" * 10_000)
        assert r.next_event() is NEED_DATA
    r.receive_data(b"\r\nb NOOP\r\n")
    assert r.next_event() == NoopCommand(b"b")


def test_line_that_can_no_longer_fit_is_refused_before_its_newline() -> None:
    """The rule of the shared LineBuffer: max_line octets without LF cannot fit any more."""
    password = b"p" * (1024 - len(b"a LOGIN u \r\n"))
    fits = b"a LOGIN u " + password + b"\r\n"
    assert len(fits) == SMALL["max_line"]
    assert check(fits, limits=SMALL) == [LoginCommand(b"a", b"u", password)]
    r = Receiver(**SMALL)
    r.receive_data(fits[:-2] + b"pp")
    assert r.next_event() == BadCommand(b"a", "command line too long")


def test_overlong_line_ending_in_non_sync_literal_discards_it() -> None:
    smuggled = b"x DELETE INBOX\r\n"
    data = b"a LOGIN " + b"x" * 5000 + b" {%d+}\r\n" % len(smuggled) + smuggled + b"\r\nb NOOP\r\n"
    assert check(data, limits=SMALL) == [
        BadCommand(b"a", "command line too long"),
        NoopCommand(b"b"),
    ]


def test_line_limit_counts_all_lines_of_a_command() -> None:
    data = b"a LOGIN {1+}\r\nx " + b"y" * 1100 + b"\r\nb NOOP\r\n"
    assert check(data, limits=SMALL) == [
        BadCommand(b"a", "command line too long"),
        NoopCommand(b"b"),
    ]


def test_eof_mid_line() -> None:
    assert check(b"a NOO", eof=True) == [CONNECTION_CLOSED]


def test_eof_after_commands() -> None:
    assert check(b"a NOOP\r\n", eof=True) == [NoopCommand(b"a"), CONNECTION_CLOSED]


# --------------------------------------------------------------------------- modes and misuse


def test_starttls_discards_pipelined_clear_text() -> None:
    r = Receiver()
    r.receive_data(b"a STARTTLS\r\nb LOGIN x y\r\n")
    assert r.next_event() == StartTlsCommand(b"a")
    assert r.discard_pending() == len(b"b LOGIN x y\r\n")
    assert r.next_event() is NEED_DATA


def test_local_misuse_raises() -> None:
    r = Receiver()
    with pytest.raises(LocalProtocolError):
        r.accept_literal()
    with pytest.raises(LocalProtocolError):
        r.reject_literal()
    r.receive_data(b"a APPEND INBOX {3}\r\n")
    assert isinstance(r.next_event(), AppendCommand)
    with pytest.raises(LocalProtocolError):
        r.next_event()
    with pytest.raises(LocalProtocolError):
        r.start_idle()
    r.accept_literal()
    with pytest.raises(LocalProtocolError):
        r.accept_literal()
    r.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        r.receive_data(b"x")


def test_mode_calls_only_between_commands() -> None:
    r = Receiver()
    r.receive_data(b"a LOGIN {3}\r\n")
    assert r.next_event() == ContinuationRequest(3)
    for call in (r.start_idle, r.expect_sasl_response, r.discard_pending):
        with pytest.raises(LocalProtocolError):
            call()


def test_fatal_then_closed_and_further_data_ignored() -> None:
    r = Receiver(max_append=MAX_APPEND)
    r.receive_data(b"a APPEND INBOX {99999999+}\r\n")
    event = r.next_event()
    assert isinstance(event, BadCommand)
    assert event.fatal
    r.receive_data(b"more")
    assert r.next_event() is CONNECTION_CLOSED


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="limits"):
        Receiver(max_depth=10_000)


# --------------------------------------------------------------------------- properties

CORPUS = [data for data, _ in SIMPLE_COMMANDS] + [
    b"A003 APPEND saved-messages (\\Seen) {%d}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n",
    b"a APPEND INBOX {3+}\r\nabc\r\n",
    b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n",
    b"s SEARCH OR (NOT FROM a) (OR TO b CC {1+}\r\nc) SINCE 1-Feb-1994\r\n",
    b'f FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS ("A" B)]<0.10>)\r\n',
    b"a IDLE\r\nDONE\r\n",
]


def _no_raise(chunks: list[bytes], *, limits: dict[str, int] | None = None) -> list[Event]:
    events = run(chunks, eof=True, limits=limits)
    assert events, "some event is always produced at EOF"
    assert events[-1] is CONNECTION_CLOSED
    return events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = zip([0, *points], [*points, len(data)], strict=True)
    chunks = [data[a:b] for a, b in bounds if a < b]  # b"" would mean EOF
    events = _no_raise(chunks, limits=SMALL)
    assert _merge(events) == run([data], eof=True, limits=SMALL)


_MUTATION = st.sampled_from(["insert", "delete", "replace"])
_ALPHABET = st.sampled_from(
    list(b' ()[]{}<>"\\*%+-.:,0123456789\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ\x00\xff')
)
_MUTATIONS = st.lists(
    st.tuples(_MUTATION, st.integers(0, 10_000), _ALPHABET), min_size=1, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(CORPUS),
    _MUTATIONS,
)
def test_mutated_commands_never_raise(base: bytes, mutations: list[tuple[str, int, int]]) -> None:
    data = bytearray(base)
    for op, where, byte in mutations:
        i = where % (len(data) + 1)
        if op == "insert":
            data[i:i] = bytes([byte])
        elif op == "delete" and i < len(data):
            del data[i]
        elif i < len(data):
            data[i] = byte
    _no_raise([bytes(data)])
    _no_raise([bytes(data[i : i + 1]) for i in range(len(data))])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(CORPUS), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_any_split_gives_the_same_events(parts: list[bytes], rng: random.Random) -> None:
    data = b"".join(parts)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert run(chunks) == run([data])
    assert not any(isinstance(e, BadCommand) for e in run([data]))


def test_overlong_line_ending_in_huge_non_sync_literal_is_fatal() -> None:
    for count in (b"99999999999", b"9" * 60):
        data = b"a LOGIN " + b"x" * 5000 + b" {" + count + b"+}\r\nmore"
        events = check(data, limits=SMALL)
        assert events[0] == BadCommand(b"a", "command line too long")
        assert isinstance(events[1], BadCommand)
        assert events[1].fatal
        assert events[2:] == [CONNECTION_CLOSED]


@pytest.mark.parametrize("line", [b"DONE\n", b"DO\x00NE\r\n", b"DONE \r\n", b"\r\n"])
def test_idle_bad_terminations(line: bytes) -> None:
    events = check(b"a IDLE\r\n" + line + b"b NOOP\r\n")
    assert events[0] == IdleCommand(b"a")
    assert isinstance(events[1], BadCommand)
    assert events[1].tag == b"a"
    assert events[2:] == [NoopCommand(b"b")]


def test_sasl_line_with_nul_is_bad() -> None:
    events = check(b"a AUTHENTICATE PLAIN\r\nAG\x00Z\r\nb NOOP\r\n")
    assert events == [
        AuthenticateCommand(b"a", "PLAIN"),
        BadCommand(b"a", "NUL in line"),
        NoopCommand(b"b"),
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CORPUS),
    _MUTATIONS,
    st.randoms(use_true_random=False),
)
def test_mutated_commands_split_the_same(
    base: bytes, mutations: list[tuple[str, int, int]], rng: random.Random
) -> None:
    data = bytearray(base)
    for op, where, byte in mutations:
        i = where % (len(data) + 1)
        if op == "insert":
            data[i:i] = bytes([byte])
        elif op == "delete" and i < len(data):
            del data[i]
        elif i < len(data):
            data[i] = byte
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
    chunks = [bytes(data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]

    def without_chunks(events: list[Event]) -> list[Event]:
        # chunks sent before a NUL turned up depend on the reads; nothing else may
        return [e for e in events if not isinstance(e, LiteralChunk)]

    assert without_chunks(run(chunks, eof=True)) == without_chunks(run([bytes(data)], eof=True))


# --------------------------------------------------------------------------- CATENATE (RFC 4469)

URL1 = b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER"


def test_catenate_rfc4469_example_1() -> None:
    """Appendix A, example 1: URLs and TEXT literals, synchronizing ones."""
    boundary = b"\r\n--------------030308070208000400050907\r\n"
    data = (
        b'A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL "'
        + URL1
        + b'" TEXT {42}\r\n'
        + boundary
        + b' URL "/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME"'
        + b' URL "/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1" TEXT {42}\r\n'
        + boundary
        + b")\r\nb NOOP\r\n"
    )
    assert check(data) == [
        AppendCommand(
            b"A003",
            (b"\\Seen", b"\\Draft", b"$MDNSent"),
            None,
            0,
            False,
            False,
            True,
            mailbox=b"Drafts",
        ),
        CatenateUrl(URL1),
        CatenateText(b"A003", 42, True),
        LiteralChunk(boundary),
        CatenateUrl(b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME"),
        CatenateUrl(b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1"),
        CatenateText(b"A003", 42, True),
        LiteralChunk(boundary),
        AppendEnd(b"A003"),
        NoopCommand(b"b"),
    ]


def test_catenate_urls_only_is_one_line() -> None:
    assert check(b'a APPEND INBOX CATENATE (URL "/INBOX;UID=1" URL /INBOX;UID=2)\r\n') == [
        AppendCommand(b"a", (), None, 0, False, False, True, mailbox=b"INBOX"),
        CatenateUrl(b"/INBOX;UID=1"),
        CatenateUrl(b"/INBOX;UID=2"),
        AppendEnd(b"a"),
    ]


def test_catenate_url_as_literal_and_literal8_text() -> None:
    """A URL may be any astring, a literal too (buffered); TEXT may be literal8."""
    data = b"a APPEND INBOX CATENATE (URL {12}\r\n/INBOX;UID=1 TEXT ~{2+}\r\n\x00\x01)\r\n"
    assert check(data) == [
        ContinuationRequest(12),  # the URL's literal is read before APPEND's head comes out
        AppendCommand(b"a", (), None, 0, False, False, True, mailbox=b"INBOX"),
        CatenateUrl(b"/INBOX;UID=1"),
        CatenateText(b"a", 2, False, True),
        LiteralChunk(b"\x00\x01"),
        AppendEnd(b"a"),
    ]


def test_catenate_with_multiappend_both_ways() -> None:
    """RFC 4469 section 3 with RFC 3502: a literal message, then a CATENATE one,
    then a literal one again."""
    data = b"a APPEND INBOX {3+}\r\nabc (\\Seen) CATENATE (TEXT {2+}\r\nde URL /x) {1+}\r\nf\r\n"
    assert check(data) == [
        AppendCommand(b"a", (), None, 3, False, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        AppendMessage(b"a", (b"\\Seen",), None, 0, False, False, True),
        CatenateText(b"a", 2, False),
        LiteralChunk(b"de"),
        CatenateUrl(b"/x"),
        AppendMessage(b"a", (), None, 1, False),
        LiteralChunk(b"f"),
        AppendEnd(b"a"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"a APPEND INBOX CATENATE ()\r\n",  # at least one part
        b"a APPEND INBOX CATENATE (URL)\r\n",
        b"a APPEND INBOX CATENATE (URL /x\r\n",  # unterminated list
        b"a APPEND INBOX CATENATE (URL /x  URL /y)\r\n",
        b"a APPEND INBOX CATENATE (FILE /x)\r\n",
        b"a APPEND INBOX CATENATE URL /x\r\n",
        b'a APPEND INBOX CATENATE (TEXT "quoted")\r\n',  # TEXT is a literal
        b"a APPEND INBOX CATENATE (URL /x) junk\r\n",
        b"a APPEND INBOX CATENATE(URL /x)\r\n",
        b"a APPEND INBOX CATENATE (URL /x TEXT {3}) \r\n",
    ],
)
def test_malformed_catenate_is_bad(data: bytes) -> None:
    events = check(data + b"b NOOP\r\n")
    assert next(e for e in events if isinstance(e, BadCommand)).tag == b"a"
    assert events[-1] == NoopCommand(b"b")


def test_catenate_bad_after_a_text_literal_discards_the_rest() -> None:
    """A broken list after a streamed TEXT: BAD with APPEND's tag; a further
    non-synchronizing literal on that line is discarded, not run."""
    smuggled = b"x DELETE INBOX"
    data = b"a APPEND INBOX CATENATE (TEXT {2+}\r\nab BOGUS {%d+}\r\n" % len(smuggled)
    events = check(data + smuggled + b"\r\nb NOOP\r\n")
    assert events[-2:] == [BadCommand(b"a", 'expected "TEXT" or "URL"'), NoopCommand(b"b")]


def test_catenate_text_non_sync_over_max_append_is_fatal() -> None:
    events = check(b"a APPEND INBOX CATENATE (TEXT {%d+}\r\nxx" % (MAX_APPEND + 1))
    assert events[-2:] == [
        BadCommand(b"a", "APPEND message too large", fatal=True, code="TOOBIG"),
        CONNECTION_CLOSED,
    ]


def test_catenate_nul_in_text_without_literal8_is_bad() -> None:
    data = b"a APPEND INBOX CATENATE (TEXT {3+}\r\na\x00b)\r\nb NOOP\r\n"
    for chunks in splits(data, exhaustive=True):
        # the octets before the NUL may already have gone out as a chunk
        events = [e for e in run(chunks) if not isinstance(e, LiteralChunk)]
        assert events == [
            AppendCommand(b"a", (), None, 0, False, False, True, mailbox=b"INBOX"),
            CatenateText(b"a", 3, False),
            BadCommand(b"a", "NUL in APPEND literal"),
            NoopCommand(b"b"),
        ]


def test_rejected_catenate_text_ends_the_command() -> None:
    data = b"a APPEND INBOX CATENATE (URL /x TEXT {5}\r\nb NOOP\r\n"
    assert check(data, react=_reject) == [
        AppendCommand(b"a", (), None, 0, False, False, True, mailbox=b"INBOX"),
        CatenateUrl(b"/x"),
        CatenateText(b"a", 5, True),
        NoopCommand(b"b"),
    ]
