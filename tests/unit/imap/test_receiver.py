"""The IMAP receiver: bytes in, events out, however the bytes are split.

Every transcript is fed whole, one byte at a time and split at every position
(sampled for long ones) and must give the same events; consecutive
``LiteralChunk`` events are merged first since their boundaries follow the
reads. The session side is simulated by ``_react``.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightmail.imap.wire.commands import (
    AppendCommand,
    AuthenticateCommand,
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    ExpungeCommand,
    FetchCommand,
    IdCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    RenameCommand,
    SearchCommand,
    SelectCommand,
    StartTlsCommand,
    StatusCommand,
    StoreCommand,
    SubscribeCommand,
    UidExpungeCommand,
    UnselectCommand,
    UnsubscribeCommand,
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
from lightmail.imap.wire.types import (
    STAR,
    AddressKey,
    AllKey,
    AndKey,
    BodySection,
    DateKey,
    FetchAttribute,
    FetchItem,
    FlagKey,
    HeaderKey,
    NotKey,
    OrKey,
    SearchKey,
    SectionText,
    SequenceKey,
    SequenceSet,
    SizeKey,
    TextKey,
)

MAX_APPEND = 1 << 20
SMALL = {"max_line": 1024, "max_literal": 1024, "max_append": MAX_APPEND}

# --------------------------------------------------------------------------- harness

React = Callable[[Receiver, Event], None]


def _react(r: Receiver, event: Event) -> None:
    """What a session does after each event (accept APPENDs it can take)."""
    if isinstance(event, AppendCommand):
        if event.size <= MAX_APPEND:
            r.accept_literal()
        else:
            r.reject_literal()
    elif isinstance(event, IdleCommand):
        r.start_idle()
    elif isinstance(event, AuthenticateCommand) and event.initial_response is None:
        r.expect_sasl_response()


def _reject(r: Receiver, event: Event) -> None:
    if isinstance(event, AppendCommand):
        r.reject_literal()
    else:
        _react(r, event)


def _merge(events: list[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        if isinstance(event, LiteralChunk) and merged and isinstance(merged[-1], LiteralChunk):
            merged[-1] = LiteralChunk(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def run(
    chunks: Iterable[bytes],
    *,
    eof: bool = False,
    react: React = _react,
    limits: dict[str, int] | None = None,
) -> list[Event]:
    r = Receiver(**(limits or {"max_append": MAX_APPEND}))
    events: list[Event] = []

    def drain() -> bool:
        for _ in range(100_000):  # a bound, so a receiver bug cannot hang the tests
            event = r.next_event()
            if event is NEED_DATA:
                return True
            events.append(event)
            if event is CONNECTION_CLOSED:
                return False
            react(r, event)
        raise AssertionError("next_event never returned NEED_DATA")

    for chunk in chunks:
        if not chunk:  # b"" would mean EOF
            continue
        r.receive_data(chunk)
        if not drain():
            return _merge(events)
    if eof:
        r.receive_data(b"")
        drain()
    return _merge(events)


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
    data: bytes,
    *,
    eof: bool = False,
    react: React = _react,
    limits: dict[str, int] | None = None,
) -> list[Event]:
    """Events for ``data``, asserting they are the same for every way of splitting it."""
    expected = run([data], eof=eof, react=react, limits=limits)
    for chunks in splits(data, exhaustive=len(data) <= 600):
        assert run(chunks, eof=eof, react=react, limits=limits) == expected, chunks
    return expected


def one(data: bytes) -> Event:
    events = check(data)
    assert len(events) == 1, events
    return events[0]


def seq(*ranges: tuple[int | str, int | str]) -> SequenceSet:
    return SequenceSet(tuple((STAR if a == "*" else a, STAR if b == "*" else b) for a, b in ranges))  # type: ignore[misc]


def bad(data: bytes) -> BadCommand:
    """``data`` is one bad command; the receiver then still parses the next one."""
    events = check(data + b"zz9 NOOP\r\n")
    assert events[-1] == NoopCommand(b"zz9"), events
    bads = [e for e in events if isinstance(e, BadCommand)]
    assert len(bads) == 1, events
    assert len(events) in (2, 3), events  # maybe a ContinuationRequest before the BAD
    assert not bads[0].fatal
    return bads[0]


# --------------------------------------------------------------------------- RFC 3501 section 8


def test_rfc3501_section8_client_lines() -> None:
    transcript = (
        b"a001 login mrc secret\r\n"
        b"a002 select inbox\r\n"
        b"a003 fetch 12 full\r\n"
        b"a004 fetch 12 body[header]\r\n"
        b"a005 store 12 +flags \\deleted\r\n"
        b"a006 logout\r\n"
    )
    full = (
        FetchItem.FLAGS,
        FetchItem.INTERNALDATE,
        FetchItem.RFC822_SIZE,
        FetchItem.ENVELOPE,
        FetchItem.BODY,
    )
    assert check(transcript) == [
        LoginCommand(b"a001", b"mrc", b"secret"),
        SelectCommand(b"a002", b"INBOX"),
        FetchCommand(b"a003", False, seq((12, 12)), full),
        FetchCommand(b"a004", False, seq((12, 12)), (BodySection(text=SectionText.HEADER),)),
        StoreCommand(b"a005", False, seq((12, 12)), "add", False, (b"\\Deleted",)),
        LogoutCommand(b"a006"),
    ]


# --------------------------------------------------------------------------- every command

SIMPLE_COMMANDS: list[tuple[bytes, Event]] = [
    (b"abcd CAPABILITY\r\n", CapabilityCommand(b"abcd")),
    (b"a002 NOOP\r\n", NoopCommand(b"a002")),
    (b"A023 LOGOUT\r\n", LogoutCommand(b"A023")),
    (b"a002 STARTTLS\r\n", StartTlsCommand(b"a002")),
    (b"A001 LOGIN SMITH SACRED\r\n", LoginCommand(b"A001", b"SMITH", b"SACRED")),
    (b'A1 login "a\\"b\\\\c" ""\r\n', LoginCommand(b"A1", b'a"b\\c', b"")),
    (b"A1 LOGIN u]ser p]w\r\n", LoginCommand(b"A1", b"u]ser", b"p]w")),
    (b"A142 SELECT INBOX\r\n", SelectCommand(b"A142", b"INBOX")),
    (b'A142 SELECT "iNbOx"\r\n', SelectCommand(b"A142", b"INBOX")),
    (b"A142 SELECT INBOX.sub\r\n", SelectCommand(b"A142", b"INBOX.sub")),
    (b"A932 EXAMINE blurdybloop\r\n", SelectCommand(b"A932", b"blurdybloop", readonly=True)),
    (b"A003 CREATE owatagusiam/\r\n", CreateCommand(b"A003", b"owatagusiam/")),
    (b"A683 DELETE blurdybloop\r\n", DeleteCommand(b"A683", b"blurdybloop")),
    (b"A683 RENAME blurdybloop sarasoop\r\n", RenameCommand(b"A683", b"blurdybloop", b"sarasoop")),
    (
        b"A002 SUBSCRIBE #news.comp.mail.mime\r\n",
        SubscribeCommand(b"A002", b"#news.comp.mail.mime"),
    ),
    (
        b"A002 UNSUBSCRIBE #news.comp.mail.mime\r\n",
        UnsubscribeCommand(b"A002", b"#news.comp.mail.mime"),
    ),
    (b'A101 LIST "" ""\r\n', ListCommand(b"A101", b"", b"")),
    (b"A202 LIST ~/Mail/ %\r\n", ListCommand(b"A202", b"~/Mail/", b"%")),
    (b'A1 LIST "" *\r\n', ListCommand(b"A1", b"", b"*")),
    (b"A1 LIST foo ]*%x\r\n", ListCommand(b"A1", b"foo", b"]*%x")),
    (
        b'A1 LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN special-use)\r\n',
        ListCommand(b"A1", b"", b"*", ("SUBSCRIBED",), ("CHILDREN", "SPECIAL-USE")),
    ),
    (b'A1 LIST "" "%" RETURN ()\r\n', ListCommand(b"A1", b"", b"%")),
    (b'A002 LSUB "#news." "comp.mail.*"\r\n', LsubCommand(b"A002", b"#news.", b"comp.mail.*")),
    (
        b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
        StatusCommand(b"A042", b"blurdybloop", ("UIDNEXT", "MESSAGES")),
    ),
    (
        b"A042 STATUS inbox (messages recent uidnext uidvalidity unseen)\r\n",
        StatusCommand(
            b"A042", b"INBOX", ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")
        ),
    ),
    (b"FXXZ CHECK\r\n", CheckCommand(b"FXXZ")),
    (b"A341 CLOSE\r\n", CloseCommand(b"A341")),
    (b"A341 unselect\r\n", UnselectCommand(b"A341")),
    (b"A202 EXPUNGE\r\n", ExpungeCommand(b"A202")),
    (b"A202 UID EXPUNGE 3000:3002\r\n", UidExpungeCommand(b"A202", seq((3000, 3002)))),
    (b"A003 COPY 2:4 MEETING\r\n", CopyCommand(b"A003", False, seq((2, 4)), b"MEETING")),
    (b"A003 UID COPY 2:4 inbox\r\n", CopyCommand(b"A003", True, seq((2, 4)), b"INBOX")),
    (b"a MOVE 1:3 Trash\r\n", MoveCommand(b"a", False, seq((1, 3)), b"Trash")),
    (b"a uid move 42 {5+}\r\nTrash\r\n", MoveCommand(b"a", True, seq((42, 42)), b"Trash")),
    (b"a NAMESPACE\r\n", NamespaceCommand(b"a")),
    (b"a IDLE\r\nDONE\r\n", IdleCommand(b"a")),
    (b"a ENABLE CONDSTORE x-good-idea\r\n", EnableCommand(b"a", ("CONDSTORE", "X-GOOD-IDEA"))),
    (b"a ID NIL\r\n", IdCommand(b"a", None)),
    (b"a ID ()\r\n", IdCommand(b"a", ())),
    (
        b'a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")\r\n',
        IdCommand(
            b"a023",
            ((b"name", b"sodr"), (b"version", b"19.34"), (b"vendor", b"Pink Floyd Music Limited")),
        ),
    ),
    (b'a ID ("os" NIL "x" {2}\r\nab)\r\n', IdCommand(b"a", ((b"os", None), (b"x", b"ab")))),
    (
        b"a AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0\r\n",
        AuthenticateCommand(b"a", "PLAIN", b"AGZyZWQAc2VjcmV0"),
    ),
    (b"a AUTHENTICATE plain =\r\n", AuthenticateCommand(b"a", "PLAIN", b"")),
    (b"a AUTHENTICATE XOAUTH2 dXNlcj0=\r\n", AuthenticateCommand(b"a", "XOAUTH2", b"dXNlcj0=")),
    (b"a1.b]c CAPABILITY\r\n", CapabilityCommand(b"a1.b]c")),
]


@pytest.mark.parametrize(("data", "expected"), SIMPLE_COMMANDS)
def test_command(data: bytes, expected: Event) -> None:
    events = [e for e in check(data) if not isinstance(e, ContinuationRequest)]
    assert events[0] == expected


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
        AppendCommand(b"A003", b"saved-messages", (b"\\Seen",), None, len(MESSAGE), True),
        LiteralChunk(MESSAGE),
        AppendEnd(b"A003"),
        NoopCommand(b"b"),
    ]


def test_append_sync_rejected_literal_never_comes() -> None:
    data = b"A003 APPEND nowhere {%d}\r\nb NOOP\r\n" % len(MESSAGE)
    assert check(data, react=_reject) == [
        AppendCommand(b"A003", b"nowhere", (), None, len(MESSAGE), True),
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
        AppendCommand(b"a", b"INBOX", (), when, len(MESSAGE), False),
        LiteralChunk(MESSAGE),
        AppendEnd(b"a"),
    ]


def test_append_non_sync_rejected_is_discarded() -> None:
    smuggled = b"x DELETE INBOX\r\n"
    data = b"a APPEND INBOX {%d+}\r\n" % len(smuggled) + smuggled + b"\r\nb NOOP\r\n"
    assert check(data, react=_reject) == [
        AppendCommand(b"a", b"INBOX", (), None, len(smuggled), False),
        NoopCommand(b"b"),
    ]


def test_append_mailbox_as_literal_and_flags() -> None:
    data = b'a APPEND {5}\r\nDraft (\\draft $Label1) "01-Jan-2024 00:00:00 +0000" {3}\r\nabc\r\n'
    assert check(data) == [
        ContinuationRequest(5),
        AppendCommand(
            b"a",
            b"Draft",
            (b"\\Draft", b"$Label1"),
            datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
            3,
            True,
        ),
        LiteralChunk(b"abc"),
        AppendEnd(b"a"),
    ]


def test_append_empty_message() -> None:
    assert check(b"a APPEND INBOX {0+}\r\n\r\n") == [
        AppendCommand(b"a", b"INBOX", (), None, 0, False),
        AppendEnd(b"a"),
    ]


def test_append_followed_by_garbage_instead_of_crlf() -> None:
    events = check(b"a APPEND INBOX {3+}\r\nabcX Y\r\nb NOOP\r\n")
    assert events == [
        AppendCommand(b"a", b"INBOX", (), None, 3, False),
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
            AppendCommand(b"a", b"INBOX", (), None, 5, False),
            BadCommand(b"a", "NUL in APPEND literal"),
            NoopCommand(b"b"),
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


def test_append_eof_mid_message() -> None:
    assert check(b"a APPEND INBOX {10+}\r\nabc", eof=True) == [
        AppendCommand(b"a", b"INBOX", (), None, 10, False),
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


# --------------------------------------------------------------------------- SEARCH

D = datetime.date(1994, 2, 1)
SEARCH_KEYS: list[tuple[bytes, SearchKey]] = [
    (b"ALL", AllKey()),
    (b"ANSWERED", FlagKey(b"\\Answered")),
    (b'BCC "x y"', AddressKey(b"BCC", b"x y")),
    (b"BEFORE 1-Feb-1994", DateKey("before", D, sent=False)),
    (b"BODY {3}\r\nz\r\n", TextKey(b"z\r\n", whole_message=False)),
    (b"CC x", AddressKey(b"CC", b"x")),
    (b"DELETED", FlagKey(b"\\Deleted")),
    (b"DRAFT", FlagKey(b"\\Draft")),
    (b"FLAGGED", FlagKey(b"\\Flagged")),
    (b"FROM Smith", AddressKey(b"FROM", b"Smith")),
    (b"HEADER X-Spam-Flag YES", HeaderKey(b"X-Spam-Flag", b"YES")),
    (b'HEADER "Message-ID" ""', HeaderKey(b"Message-ID", b"")),
    (b"KEYWORD $Junk", FlagKey(b"$Junk")),
    (b"LARGER 1024", SizeKey("larger", 1024)),
    (b"NEW", AndKey((FlagKey(b"\\Recent"), FlagKey(b"\\Seen", present=False)))),
    (b"NOT SEEN", NotKey(FlagKey(b"\\Seen"))),
    (b"OLD", NotKey(FlagKey(b"\\Recent"))),
    (b'ON "01-Feb-1994"', DateKey("on", D, sent=False)),
    (b"OR SEEN DRAFT", OrKey(FlagKey(b"\\Seen"), FlagKey(b"\\Draft"))),
    (b"RECENT", FlagKey(b"\\Recent")),
    (b"SEEN", FlagKey(b"\\Seen")),
    (b"SENTBEFORE 1-feb-1994", DateKey("before", D, sent=True)),
    (b"SENTON 01-FEB-1994", DateKey("on", D, sent=True)),
    (b"SENTSINCE 1-Feb-1994", DateKey("since", D, sent=True)),
    (b"SINCE 1-Feb-1994", DateKey("since", D, sent=False)),
    (b"SMALLER 0", SizeKey("smaller", 0)),
    (b"SUBJECT hello", HeaderKey(b"SUBJECT", b"hello")),
    (b'TEXT "string not in mailbox"', TextKey(b"string not in mailbox", whole_message=True)),
    (b"TO x", AddressKey(b"TO", b"x")),
    (b"UID 1:*", SequenceKey(seq((1, "*")), uid=True)),
    (b"UNANSWERED", FlagKey(b"\\Answered", present=False)),
    (b"UNDELETED", FlagKey(b"\\Deleted", present=False)),
    (b"UNDRAFT", FlagKey(b"\\Draft", present=False)),
    (b"UNFLAGGED", FlagKey(b"\\Flagged", present=False)),
    (b"UNKEYWORD $Junk", FlagKey(b"$Junk", present=False)),
    (b"UNSEEN", FlagKey(b"\\Seen", present=False)),
    (b"2,4:7,9,12:*", SequenceKey(seq((2, 2), (4, 7), (9, 9), (12, "*")), uid=False)),
    (b"*", SequenceKey(seq(("*", "*")), uid=False)),
    (b"(SEEN)", FlagKey(b"\\Seen")),
    (b"(seen unanswered)", AndKey((FlagKey(b"\\Seen"), FlagKey(b"\\Answered", present=False)))),
    (
        b"OR (NOT FROM a) (OR TO b CC {1+}\r\nc)",
        OrKey(
            NotKey(AddressKey(b"FROM", b"a")),
            OrKey(AddressKey(b"TO", b"b"), AddressKey(b"CC", b"c")),
        ),
    ),
    (b"NOT NOT (ALL)", NotKey(NotKey(AllKey()))),
]


@pytest.mark.parametrize(("text", "key"), SEARCH_KEYS)
def test_search_key(text: bytes, key: SearchKey) -> None:
    events = [
        e for e in check(b"s SEARCH " + text + b"\r\n") if not isinstance(e, ContinuationRequest)
    ]
    assert events == [SearchCommand(b"s", False, None, key)]


def test_search_rfc_example_and_uid_and_charset() -> None:
    assert one(b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n') == SearchCommand(
        b"A282",
        False,
        None,
        AndKey(
            (
                FlagKey(b"\\Flagged"),
                DateKey("since", D, False),
                NotKey(AddressKey(b"FROM", b"Smith")),
            )
        ),
    )
    text = "XYZ日本".encode()
    assert check(b"A284 uid search charset utf-8 TEXT {%d}\r\n" % len(text) + text + b"\r\n") == [
        ContinuationRequest(len(text)),
        SearchCommand(b"A284", True, "UTF-8", TextKey(text, whole_message=True)),
    ]
    assert one(b'a SEARCH CHARSET UTF-8 SUBJECT "caf\xc3\xa9"\r\n') == SearchCommand(
        b"a", False, "UTF-8", HeaderKey(b"SUBJECT", "café".encode())
    )


@pytest.mark.parametrize(
    "data",
    [
        b"a SEARCH\r\n",
        b"a SEARCH \r\n",
        b"a SEARCH FOO\r\n",
        b"a SEARCH ALL \r\n",
        b"a SEARCH ALLX\r\n",
        b"a SEARCH FROM\r\n",
        b"a SEARCH OR SEEN\r\n",
        b"a SEARCH (SEEN\r\n",
        b"a SEARCH ()\r\n",
        b"a SEARCH SINCE 31-Feb-2020\r\n",
        b"a SEARCH SINCE 1-Fbr-2020\r\n",
        b'a SEARCH SINCE "1-Feb-2020\r\n',
        b"a SEARCH LARGER -1\r\n",
        b"a SEARCH LARGER 4294967296\r\n",
        b"a SEARCH KEYWORD \\Seen\r\n",
        b'a SEARCH SUBJECT "caf\xc3\xa9"\r\n',  # 8-bit quoted needs a CHARSET
        b"a SEARCH CHARSET UTF-8\r\n",
        b"a SEARCH 0\r\n",
        b"a SEARCH 1:0\r\n",
        b"a SEARCH 01\r\n",
        b"a SEARCH 1,\r\n",
        b"a SEARCH $\r\n",
    ],
)
def test_search_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


def test_deep_nesting_parentheses() -> None:
    assert bad(b"a SEARCH " + b"(" * 10000 + b"ALL" + b")" * 10000 + b"\r\n").tag == b"a"


def test_deep_nesting_not() -> None:
    assert bad(b"a SEARCH " + b"NOT " * 10000 + b"ALL\r\n").tag == b"a"


def test_nesting_within_max_depth() -> None:
    key: SearchKey = AllKey()
    for _ in range(20):
        key = NotKey(key)
    assert one(b"a SEARCH " + b"NOT " * 20 + b"ALL\r\n") == SearchCommand(b"a", False, None, key)


def test_too_many_search_keys_is_bad_and_the_next_command_is_read() -> None:
    r = Receiver(max_search_keys=3)
    r.receive_data(b"a SEARCH OR SEEN ALL\r\nb SEARCH NOT OR SEEN ALL\r\nc NOOP\r\n")
    assert r.next_event() == SearchCommand(b"a", False, None, OrKey(FlagKey(b"\\Seen"), AllKey()))
    event = r.next_event()
    assert isinstance(event, BadCommand)
    assert (event.tag, event.fatal) == (b"b", False)
    assert "too many search keys (at most 3)" in event.text
    assert r.next_event() == NoopCommand(b"c")


def test_search_key_limit_counts_every_key() -> None:
    r = Receiver()  # the default: 100
    keys = b" ".join([b"TEXT q"] * 100)
    r.receive_data(b"a SEARCH " + keys + b"\r\nb SEARCH ALL " + keys + b"\r\n")
    assert isinstance(r.next_event(), SearchCommand)
    assert isinstance(r.next_event(), BadCommand)
    with pytest.raises(ValueError, match="max_search_keys"):
        Receiver(max_search_keys=0)


# --------------------------------------------------------------------------- FETCH

FETCH_ATTRIBUTES: list[tuple[bytes, tuple[FetchAttribute, ...]]] = [
    (b"ALL", (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE, FetchItem.ENVELOPE)),
    (b"fast", (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE)),
    (b"FLAGS", (FetchItem.FLAGS,)),
    (b"INTERNALDATE", (FetchItem.INTERNALDATE,)),
    (b"RFC822.SIZE", (FetchItem.RFC822_SIZE,)),
    (b"ENVELOPE", (FetchItem.ENVELOPE,)),
    (b"BODYSTRUCTURE", (FetchItem.BODYSTRUCTURE,)),
    (b"BODY", (FetchItem.BODY,)),
    (b"UID", (FetchItem.UID,)),
    (b"RFC822", (FetchItem.RFC822,)),
    (b"rfc822.header", (FetchItem.RFC822_HEADER,)),
    (b"RFC822.TEXT", (FetchItem.RFC822_TEXT,)),
    (b"BODY[]", (BodySection(),)),
    (b"BODY.PEEK[]", (BodySection(peek=True),)),
    (b"body[header]", (BodySection(text=SectionText.HEADER),)),
    (b"BODY[TEXT]", (BodySection(text=SectionText.TEXT),)),
    (b"BODY[1]", (BodySection(part=(1,)),)),
    (b"BODY[1.2.3]", (BodySection(part=(1, 2, 3)),)),
    (b"BODY[1.MIME]", (BodySection(part=(1,), text=SectionText.MIME),)),
    (b"BODY[4.2.HEADER]", (BodySection(part=(4, 2), text=SectionText.HEADER),)),
    (b"BODY[3.TEXT]", (BodySection(part=(3,), text=SectionText.TEXT),)),
    (
        b"BODY[HEADER.FIELDS (DATE FROM)]",
        (BodySection(text=SectionText.HEADER_FIELDS, fields=(b"DATE", b"FROM")),),
    ),
    (
        b'BODY.PEEK[2.HEADER.FIELDS.NOT ("Received" X-Spam)]<0.2048>',
        (
            BodySection(
                peek=True,
                part=(2,),
                text=SectionText.HEADER_FIELDS_NOT,
                fields=(b"Received", b"X-Spam"),
                partial=(0, 2048),
            ),
        ),
    ),
    (b"BODY[]<100.1>", (BodySection(partial=(100, 1)),)),
    (b"(UID FLAGS)", (FetchItem.UID, FetchItem.FLAGS)),
    (
        b"(FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
        (FetchItem.FLAGS, BodySection(text=SectionText.HEADER_FIELDS, fields=(b"DATE", b"FROM"))),
    ),
]


@pytest.mark.parametrize(("text", "attributes"), FETCH_ATTRIBUTES)
def test_fetch_attributes(text: bytes, attributes: tuple[FetchAttribute, ...]) -> None:
    assert one(b"f FETCH 2:4 " + text + b"\r\n") == FetchCommand(
        b"f", False, seq((2, 4)), attributes
    )


def test_uid_fetch() -> None:
    assert one(b"A999 UID FETCH 4827313:4828442 FLAGS\r\n") == FetchCommand(
        b"A999", True, seq((4827313, 4828442)), (FetchItem.FLAGS,)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"1", seq((1, 1))),
        (b"*", seq(("*", "*"))),
        (b"1:*", seq((1, "*"))),
        (b"*:4", seq(("*", 4))),
        (b"4:2", seq((4, 2))),
        (b"2,4:7,9,12:*", seq((2, 2), (4, 7), (9, 9), (12, "*"))),
        (b"4294967295", seq((4294967295, 4294967295))),
    ],
)
def test_sequence_sets(text: bytes, expected: SequenceSet) -> None:
    assert one(b"c COPY " + text + b" x\r\n") == CopyCommand(b"c", False, expected, b"x")


@pytest.mark.parametrize(
    "data",
    [
        b"a FETCH 1\r\n",
        b"a FETCH 1 \r\n",
        b"a FETCH 1 FOO\r\n",
        b"a FETCH 1 ()\r\n",
        b"a FETCH 1 (ALL)\r\n",
        b"a FETCH 1 (FLAGS\r\n",
        b"a FETCH 1 (FLAGS  UID)\r\n",
        b"a FETCH 1 BODY.PEEK\r\n",
        b"a FETCH 1 BODY[MIME]\r\n",
        b"a FETCH 1 BODY[1.]\r\n",
        b"a FETCH 1 BODY[0]\r\n",
        b"a FETCH 1 BODY[1.HEADER.FIELDS]\r\n",
        b"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n",
        b"a FETCH 1 BODY[]<0.0>\r\n",
        b"a FETCH 1 BODY[]<0>\r\n",
        b"a FETCH 1 BODY[HEADER\r\n",
        b"a FETCH 4294967296 FLAGS\r\n",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 12345)\r\n",
    ],
)
def test_fetch_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


# --------------------------------------------------------------------------- STORE

STORES: list[tuple[bytes, StoreCommand]] = [
    (
        b"A003 STORE 2:4 +FLAGS (\\Deleted)",
        StoreCommand(b"A003", False, seq((2, 4)), "add", False, (b"\\Deleted",)),
    ),
    (
        b"A3 UID STORE 1 -FLAGS.SILENT (\\seen $Junk)",
        StoreCommand(b"A3", True, seq((1, 1)), "remove", True, (b"\\Seen", b"$Junk")),
    ),
    (b"A3 STORE * FLAGS ()", StoreCommand(b"A3", False, seq(("*", "*")), "replace", False, ())),
    (
        b"A3 store 1 flags.silent \\Answered \\X-Ext kw",
        StoreCommand(
            b"A3", False, seq((1, 1)), "replace", True, (b"\\Answered", b"\\X-Ext", b"kw")
        ),
    ),
]


@pytest.mark.parametrize(("data", "expected"), STORES)
def test_store(data: bytes, expected: StoreCommand) -> None:
    assert one(data + b"\r\n") == expected


@pytest.mark.parametrize(
    "data",
    [
        b"a STORE 1 FLAGS\r\n",
        b"a STORE 1 +FLAGS \r\n",
        b"a STORE 1 *FLAGS (x)\r\n",
        b"a STORE 1 FLAGS.LOUD (x)\r\n",
        b"a STORE 1 FLAGS (\\*)\r\n",
        b'a STORE 1 FLAGS ("x")\r\n',
        b"a STORE 1 FLAGS (a b\r\n",
    ],
)
def test_store_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("data", "tag"),
    [
        (b"\r\n", None),
        (b"   \r\n", None),
        (b"\x01\x02\x03\r\n", None),
        (b"+ NOOP\r\n", None),
        (b"* NOOP\r\n", None),
        (b"(a) NOOP\r\n", None),
        (b'"a" NOOP\r\n', None),
        (b"abc\r\n", b"abc"),
        (b"abc \r\n", b"abc"),
        (b"a  NOOP\r\n", b"a"),
        (b"a NOOP \r\n", b"a"),
        (b"a NOOP extra\r\n", b"a"),
        (b"a FROBNICATE\r\n", b"a"),
        (b"a UID\r\n", b"a"),
        (b"a UID LOGIN x y\r\n", b"a"),
        (b"a UID NOOP\r\n", b"a"),
        (b"a NO\x00OP\r\n", b"a"),
        (b"\x00\r\n", None),
        (b"a SELECT caf\xc3\xa9\r\n", b"a"),
        (b'a SELECT "caf\xc3\xa9"\r\n', b"a"),
        (b"a\xff NOOP\r\n", None),
        (b"a NOOP\n", b"a"),
        (b"a NOOP\r\r\n", b"a"),
        (b'a LOGIN "unterminated\r\n', b"a"),
        (b'a LOGIN "bad\\escape" x\r\n', b"a"),
        (b"a LOGIN {3}x\r\n", b"a"),
        (b"a LOGIN x\r\n", b"a"),
        (b"a STATUS INBOX (FOO)\r\n", b"a"),
        (b"a STATUS INBOX ()\r\n", b"a"),
        (b"a SELECT INBOX (CONDSTORE)\r\n", b"a"),
        (b"a LIST (\r\n", b"a"),
        (b'a LIST "" ("a" "b")\r\n', b"a"),
        (b'a LIST "" x RETURN\r\n', b"a"),
        (b"a ENABLE\r\n", b"a"),
        (b'a ID ("x")\r\n', b"a"),
        (b"a ID\r\n", b"a"),
        (b"a AUTHENTICATE\r\n", b"a"),
        (b"a AUTHENTICATE PLAIN abc\r\n", b"a"),
        (b"a AUTHENTICATE PLAIN ====\r\n", b"a"),
        (b"a COPY 1\r\n", b"a"),
        (b"a EXPUNGE 1\r\n", b"a"),
        (b"a UID EXPUNGE\r\n", b"a"),
        (b"a RENAME x\r\n", b"a"),
    ],
)
def test_bad_command(data: bytes, tag: bytes | None) -> None:
    result = bad(data)
    assert result.tag == tag
    assert result.text.isascii()
    assert "\r" not in result.text
    assert "\n" not in result.text


# --------------------------------------------------------------------------- leniency


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # aioimaplib's ID: spaces inside the parentheses (Dovecot accepts them too).
        (
            b'a ID ( "name" "aioimaplib" "version" "2.0" )\r\n',
            IdCommand(b"a", ((b"name", b"aioimaplib"), (b"version", b"2.0"))),
        ),
        (b'a ID (  "os" NIL)\r\n', IdCommand(b"a", ((b"os", None),))),
        (b'a ID ("os" NIL   )\r\n', IdCommand(b"a", ((b"os", None),))),
        (b"a ID ( )\r\n", IdCommand(b"a", ())),
        (
            b"a STORE 1 +FLAGS ( \\Seen $Junk )\r\n",
            StoreCommand(b"a", False, seq((1, 1)), "add", False, (b"\\Seen", b"$Junk")),
        ),
        (b"a STORE 1 FLAGS ( )\r\n", StoreCommand(b"a", False, seq((1, 1)), "replace", False, ())),
        (
            b"a UID STORE 7 -FLAGS.SILENT (\\Deleted )\r\n",
            StoreCommand(b"a", True, seq((7, 7)), "remove", True, (b"\\Deleted",)),
        ),
    ],
)
def test_spaces_inside_id_and_flag_list_parentheses(data: bytes, expected: Event) -> None:
    assert one(data) == expected


def test_spaces_inside_append_flag_list() -> None:
    data = b"a APPEND INBOX ( \\Seen \\Draft ) {3}\r\nabc\r\n"
    assert check(data) == [
        AppendCommand(b"a", b"INBOX", (b"\\Seen", b"\\Draft"), None, 3, True),
        LiteralChunk(b"abc"),
        AppendEnd(b"a"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        # Between elements exactly one SP, as before: two could hide a lost element.
        b'a ID ("name"  "x")\r\n',
        b'a ID ("name" "x"  "os" NIL)\r\n',
        b"a STORE 1 FLAGS (\\Seen  \\Draft)\r\n",
        # No spaces outside the parentheses, and no list left open.
        b'a ID  ("name" "x")\r\n',
        b'a ID ("name" "x" \r\n',
        b"a STORE 1 FLAGS ( \r\n",
        b"a STORE 1 FLAGS (\\Seen )x\r\n",
        b"a APPEND INBOX (\\Seen  \\Draft) {3}\r\n",
    ],
)
def test_spaces_still_refused_where_ambiguous(data: bytes) -> None:
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


def test_charset_must_be_ascii() -> None:
    assert bad(b"a SEARCH CHARSET {3+}\r\n\xff\xfe\xfd ALL\r\n").tag == b"a"


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
