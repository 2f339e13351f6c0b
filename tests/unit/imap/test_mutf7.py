"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.imap.wire.mutf7 import decode, decode_pattern, encode

EXAMPLES = [
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 section 5.1.3
    ("&", b"&-"),
    ("Tom & Jerry", b"Tom &- Jerry"),
    ("INBOX", b"INBOX"),
    ("", b""),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("Gelöschte Elemente", b"Gel&APY-schte Elemente"),
    ("😀", b"&2D3eAA-"),  # outside the BMP: a surrogate pair
    ("tab\there", b"tab&AAk-here"),  # controls are shifted too
    ("~", b"~"),
]


@pytest.mark.parametrize(("name", "raw"), EXAMPLES)
def test_examples(name: str, raw: bytes) -> None:
    assert encode(name) == raw
    assert decode(raw) == name


@pytest.mark.parametrize(
    "raw",
    [
        b"&U,BTFw",  # unterminated
        b"&",
        b"caf\xc3\xa9",  # raw 8-bit (UTF-8 is not modified UTF-7)
        b"a\x00b",
        b"a\tb",
        b"&AGE-&AGI-",  # two adjacent shifts must be one
        b"&AEE-",  # "A" must not be encoded
        b"&AGEA-",  # odd number of octets
        b"&2D0-",  # a lone high surrogate
        b"&3gA-",  # a lone low surrogate
        b"&A-",  # impossible base64 length
        b"&APx-",  # non-zero padding bits
        b"&U/BTFw-",  # "/" is written ","
        b"&U,BTFw=-",  # no padding
    ],
)
def test_malformed(raw: bytes) -> None:
    with pytest.raises(ValueError, match="mailbox name"):
        decode(raw)


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        encode("\ud800")


@settings(max_examples=300)
@given(st.text())
def test_round_trip(name: str) -> None:
    raw = encode(name)
    assert raw.isascii()
    assert all(0x20 <= c <= 0x7E for c in raw)
    assert decode(raw) == name


@settings(max_examples=300)
@given(st.binary(max_size=30))
def test_decode_only_raises_value_error(raw: bytes) -> None:
    try:
        name = decode(raw)
    except ValueError:
        return
    assert encode(name) == raw


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        (b"Entw&APw-rfe/*", "Entwürfe/*"),  # valid: as ``decode``
        (b"a&b", "a&b"),  # a bare "&" stands for itself
        (b"&", "&"),
        (b"*&", "*&"),
        (b"&U,BTFw", "&U,BTFw"),  # unterminated
        (b"&AGE-%", "&AGE-%"),  # not canonical: its octets as they are
        (b"a&b&APw-", "a&bü"),  # a good run after a bare "&" is still decoded
        (b"&AOQ-&APY-", "äö"),  # two runs that should have been one
        (b"caf\xc3\xa9*", "café*"),  # 8-bit octets are read as UTF-8
        (b"a\xffb", "a\udcffb"),  # not UTF-8: a lone surrogate, in no name
    ],
)
def test_decode_pattern(raw: bytes, pattern: str) -> None:
    assert decode_pattern(raw) == pattern


@settings(max_examples=300)
@given(st.binary(max_size=30))
def test_decode_pattern_never_fails_and_agrees_with_decode(raw: bytes) -> None:
    pattern = decode_pattern(raw)
    try:
        name = decode(raw)
    except ValueError:
        return
    assert pattern == name


@settings(max_examples=300)
@given(st.text())
def test_decode_pattern_reads_what_encode_writes(name: str) -> None:
    assert decode_pattern(encode(name)) == name
