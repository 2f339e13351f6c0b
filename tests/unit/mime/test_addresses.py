"""Address fields as ENVELOPE address structures (RFC 3501 section 7.4.2), and as SEARCH
matches them."""

from __future__ import annotations

from datetime import UTC, datetime

from lightmail.mailstore.mime.addresses import MISSING_HOST, search_addresses
from lightmail.mailstore.mime.types import Address
from tests.unit.mime.corpus import (
    ENCODED_WORDS,
    GROUPS,
    NO_HEADERS,
    US_ASCII,
    addr,
    envelope,
    part,
    scan,
)


def test_rfc2047_words_stay_encoded_in_the_envelope() -> None:
    result = scan(ENCODED_WORDS)
    assert result.envelope == envelope(
        date="Tue, 1 Jul 2003 10:52:37 +0200",
        subject="=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?="
        "  =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
        from_=(
            addr("joerg", "example.org", "=?utf-8?q?J=C3=B6rg_M=C3=BCller?="),
            addr("b", "example.org"),
        ),
        to=(
            addr("john", "example.com", "Doe, John"),
            addr("joe", "example.com", "Joe Bloggs"),
            Address(None, "@relay.example,@b.example", "route", "example.com"),
        ),
        cc=(addr("pirard", "example.be", "=?ISO-8859-1?Q?Andr=E9?= =?ISO-8859-1?Q?_Pirard?="),),
        in_reply_to="<parent@example.org>",
    )
    assert result.subject == "If you can read this you understand the example."
    assert result.from_ == "Jörg Müller <joerg@example.org>, b@example.org"
    assert result.to == (
        "Doe, John <john@example.com>, Joe Bloggs <joe@example.com>, route@example.com"
    )
    assert result.cc == "André Pirard <pirard@example.be>"
    assert result.sent_date == datetime(2003, 7, 1, 8, 52, 37, tzinfo=UTC)
    assert result.message_id == ""


def test_search_addresses_are_parsed_decoded_and_without_comments() -> None:
    header = (
        b"From: <user (comment)@ (comment) example.org>\r\n"
        b'To: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.org>, "Q, R" <q@r>\r\n'
        b"Cc: Carol\r\n <carol@\r\n example.net>, team: a@b, c@d;\r\n"
        b"Bcc: (only a comment) x@y\r\n"
        b"Subject: not an address\r\n"
        b"To: local\r\n"
        b"\r\n"
    )
    assert search_addresses(header) == {
        "from": ("user@example.org",),
        "to": ("J\u00f6rg <joerg@example.org>", "Q, R <q@r>", "local"),
        "cc": ("Carol <carol@example.net>", "team", "a@b", "c@d"),
        "bcc": ("x@y",),
    }
    assert search_addresses(b"Subject: x\r\n\r\n") == {}


def test_missing_headers_give_nil_and_defaults() -> None:
    result = scan(NO_HEADERS)
    assert result.envelope == envelope(subject="bare")
    assert result.envelope.from_ is None
    assert result.envelope.sender is None
    assert result.sent_date is None
    assert (result.from_, result.to, result.message_id) == ("", "", "")
    assert result.body == part(
        NO_HEADERS,
        b"Subject: bare\r\n\r\n",
        b"no date, no from, no content-type\r\n",
        "TEXT/PLAIN",
        US_ASCII,
        lines=1,
    )


def test_group_syntax_and_defaults() -> None:
    result = scan(GROUPS)
    alice = (addr("alice", "example.org", "Alice"),)
    assert result.envelope == envelope(
        from_=alice,
        sender=alice,  # present but empty: from
        reply_to=(addr("replies", "example.org"),),
        to=(
            Address(None, None, "A Group", None),
            addr("a", "example.org"),
            addr("b", "example.org", "B"),
            Address(None, None, None, None),
            addr("c", "example.org"),
        ),
        cc=(Address(None, None, "undisclosed-recipients", None), Address(None, None, None, None)),
        bcc=(Address(None, None, "nohost", MISSING_HOST),),
    )
    assert result.to == "A Group: a@example.org, B <b@example.org>;, c@example.org"
    assert result.cc == "undisclosed-recipients:;"
    assert result.bcc == "nohost"
    assert result.body.size == 0
    assert result.header == GROUPS
