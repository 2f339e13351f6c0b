"""POP3 multi-line bodies: DotStuffer and TopFilter, however the message is split."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.pop3.body import DotStuffer, TopFilter
from lightmail.sansio import LocalProtocolError

# --------------------------------------------------------------------------- DotStuffer


def stuff(chunks: Iterable[bytes]) -> bytes:
    s = DotStuffer()
    out = b"".join(s.feed(c) for c in chunks)
    return out + s.close()


def stuff_everywhere(data: bytes) -> bytes:
    """Stuff ``data`` whole, byte by byte and split in two everywhere: all must agree."""
    expected = stuff([data])
    assert stuff([data[i : i + 1] for i in range(len(data))]) == expected
    for i in range(len(data) + 1):
        assert stuff([data[:i], b"", data[i:]]) == expected, i
    return expected


def unstuff(wire: bytes) -> bytes:
    """What a client reads (RFC 1939 section 3), asserting the terminator ends it."""
    assert wire.endswith(b".\r\n")
    assert wire == b".\r\n" or wire.endswith(b"\r\n.\r\n")
    lines = wire[:-3].split(b"\r\n")
    assert lines[-1] == b""
    out = []
    for line in lines[:-1]:
        assert line != b"."
        out.append(line[1:] if line.startswith(b".") else line)
    return b"".join(x + b"\r\n" for x in out)


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r\n..x\r\n", b"a\r\n...x\r\n.\r\n"),
        (b".a\n.b\n", b"..a\r\n..b\r\n.\r\n"),
        (b"a\nb", b"a\r\nb\r\n.\r\n"),
        (b"a\rb\r\n", b"a\rb\r\n.\r\n"),
        (b"a\r.b\r\n", b"a\r.b\r\n.\r\n"),
        (b"a\r", b"a\r\r\n.\r\n"),
        (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
        (b"\n\n.\n", b"\r\n\r\n..\r\n.\r\n"),
        (b"a\r\r\n.", b"a\r\r\n..\r\n.\r\n"),
    ],
)
def test_dot_stuffer(body: bytes, wire: bytes) -> None:
    assert stuff_everywhere(body) == wire


def test_dot_stuffer_dot_lines_across_every_split() -> None:
    body = b".\r\n..\r\nx.\r\n.x\n.\n\r.\r\r\n.end"
    wire = stuff_everywhere(body)
    assert wire == b"..\r\n...\r\nx.\r\n..x\r\n..\r\n\r.\r\r\n..end\r\n.\r\n"
    for i in range(len(body) + 1):
        for j in range(i, len(body) + 1):
            assert stuff([body[:i], body[i:j], body[j:]]) == wire


def test_dot_stuffer_misuse() -> None:
    s = DotStuffer()
    assert s.close() == b".\r\n"
    with pytest.raises(LocalProtocolError):
        s.feed(b"x")
    with pytest.raises(LocalProtocolError):
        s.close()


_BODY_BYTES = st.lists(
    st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b" ", b"\x00", b"\xff"]),
    max_size=40,
).map(b"".join)


@settings(max_examples=300)
@given(_BODY_BYTES, st.lists(st.integers(0, 80), max_size=6))
def test_dot_stuffer_roundtrip(body: bytes, cuts: list[int]) -> None:
    positions = sorted({c for c in cuts if 0 < c < len(body)})
    chunks = [body[i:j] for i, j in zip([0, *positions], [*positions, len(body)], strict=True)]
    wire = stuff(chunks)
    assert wire == stuff([body])
    # What the client reads back is the body with bare LFs made CRLF and a line end added.
    normal = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if normal and not normal.endswith(b"\n"):
        normal += b"\r\n"
    assert unstuff(wire) == normal


@settings(max_examples=300)
@given(_BODY_BYTES, st.lists(st.integers(0, 80), max_size=6))
def test_dot_stuffer_told_there_is_no_bare_lf_sends_the_same(body: bytes, cuts: list[int]) -> None:
    body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # no bare LF left
    positions = sorted({c for c in cuts if 0 < c < len(body)})
    chunks = [body[i:j] for i, j in zip([0, *positions], [*positions, len(body)], strict=True)]
    s = DotStuffer(bare_lf=False)
    wire = b"".join(s.feed(c) for c in chunks) + s.close()
    assert wire == stuff([body])


# --------------------------------------------------------------------------- TopFilter


def top(data: bytes, lines: int, chunks: Iterable[bytes] | None = None) -> tuple[bytes, bool]:
    f = TopFilter(lines)
    out = b"".join(f.feed(c) for c in (chunks if chunks is not None else [data]))
    return out, f.done


def top_everywhere(data: bytes, lines: int) -> tuple[bytes, bool]:
    expected = top(data, lines)
    assert top(data, lines, [data[i : i + 1] for i in range(len(data))]) == expected
    for i in range(len(data) + 1):
        assert top(data, lines, [data[:i], data[i:]]) == expected, i
    return expected


MESSAGE = b"From: a@b\r\nSubject: hi\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"


@pytest.mark.parametrize(
    ("lines", "out", "done"),
    [
        (0, b"From: a@b\r\nSubject: hi\r\n\r\n", True),
        (1, b"From: a@b\r\nSubject: hi\r\n\r\nline 1\r\n", True),
        (2, b"From: a@b\r\nSubject: hi\r\n\r\nline 1\r\nline 2\r\n", True),
        (3, MESSAGE, True),
        (4, MESSAGE, False),
        (10**30, MESSAGE, False),
    ],
)
def test_top(lines: int, out: bytes, done: bool) -> None:
    assert top_everywhere(MESSAGE, lines) == (out, done)


def test_top_bare_lf() -> None:
    msg = b"From: a@b\nSubject: hi\n\nl1\nl2\n"
    assert top_everywhere(msg, 0) == (b"From: a@b\nSubject: hi\n\n", True)
    assert top_everywhere(msg, 1) == (b"From: a@b\nSubject: hi\n\nl1\n", True)
    assert top_everywhere(b"A: b\r\n\nx\n", 0) == (b"A: b\r\n\n", True)
    assert top_everywhere(b"A: b\n\r\nx\n", 0) == (b"A: b\n\r\n", True)


def test_top_header_only() -> None:
    assert top_everywhere(b"From: a@b\r\nSubject: hi\r\n", 0) == (
        b"From: a@b\r\nSubject: hi\r\n",
        False,
    )
    assert top_everywhere(b"From: a@b\r\nSubject: hi", 5) == (b"From: a@b\r\nSubject: hi", False)
    assert top_everywhere(b"From: a@b\r\n\r\n", 0) == (b"From: a@b\r\n\r\n", True)
    assert top_everywhere(b"From: a@b\r\n\r\n", 3) == (b"From: a@b\r\n\r\n", False)
    assert top_everywhere(b"", 0) == (b"", False)


def test_top_blank_line_details() -> None:
    # a line holding only CR, or CR CR, is not a CRLF blank line unless the CR precedes the LF
    assert top_everywhere(b"A: b\r\n\r\r\nB: c\r\n\r\nx\r\n", 0) == (
        b"A: b\r\n\r\r\nB: c\r\n\r\n",
        True,
    )
    assert top_everywhere(b"\r\nbody 1\r\nbody 2\r\n", 1) == (b"\r\nbody 1\r\n", True)
    assert top_everywhere(b"A: \r\nB\r\n\r\nx", 1) == (b"A: \r\nB\r\n\r\nx", False)
    # the last body line without its line end is passed
    assert top_everywhere(b"A: b\r\n\r\nx\r\ny", 5) == (b"A: b\r\n\r\nx\r\ny", False)


def test_top_done_stops_passing() -> None:
    f = TopFilter(1)
    assert f.feed(b"A: b\r\n\r\nx\r\ny\r\n") == b"A: b\r\n\r\nx\r\n"
    assert f.done
    assert f.feed(b"more\r\n") == b""
    with pytest.raises(ValueError, match="lines"):
        TopFilter(-1)


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b":", b" "]), max_size=40).map(b"".join),
    st.integers(0, 5),
    st.lists(st.integers(0, 80), max_size=6),
)
def test_top_chunking_invariance(data: bytes, lines: int, cuts: list[int]) -> None:
    positions = sorted({c for c in cuts if 0 < c < len(data)})
    chunks = [data[i:j] for i, j in zip([0, *positions], [*positions, len(data)], strict=True)]
    f = TopFilter(lines)
    out = b""
    for c in chunks:
        out += f.feed(c)
        if f.done:
            break
    assert (out, f.done) == top(data, lines)
    assert data.startswith(out)
