"""The Content-* fields and their defaults (RFC 2045 section 5.2, RFC 2046 section 5.1.5)."""

from __future__ import annotations

from lightmail.mailstore.mime.types import BodyPart
from tests.unit.mime.corpus import (
    DIGEST,
    ENCODED_MESSAGE,
    GARBLED_TYPES,
    US_ASCII,
    envelope,
    part,
    scan,
)


def test_digest_parts_default_to_message_rfc822() -> None:
    result = scan(DIGEST)
    inner_body = part(DIGEST, b"Subject: first\r\n\r\n", b"one", "TEXT/PLAIN", US_ASCII, lines=0)
    first = part(
        DIGEST,
        b"\r\n",
        b"Subject: first\r\n\r\none",
        "MESSAGE/RFC822",
        lines=2,
        envelope=envelope(subject="first"),
        inner=inner_body,
    )
    second = part(
        DIGEST,
        b"Content-Type: text/plain\r\n\r\n",
        b"not a message",
        "TEXT/PLAIN",
        US_ASCII,
        lines=0,
    )
    assert result.body.children == (first, second)


def test_encoded_message_rfc822_is_opaque() -> None:
    result = scan(ENCODED_MESSAGE)
    body = result.body
    assert (body.type, body.subtype, body.encoding) == ("MESSAGE", "RFC822", "BASE64")
    assert body.envelope == envelope()
    assert body.message == BodyPart(
        "TEXT",
        "PLAIN",
        US_ASCII,
        None,
        None,
        "BASE64",
        1,
        None,
        None,
        None,
        None,
        header_start=body.body_start,
        body_start=body.body_start,
        end=body.end,
    )


def test_garbled_content_types() -> None:
    first, invalid, no_subtype, png = scan(GARBLED_TYPES).body.children
    assert (first.type, first.subtype, first.params) == (
        "TEXT",
        "HTML",
        (("CHARSET", "iso-8859-1"),),
    )
    assert (invalid.type, invalid.subtype, invalid.params, invalid.encoding) == (
        "TEXT",
        "PLAIN",
        US_ASCII,
        "BASE64",
    )
    assert (no_subtype.type, no_subtype.subtype, no_subtype.params) == ("TEXT", "PLAIN", US_ASCII)
    assert png.params == (("NAME", "=?utf-8?q?Bild_=C3=BC?="), ("BOUNDARY", "----=_Part_1"))
    assert png.param("name") == "Bild ü"
    assert png.filename == "Bild ü"
