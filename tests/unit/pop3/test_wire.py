"""The POP3 wire layer: bytes in, events out, however the bytes are split.

Every transcript is fed whole, one byte at a time and split at every position
and must give the same events. The session is simulated by ``_sasl``: after
an ``AuthCommand`` with a mechanism and no initial response it expects one
SASL response (``_sasl_multi``: and after each ``SaslResponse`` other than
``*`` or ``""``, one more).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightmail.auth.sasl import decode_sasl
from lightmail.pop3.wire import (
    CONNECTION_CLOSED,
    NEED_DATA,
    ApopCommand,
    AuthCommand,
    BadCommand,
    CapaCommand,
    DeleCommand,
    Event,
    ListCommand,
    LocalProtocolError,
    NoopCommand,
    PassCommand,
    Pop3Receiver,
    Pop3Reply,
    QuitCommand,
    RetrCommand,
    RsetCommand,
    SaslResponse,
    StatCommand,
    StlsCommand,
    TopCommand,
    UidlCommand,
    UserCommand,
    continuation,
    err,
    ok,
)

# --------------------------------------------------------------------------- harness

React = Callable[[Pop3Receiver, Event], None]


def _sasl(r: Pop3Receiver, event: Event) -> None:
    """One-step mechanisms (PLAIN): one response after an AUTH without initial response."""
    if isinstance(event, AuthCommand) and event.mechanism and event.initial_response is None:
        r.expect_sasl_response()


def _sasl_multi(r: Pop3Receiver, event: Event) -> None:
    """Multi-step mechanisms: more responses until an empty one or ``*``."""
    _sasl(r, event)
    if isinstance(event, SaslResponse) and event.data not in ("*", ""):
        r.expect_sasl_response()


def _never(r: Pop3Receiver, event: Event) -> None:
    pass


def run(
    chunks: Iterable[bytes], *, eof: bool = False, react: React = _sasl, max_line: int = 255
) -> list[Event]:
    r = Pop3Receiver(max_line=max_line)
    events: list[Event] = []

    def drain() -> bool:
        for _ in range(100_000):
            event = r.next_event()
            if event is NEED_DATA:
                return True
            events.append(event)
            if event is CONNECTION_CLOSED:
                assert r.next_event() is CONNECTION_CLOSED
                return False
            react(r, event)
        raise AssertionError("next_event never returned NEED_DATA")

    for chunk in chunks:
        r.receive_data(chunk)
        if not drain():
            return events
    if eof:
        r.receive_data(b"")
        drain()
    return events


def splits(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def check(data: bytes, *, eof: bool = False, react: React = _sasl) -> list[Event]:
    """Events for ``data``, asserting they are the same for every way of splitting it."""
    expected = run([data], eof=eof, react=react)
    for chunks in splits(data):
        assert run(chunks, eof=eof, react=react) == expected, chunks
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


# --------------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    ("line", "event"),
    [
        (b"USER alice\r\n", UserCommand("alice")),
        (b"user alice@example.org\r\n", UserCommand("alice@example.org")),
        (b"PASS secret\r\n", PassCommand("secret")),
        (b"CAPA\r\n", CapaCommand()),
        (b"STLS\r\n", StlsCommand()),
        (b"STAT\r\n", StatCommand()),
        (b"LIST\r\n", ListCommand(None)),
        (b"LIST 1\r\n", ListCommand(1)),
        (b"LIST 0042\r\n", ListCommand(42)),
        (b"RETR 7\r\n", RetrCommand(7)),
        (b"TOP 3 0\r\n", TopCommand(3, 0)),
        (b"TOP 3 10\r\n", TopCommand(3, 10)),
        (b"UIDL\r\n", UidlCommand(None)),
        (b"UIDL 12\r\n", UidlCommand(12)),
        (b"NOOP\r\n", NoopCommand()),
        (b"RSET\r\n", RsetCommand()),
        (b"DELE 2\r\n", DeleCommand(2)),
        (b"QUIT\r\n", QuitCommand()),
        (b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n", ApopCommand()),
        (b"APOP\r\n", ApopCommand()),
        (b"AUTH\r\n", AuthCommand(None, None)),
        (b"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n", AuthCommand("PLAIN", "dGVzdAB0ZXN0AHRlc3Q=")),
        (b"AUTH PLAIN =\r\n", AuthCommand("PLAIN", "")),
        (b"auth plain\r\n", AuthCommand("PLAIN", None)),
        (b"AUTH SCRAM-SHA-256\r\n", AuthCommand("SCRAM-SHA-256", None)),
        # tolerance: bare LF, extra and trailing spaces
        (b"STAT\n", StatCommand()),
        (b"RETR   7  \r\n", RetrCommand(7)),
        (b"TOP 1  2\t\r\n", TopCommand(1, 2)),
        (b"QUIT \r\n", QuitCommand()),
    ],
)
def test_command(line: bytes, event: Event) -> None:
    assert one(line) == event


@pytest.mark.parametrize(
    "keyword",
    [
        *(b"user X", b"User X", b"uSeR X", b"capa", b"Capa", b"stls", b"stat", b"list 1"),
        *(b"retr 1", b"top 1 1", b"uidl", b"noop", b"rset", b"dele 1", b"quit", b"apop"),
        *(b"auth", b"ToP 1 1", b"pass X"),
    ],
)
def test_keywords_are_case_insensitive(keyword: bytes) -> None:
    upper = run([keyword.upper() + b"\r\n"])
    assert one(keyword + b"\r\n") == upper[0]
    assert not isinstance(upper[0], BadCommand)


@pytest.mark.parametrize(
    ("line", "password"),
    [
        (b"PASS secret\r\n", "secret"),
        (b"pass secret\r\n", "secret"),
        (b"PASS correct horse battery staple\r\n", "correct horse battery staple"),
        (b"PASS  lead\r\n", " lead"),
        (b"PASS trail  \r\n", "trail  "),
        (b"PASS  \r\n", " "),
        (b"PASS p\xc3\xa4ss w\xc3\xb6rd\r\n", "päss wörd"),
        (b"PASS [x]:=*.\"'\\\r\n", "[x]:=*.\"'\\"),
        (b"PASS secret\n", "secret"),
    ],
)
def test_pass_is_verbatim(line: bytes, password: str) -> None:
    assert one(line) == PassCommand(password)


def test_pass_repr_hides_the_password() -> None:
    assert "secret" not in repr(PassCommand("secret"))
    assert "c2VjcmV0" not in repr(AuthCommand("PLAIN", "c2VjcmV0"))
    assert "c2VjcmV0" not in repr(SaslResponse("c2VjcmV0"))


@pytest.mark.parametrize(
    "line",
    [
        b"PASS\r\n",
        b"PASS \r\n",
        b"PASS\t\r\n",
        b"PASS a\x00b\r\n",
        b"PASS a\tb\r\n",
        b"PASS a\rb\r\n",
        b"PASS a\r\r\n",
        b"PASS a\x7fb\r\n",
        b"PASS \xff\xfe\r\n",
        b"PASS \xc3\r\n",
    ],
)
def test_bad_pass(line: bytes) -> None:
    bad(line)


@pytest.mark.parametrize(
    "line",
    [
        # unknown or malformed keywords
        b"\r\n",
        b"\n",
        b"XYZZY\r\n",
        b"HELO\r\n",
        b"LI\r\n",
        b"LISTS\r\n",
        b" NOOP\r\n",
        b"NO0P\r\n",
        b"1234\r\n",
        b"PAS secret\r\n",
        # missing arguments
        b"USER\r\n",
        b"RETR\r\n",
        b"DELE\r\n",
        b"TOP\r\n",
        b"TOP 1\r\n",
        # extra arguments
        b"USER a b\r\n",
        b"STAT 1\r\n",
        b"CAPA x\r\n",
        b"STLS x\r\n",
        b"NOOP x\r\n",
        b"RSET x\r\n",
        b"QUIT now\r\n",
        b"LIST 1 2\r\n",
        b"UIDL 1 2\r\n",
        b"RETR 1 2\r\n",
        b"DELE 1 2\r\n",
        b"TOP 1 2 3\r\n",
        b"AUTH PLAIN a b\r\n",
        # bad message numbers
        b"RETR 0\r\n",
        b"RETR 000\r\n",
        b"RETR +1\r\n",
        b"RETR -1\r\n",
        b"RETR 1.0\r\n",
        b"RETR x\r\n",
        b"RETR 0x1\r\n",
        b"LIST 0\r\n",
        b"UIDL -3\r\n",
        b"DELE +2\r\n",
        b"TOP 0 1\r\n",
        b"TOP 1 -1\r\n",
        b"TOP 1 +1\r\n",
        b"TOP x 1\r\n",
        # bad mechanism
        b"AUTH PL@IN\r\n",
        b"AUTH ABCDEFGHIJKLMNOPQRSTU\r\n",
        # invalid characters
        b"NO\x00OP\r\n",
        b"NOOP\x00\r\n",
        b"USER al\xc3\xa9\r\n",
        b"USER a\x01\r\n",
        b"USER a\rb\r\n",
        b"NOOP\r\r\n",
        b"USER\ta\r\n",
        b"\xffNOOP\r\n",
    ],
)
def test_bad_command(line: bytes) -> None:
    bad(line)


def test_bad_command_text_is_safe() -> None:
    event = bad(b"USER \xff\r\n")
    assert event.to_bytes() == b"-ERR Invalid character in command\r\n"


def test_big_message_number() -> None:
    assert one(b"RETR " + b"9" * 100 + b"\r\n") == RetrCommand(int("9" * 100))


# --------------------------------------------------------------------------- line length


def test_longest_line_is_accepted() -> None:
    line = b"USER " + b"a" * 248 + b"\r\n"
    assert len(line) == 255
    assert one(line) == UserCommand("a" * 248)
    line = b"USER " + b"a" * 249 + b"\n"
    assert len(line) == 255
    assert one(line) == UserCommand("a" * 249)


@pytest.mark.parametrize(
    "line",
    [
        b"USER " + b"a" * 249 + b"\r\n",  # 256 octets
        b"USER " + b"a" * 250 + b"\n",
        b"PASS " + b"a" * 249 + b"\r\n",
        b"X" * 1000 + b"\r\n",
        b"NOOP" + b" " * 300 + b"\r\n",
        b"AUTH PLAIN " + b"QUFB" * 70 + b"\r\n",
    ],
)
def test_overlong_line(line: bytes) -> None:
    events = check(line + b"NOOP\r\n")
    assert events == [BadCommand("Command line too long"), NoopCommand()]


def test_overlong_line_at_eof() -> None:
    assert check(b"x" * 300, eof=True) == [BadCommand("Command line too long"), CONNECTION_CLOSED]
    assert check(b"x" * 200, eof=True) == [CONNECTION_CLOSED]


def test_max_line_is_configurable() -> None:
    line = b"USER " + b"a" * 300 + b"\r\n"
    assert run([line], max_line=512) == [UserCommand("a" * 300)]
    with pytest.raises(ValueError, match="max_line"):
        Pop3Receiver(max_line=100)


# --------------------------------------------------------------------------- sequences


def test_session_transcript() -> None:
    data = (
        b"CAPA\r\nUSER mrose\r\nPASS tan staple\r\nSTAT\r\nLIST\r\nLIST 2\nRETR 1\r\n"
        b"TOP 2 5\r\nDELE 1\r\nUIDL\r\nNOOP\r\nRSET\r\nQUIT\r\n"
    )
    assert check(data, eof=True) == [
        CapaCommand(),
        UserCommand("mrose"),
        PassCommand("tan staple"),
        StatCommand(),
        ListCommand(None),
        ListCommand(2),
        RetrCommand(1),
        TopCommand(2, 5),
        DeleCommand(1),
        UidlCommand(None),
        NoopCommand(),
        RsetCommand(),
        QuitCommand(),
        CONNECTION_CLOSED,
    ]


def test_eof_mid_line() -> None:
    assert check(b"NOOP\r\nQU", eof=True) == [NoopCommand(), CONNECTION_CLOSED]
    assert check(b"", eof=True) == [CONNECTION_CLOSED]


def test_receive_after_eof_is_our_bug() -> None:
    r = Pop3Receiver()
    r.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        r.receive_data(b"NOOP\r\n")


def test_buffered_counts_pipelined_bytes_after_stls() -> None:
    r = Pop3Receiver()
    r.receive_data(b"STLS\r\nUSER evil\r\n")
    assert r.next_event() == StlsCommand()
    assert r.buffered == len(b"USER evil\r\n")
    r2 = Pop3Receiver()
    r2.receive_data(b"STLS\r\n")
    assert r2.next_event() == StlsCommand()
    assert r2.buffered == 0


# --------------------------------------------------------------------------- SASL


def test_auth_plain_with_initial_response() -> None:
    ir = base64.b64encode(b"\0alice\0secret").decode()
    assert check(f"AUTH PLAIN {ir}\r\nSTAT\r\n".encode()) == [
        AuthCommand("PLAIN", ir),
        StatCommand(),
    ]
    assert decode_sasl(ir) == b"\0alice\0secret"


def test_auth_empty_initial_response() -> None:
    assert one(b"AUTH PLAIN =\r\n") == AuthCommand("PLAIN", "")
    assert decode_sasl("") == b""


def test_sasl_continuation_flow() -> None:
    response = base64.b64encode(b"\0alice\0s p a c e").decode()
    data = f"AUTH PLAIN\r\n{response}\r\nSTAT\r\n".encode()
    events = check(data)
    assert events == [AuthCommand("PLAIN", None), SaslResponse(response), StatCommand()]
    assert isinstance(events[1], SaslResponse)
    assert not events[1].cancelled


def test_sasl_multi_step_and_empty_response() -> None:
    data = b"AUTH SCRAM-SHA-1\r\nbiwsbj11c2Vy\r\nYz1iaXdz\n\r\nNOOP\r\n"
    assert check(data, react=_sasl_multi) == [
        AuthCommand("SCRAM-SHA-1", None),
        SaslResponse("biwsbj11c2Vy"),
        SaslResponse("Yz1iaXdz"),
        SaslResponse(""),
        NoopCommand(),
    ]


def test_sasl_cancel() -> None:
    events = check(b"AUTH PLAIN\r\n*\r\nNOOP\r\n")
    assert events == [AuthCommand("PLAIN", None), SaslResponse("*"), NoopCommand()]
    assert isinstance(events[1], SaslResponse)
    assert events[1].cancelled


def test_sasl_line_is_only_read_as_such_when_expected() -> None:
    # Without expect_sasl_response the next line is a command.
    events = check(b"AUTH PLAIN\r\nNOOP\r\n", react=_never)
    assert events == [AuthCommand("PLAIN", None), NoopCommand()]
    # With it, a line that looks like a command is a response.
    events = check(b"AUTH PLAIN\r\nQUIT\r\nQUIT\r\n")
    assert events == [AuthCommand("PLAIN", None), SaslResponse("QUIT"), QuitCommand()]


def test_sasl_response_may_exceed_max_line() -> None:
    response = "QUFB" * 1000
    events = check(f"AUTH XOAUTH2\r\n{response}\r\n".encode())
    assert events == [AuthCommand("XOAUTH2", None), SaslResponse(response)]


def test_sasl_response_too_long() -> None:
    data = b"AUTH PLAIN\r\n" + b"A" * 20000 + b"\r\nNOOP\r\n"
    assert run([data]) == [
        AuthCommand("PLAIN", None),
        BadCommand("SASL response too long"),
        NoopCommand(),
    ]
    assert run([data[i : i + 1000] for i in range(0, len(data), 1000)]) == run([data])


@pytest.mark.parametrize("line", [b"QU\x00B\r\n", b"\xc3\xa4\r\n", b"QUFB\rQ\r\n"])
def test_sasl_response_bad_characters(line: bytes) -> None:
    events = check(b"AUTH PLAIN\r\n" + line + b"NOOP\r\n")
    assert events == [
        AuthCommand("PLAIN", None),
        BadCommand("Invalid character in SASL response"),
        NoopCommand(),
    ]


def test_expect_sasl_response_out_of_turn() -> None:
    r = Pop3Receiver()
    with pytest.raises(LocalProtocolError):
        r.expect_sasl_response()
    r.receive_data(b"NOOP\r\nAUTH PLAIN\r\n")
    assert r.next_event() == NoopCommand()
    with pytest.raises(LocalProtocolError):
        r.expect_sasl_response()
    assert r.next_event() == AuthCommand("PLAIN", None)
    assert r.next_event() is NEED_DATA
    r.expect_sasl_response()  # NEED_DATA in between does not matter
    r.receive_data(b"eA==\r\n")
    assert r.next_event() == SaslResponse("eA==")


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        ("", b""),
        ("=", b""),
        ("QQ==", b"A"),
        ("QUFB", b"AAA"),
        ("QQ", None),
        ("QQ=", None),
        ("=AAA", None),
        ("AAA=BBB", None),
        ("QU FB", None),
        ("QUFB\n", None),
        ("QUF*", None),
        ("ä", None),
    ],
)
def test_decode_sasl(text: str, decoded: bytes | None) -> None:
    assert decode_sasl(text) == decoded


# --------------------------------------------------------------------------- robustness


_COMMAND_BYTES = st.lists(
    st.sampled_from(
        [
            *(b"USER a", b"PASS b c", b"AUTH PLAIN", b"AUTH", b"*", b"QUFB", b"RETR 1"),
            *(b"TOP 1 0", b"\r\n", b"\n", b"\r", b" ", b"\x00", b"\xff", b"x" * 100, b"."),
        ]
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.binary(max_size=600), _COMMAND_BYTES),
    st.lists(st.integers(0, 600)),
    st.sampled_from([_sasl, _sasl_multi, _never]),
)
def test_random_bytes_never_raise(data: bytes, cuts: list[int], react: React) -> None:
    expected = run([data], eof=True, react=react)
    assert expected[-1] is CONNECTION_CLOSED
    for event in expected:
        if isinstance(event, BadCommand):
            assert err(event.text) == event.to_bytes()
            event.to_bytes().decode("ascii")
    positions = sorted({c for c in cuts if 0 < c < len(data)})
    chunks = [data[i:j] for i, j in zip([0, *positions], [*positions, len(data)], strict=True)]
    assert run(chunks, eof=True, react=react) == expected
    assert run([data[i : i + 1] for i in range(len(data))], eof=True, react=react) == expected


# --------------------------------------------------------------------------- replies


def test_replies() -> None:
    assert ok("maildrop has 2 messages") == b"+OK maildrop has 2 messages\r\n"
    assert ok() == b"+OK\r\n"
    assert err("no such message") == b"-ERR no such message\r\n"
    assert err("in use", "IN-USE") == b"-ERR [IN-USE] in use\r\n"
    assert err("try later", "SYS/TEMP") == b"-ERR [SYS/TEMP] try later\r\n"
    assert err("", "AUTH") == b"-ERR [AUTH]\r\n"
    assert err() == b"-ERR\r\n"
    assert continuation("") == b"+ \r\n"
    assert continuation("cj1meWtv") == b"+ cj1meWtv\r\n"
    assert Pop3Reply.ok is ok
    assert Pop3Reply.err is err
    assert Pop3Reply.continuation is continuation


def test_reply_text_is_sanitised() -> None:
    assert ok("a\r\nDELE 1\r\n") == b"+OK a??DELE 1??\r\n"
    assert err("caf\xe9\t\x00") == b"-ERR caf???\r\n"
    assert continuation("a\nb") == b"+ a?b\r\n"
    assert err("[AUTH] spoofed") == b"-ERR ?AUTH] spoofed\r\n"
    assert err("[x", "SYS/PERM") == b"-ERR [SYS/PERM] [x\r\n"


def test_reply_is_cut_to_512_octets() -> None:
    assert len(ok("x" * 1000)) == 512
    assert err("x" * 1000, "SYS/TEMP").endswith(b"x\r\n")
    assert len(err("x" * 1000, "SYS/TEMP")) == 512
    assert len(continuation("A" * 1000)) == 1004  # SASL challenges are not cut


@pytest.mark.parametrize("code", ["", "A B", "A]", "/A", "A/", "A//B", "ä", "A\r\n"])
def test_bad_response_code_is_our_bug(code: str) -> None:
    with pytest.raises(LocalProtocolError):
        err("x", code)


def test_multiline() -> None:
    assert Pop3Reply.multiline("Capability list follows", ["TOP", "USER", ".x", "a\r\nb"]) == (
        b"+OK Capability list follows\r\nTOP\r\nUSER\r\n..x\r\na??b\r\n.\r\n"
    )
    assert Pop3Reply.multiline("", []) == b"+OK\r\n.\r\n"
