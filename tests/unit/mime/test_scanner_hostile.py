"""MimeScanner under its limits and hostile input: bounded memory, no exception."""

from __future__ import annotations

import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightmail.mailstore.mime.scanner import MimeScanner
from lightmail.mailstore.mime.types import BodyPart
from tests.unit.mime.corpus import (
    CORPUS,
    RFC3501_EXAMPLE,
    check_invariants,
    envelope,
    one_by_one,
    scan,
)

# -- limits -----------------------------------------------------------------------


def test_too_many_parts_leaves_the_rest_opaque() -> None:
    result = scan(RFC3501_EXAMPLE, max_parts=3)
    root = result.body
    assert [child.subtype for child in root.children] == ["PLAIN", "OCTET-STREAM"]
    last = root.children[-1]
    assert last.end == len(RFC3501_EXAMPLE)  # everything after is its body
    check_invariants(RFC3501_EXAMPLE, result)


def test_too_deep_nesting_is_opaque() -> None:
    result = scan(RFC3501_EXAMPLE, max_depth=2)
    three = result.body.find((3,))
    assert three is not None
    assert three.message is not None
    assert three.envelope == envelope()  # the encapsulated message is not parsed
    assert three.message.body_start == three.body_start
    four = result.body.find((4,))
    assert four is not None
    assert len(four.children) == 1  # its boundary is not looked for: one synthetic part
    check_invariants(RFC3501_EXAMPLE, result)


def test_deep_nesting_bomb() -> None:
    depth = 500
    message = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%05d\r\n\r\n--b%05d\r\n" % (i, i)
        for i in range(depth)
    )
    result = scan(message, max_depth=40)
    check_invariants(message, result)
    levels = 0
    node: BodyPart | None = result.body
    while node is not None and node.children:
        node, levels = node.children[0], levels + 1
    assert levels == 40


def test_part_count_bomb() -> None:
    message = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n\r\n" * 100_000
    result = scan(message)
    assert len(result.body.children) == 1999
    check_invariants(message, result)


def test_long_header_is_truncated_but_counted() -> None:
    message = b"Subject: " + b"x" * 5000 + b"\r\nFrom: a@example.org\r\n\r\nbody"
    result = scan(message, max_header_bytes=1000)
    assert result.header == message[:1000]
    assert result.body.body_start == len(message) - 4
    assert result.body.size == 4
    assert result.envelope.from_ is None  # beyond what is kept
    check_invariants(message, result)


def test_very_long_line_is_not_retained() -> None:
    """20 MB without a newline, in a multipart body and in a header."""
    chunk = b"A" * 65536
    for opening in [b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n", b""]:
        scanner = MimeScanner()
        tracemalloc.start()
        try:
            scanner.feed(opening)
            for _ in range(320):
                scanner.feed(chunk)
                assert scanner.buffered <= 256 * 1024 + 4096
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * 1024 * 1024
        result = scanner.close()
        assert result.size == len(opening) + 320 * 65536
        assert not scanner.degraded


def test_many_dash_lines_are_cheap_and_not_delimiters() -> None:
    message = b"Content-Type: multipart/mixed; boundary=real\r\n\r\n--real\r\n\r\n"
    message += b"--fake\r\n" * 50_000 + b"--real--\r\n"
    result = scan(message)
    (only,) = result.body.children
    assert only.lines == 49_999  # the last line ending belongs to the delimiter
    check_invariants(message, result)


def test_prefix_lines_under_deep_nesting_stay_cheap() -> None:
    """Lines that begin like all 39 open delimiters but match none."""
    message = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%05d\r\n\r\n--b%05d\r\n" % (i, i)
        for i in range(39)
    )
    message += b"\r\n" + b"--b000\r\n--b0\r\n" * 20_000 + b"--b00038\r\n\r\nlast"
    result = scan(message)
    check_invariants(message, result)
    flooded = result.body.find((1,) * 39)
    assert flooded is not None
    assert flooded.lines == 39_999
    last = result.body.find((1,) * 38 + (2,))
    assert last is not None
    assert message[last.body_start : last.end] == b"last"


# -- hostile input --------------------------------------------------------------

_TOKENS = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"--",
    b"--b1\r\n",
    b"--b1--",
    b"--x1\r\n",
    b"--outer\r\n",
    b"Content-Type: multipart/mixed; boundary=b1\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: multipart/digest; boundary=x1\r\n",
    b": ",
    b" ",
    b'"',
    b"(",
    b"<",
    b"=?utf-8?q?",
    b"?=",
    b"*0*=",
    b"\xff",
    b"\x00",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    message = bytearray(draw(st.sampled_from(sorted(CORPUS.values()))))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(message)))
        action = draw(st.integers(0, 2))
        if action == 0:
            message[position:position] = draw(st.sampled_from(_TOKENS))
        elif action == 1:
            del message[position : position + draw(st.integers(1, 40))]
        else:
            message[position:position] = draw(st.binary(max_size=8))
    return bytes(message)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=mutated(), data=st.data())
def test_mutated_corpus_never_raises(message: bytes, data: st.DataObject) -> None:
    result = scan(message)
    check_invariants(message, result)
    split = data.draw(st.integers(0, len(message)))
    assert scan(message, [message[:split], message[split:]]) == result


@settings(max_examples=150, deadline=None)
@given(message=st.binary(max_size=600))
def test_random_bytes_never_raise(message: bytes) -> None:
    result = scan(message)
    check_invariants(message, result)
    assert scan(message, one_by_one(message)) == result


@settings(max_examples=100, deadline=None)
@given(value=st.text(max_size=80))
def test_any_header_value_parses(value: str) -> None:
    fields = [
        "From",
        "To",
        "Cc",
        "Sender",
        "Date",
        "Subject",
        "Content-Type",
        "Content-Disposition",
    ]
    message = b"".join(f"{name}: {value}\r\n".encode() for name in fields) + b"\r\nbody"
    check_invariants(message, scan(message))
