"""IMAP URLs (RFC 5092) as CATENATE takes them (RFC 4469 section 3)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.imap.urls import BadUrl, MessageUrl, badurl_text, parse_url
from lightmail.imap.wire.types import BodySection, SectionText


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/INBOX/;UID=20", MessageUrl("INBOX", 20)),
        (
            b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER",
            MessageUrl(
                "Drafts", 20, 385759045, section=BodySection(peek=True, text=SectionText.HEADER)
            ),
        ),
        (
            b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME",
            MessageUrl(
                "Drafts",
                20,
                385759045,
                section=BodySection(peek=True, part=(1,), text=SectionText.MIME),
            ),
        ),
        (
            b"/INBOX/;UID=3/;SECTION=HEADER.FIELDS%20(FROM%20TO)/;PARTIAL=0.512",
            MessageUrl(
                "INBOX",
                3,
                section=BodySection(
                    peek=True, text=SectionText.HEADER_FIELDS, fields=(b"FROM", b"TO")
                ),
                partial=(0, 512),
            ),
        ),
        (b"/INBOX/;uid=3/;partial=100", MessageUrl("INBOX", 3, partial=(100, None))),
        (b"/Archive/2024/;UID=7", MessageUrl("Archive/2024", 7)),
        (b"/Gr%C3%BC%C3%9Fe/;UID=7", MessageUrl("Grüße", 7)),
        (b";UID=5/;SECTION=2", MessageUrl(None, 5, section=BodySection(peek=True, part=(2,)))),
        (
            b"imap://ann%40example.org@mail.example.org:143/INBOX/;UID=1",
            MessageUrl("INBOX", 1, user="ann@example.org"),
        ),
        (b"imap://ann;AUTH=*@h/INBOX/;UID=1", MessageUrl("INBOX", 1, user="ann")),
        (b"IMAP://host/INBOX/;UID=1", MessageUrl("INBOX", 1)),
    ],
)
def test_message_urls(raw: bytes, expected: MessageUrl) -> None:
    assert parse_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"INBOX/;UID=1",  # relative path
        b"/INBOX;UID=1",  # ;UID needs its own segment
        b"/INBOX/;UID=0",
        b"/INBOX/;UID=4294967296",
        b"/INBOX;UIDVALIDITY=0/;UID=1",
        b"/INBOX/;UID=1/;SECTION=1.TEXT.MIME",
        b"/INBOX/;UID=1/;SECTION=0",
        b"/INBOX/;UID=1/;PARTIAL=1.0",
        b"/INBOX/;UID=1/;URLAUTH=anonymous:internal:91354a473744909de610943775f92038",
        b"/INBOX/;UID=1/;EXPIRE=2030-01-01T00:00:00Z",
        b"/INBOX?SUBJECT%20x",  # a search, not a message
        b"/INBOX",
        b"/;UID=1",  # no mailbox
        b";UIDVALIDITY=1/;UID=1",
        b"//host/INBOX/;UID=1",
        b"imap://host",
        b"imap://host/",
        b"http://example.org/INBOX/;UID=1",
        b"/Gr%FF/;UID=1",  # not UTF-8
        b"/INBOX/;UID=1\xff",
    ],
)
def test_not_message_urls(raw: bytes) -> None:
    with pytest.raises(BadUrl):
        parse_url(raw)


@given(st.binary(max_size=80))
def test_any_bytes_give_a_url_or_badurl(raw: bytes) -> None:
    with contextlib.suppress(BadUrl):  # any other exception fails the test
        parse_url(raw)
    shown = badurl_text(raw)
    assert shown
    assert not set(shown) & {0x00, 0x0A, 0x0D, ord("]")}
    assert shown.isascii()


def test_badurl_text_escapes_only_what_it_must() -> None:
    assert badurl_text(b"/INBOX/;UID=1") == b"/INBOX/;UID=1"
    assert badurl_text(b"/a]b\r\n") == b"/a%5Db%0D%0A"
    assert len(badurl_text(b"x" * 1000)) == 200
