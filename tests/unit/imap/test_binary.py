"""BINARY's sans-I/O half (RFC 3516): which part, decoded how, cut where.

The decoding must not depend on how the blob store chunks a body: the size
announced before a literal comes from one pass and the octets from another.
"""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.imap.binary import BinaryRefused, ContentDecoder, Window, binary_part, is_identity
from lightmail.mailstore.mime.scanner import MimeScanner
from lightmail.mailstore.mime.transfer import TransferDecoder
from lightmail.mailstore.mime.types import BodyPart

MIXED = (
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9=\r\n au lait\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAEC/w==\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n"
    b"--b\r\nContent-Type: application/x-thing\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\n"
    b"--b--\r\n"
)


def root(message: bytes) -> BodyPart:
    scanner = MimeScanner()
    scanner.feed(message)
    return scanner.close().body


def decode(part: BodyPart, raw: bytes, size: int = 1 << 20) -> bytes:
    decoder = ContentDecoder(part)
    out = b"".join(decoder.feed(raw[i : i + size]) for i in range(0, len(raw), size))
    return out + decoder.close()


def test_leaf_parts_are_found_and_decoded() -> None:
    body = root(MIXED)
    text = binary_part(body, (1,))
    assert text is not None
    assert decode(text, MIXED[text.body_start : text.end]) == "café au lait".encode()
    octets = binary_part(body, (2,))
    assert octets is not None
    assert decode(octets, MIXED[octets.body_start : octets.end]) == b"\x00\x01\x02\xff"
    inner = binary_part(body, (3, 1))  # the body of the attached message
    assert inner is not None
    assert MIXED[inner.body_start : inner.end] == b"inner body"


def test_missing_part_is_none() -> None:
    assert binary_part(root(MIXED), (9,)) is None
    assert binary_part(root(MIXED), (2, 1)) is None


@pytest.mark.parametrize("section", [(), (3,)])
def test_non_leaf_parts_are_refused(section: tuple[int, ...]) -> None:
    """RFC 9051 section 6.4.5: BINARY only for leaf parts; ``[]`` is the message."""
    with pytest.raises(BinaryRefused) as refused:
        binary_part(root(MIXED), section)
    assert not refused.value.unknown_cte


def test_whole_message_of_one_part_is_refused_but_part_1_is_its_body() -> None:
    body = root(b"Subject: x\r\n\r\nhello\r\n")
    with pytest.raises(BinaryRefused):
        binary_part(body, ())
    assert binary_part(body, (1,)) is body


def test_unknown_transfer_encoding_is_unknown_cte() -> None:
    with pytest.raises(BinaryRefused) as refused:
        binary_part(root(MIXED), (4,))
    assert refused.value.unknown_cte


def test_text_line_ends_become_crlf_other_types_untouched() -> None:
    """RFC 3516 section 6: textual sections go out with CRLF."""
    text = root(b"Content-Type: text/plain\r\n\r\na\nb\rc\r\nd")
    assert decode(text, b"a\nb\rc\r\nd\r", size=1) == b"a\r\nb\r\nc\r\nd\r\n"
    other = root(b"Content-Type: application/pdf\r\n\r\nx")
    assert decode(other, b"a\nb\r") == b"a\nb\r"
    assert is_identity(other)
    assert not is_identity(text)  # its line ends may change


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=600),
    encoding=st.sampled_from(["base64", "quoted-printable", "8bit", "binary"]),
    kind=st.sampled_from([b"text/plain", b"application/octet-stream"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_decoding_does_not_depend_on_chunking(
    data: bytes, encoding: str, kind: bytes, cuts: list[int]
) -> None:
    raw = data
    if encoding == "base64":
        raw = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        raw = binascii.b2a_qp(data, istext=False)
    header = b"Content-Type: " + kind + b"\r\nContent-Transfer-Encoding: " + encoding.encode()
    part = root(header + b"\r\n\r\n" + raw)
    whole = decode(part, raw)
    decoder = ContentDecoder(part)
    pieces = []
    last = 0
    for cut in sorted({min(c, len(raw)) for c in cuts}):
        pieces.append(decoder.feed(raw[last:cut]))
        last = cut
    pieces.append(decoder.feed(raw[last:]))
    assert b"".join(pieces) + decoder.close() == whole
    if kind == b"application/octet-stream":
        assert whole == data  # an exact round trip


def test_endless_quoted_printable_line_keeps_escapes_whole() -> None:
    """A line longer than the decoder keeps is cut, but never inside ``=XX``
    or a soft line break, wherever the chunks end."""
    raw = b"=41" * 30_000 + b"=\r\n" + b"b=42" * 20_000
    expected = b"A" * 30_000 + b"bB" * 20_000
    for size in (65_536, 65_537, 65_538, 70_001, 1 << 20):
        decoder = TransferDecoder("quoted-printable")
        out = b"".join(decoder.feed(raw[i : i + size]) for i in range(0, len(raw), size))
        assert out + decoder.close() == expected


@pytest.mark.parametrize(
    ("origin", "count", "expected"),
    [
        (0, None, b"0123456789"),
        (0, 4, b"0123"),
        (3, 4, b"3456"),
        (8, 100, b"89"),
        (10, 5, b""),
        (50, 5, b""),
    ],
)
def test_window_cuts_the_decoded_stream(origin: int, count: int | None, expected: bytes) -> None:
    for size in (1, 3, 10):
        window = Window(origin, count)
        data = b"0123456789"
        out = b"".join(window.feed(data[i : i + size]) for i in range(0, len(data), size))
        assert out == expected
        assert window.taken == len(expected)


def test_window_sees_nul_only_inside_and_knows_when_full() -> None:
    window = Window(2, 3)
    assert window.feed(b"\x00a") == b""
    assert (window.nul, window.full) == (False, False)
    assert window.feed(b"bcd\x00") == b"bcd"
    assert (window.nul, window.full) == (False, True)
    inside = Window(0, 2)
    inside.feed(b"a\x00b")
    assert inside.nul
