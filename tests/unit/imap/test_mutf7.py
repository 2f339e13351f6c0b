"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.imap.wire.mutf7 import decode, encode

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
