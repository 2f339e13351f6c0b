"""MimeScanner: structure and offsets from one streaming pass, in any chunking."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.mailstore.mime.scanner import MimeScanner
from lightmail.mailstore.mime.types import BodyPart, Disposition
from tests.unit.mime.corpus import (
    ALTERNATIVE,
    BARE_LF,
    BOUNDARY_AS_PREFIX,
    BOUNDARY_NEVER_SEEN,
    CORPUS,
    EMPTY,
    HEADER_AND_BLANK,
    HEADER_CUT_BY_BOUNDARY,
    HEADER_ONLY,
    MIXED,
    NESTED_PREFIX_BOUNDARIES,
    NO_BOUNDARY_AT_ALL,
    NO_FINAL_BOUNDARY,
    SIMPLE,
    US_ASCII,
    addr,
    check_invariants,
    crlf,
    envelope,
    one_by_one,
    part,
    scan,
)


def test_simple() -> None:
    result = scan(SIMPLE)
    header, body = SIMPLE.split(b"\r\n\r\n")
    alice = (addr("alice", "example.org", "Alice Example"),)
    assert result.envelope == envelope(
        date="Mon, 7 Feb 1994 21:52:25 -0800",
        subject="Hello",
        from_=alice,
        to=(addr("bob", "example.net"),),
        message_id="<1@example.org>",
    )
    assert result.body == part(SIMPLE, header + b"\r\n\r\n", body, "TEXT/PLAIN", US_ASCII, lines=2)
    assert result.header == header + b"\r\n\r\n"
    assert result.size == len(SIMPLE)
    assert result.body.size == 19
    assert result.sent_date == datetime(
        1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8))
    )
    assert result.subject == "Hello"
    assert result.from_ == "Alice Example <alice@example.org>"
    assert result.to == "bob@example.net"
    assert (result.cc, result.bcc) == ("", "")
    assert result.message_id == "<1@example.org>"


def test_alternative() -> None:
    result = scan(ALTERNATIVE)
    plain = part(
        ALTERNATIVE,
        crlf(
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
        ),
        crlf("Gr=C3=BC=C3=9Fe\naus Berlin"),
        "TEXT/PLAIN",
        (("CHARSET", "utf-8"),),
        encoding="QUOTED-PRINTABLE",
        lines=1,
    )
    html = part(
        ALTERNATIVE,
        crlf('Content-Type: text/html; charset="utf-8"\n\n'),
        b"<p>Gr&uuml;&szlig;e</p>",
        "TEXT/HTML",
        (("CHARSET", "utf-8"),),
        lines=0,
    )
    header, body = ALTERNATIVE.split(b"\r\n\r\n", 1)
    assert result.body == part(
        ALTERNATIVE,
        header + b"\r\n\r\n",
        body,
        "MULTIPART/ALTERNATIVE",
        (("BOUNDARY", "==alt=="),),
        lines=12,
        children=(plain, html),
    )


def test_mixed_with_attachment() -> None:
    result = scan(MIXED)
    text = part(
        MIXED,
        b"\r\n",
        crlf("See the attachment.\nLine two -- not a --b1 delimiter\n---b1 is not one either\n"),
        "TEXT/PLAIN",
        US_ASCII,
        lines=3,
    )
    pdf_header = crlf(
        "Content-Type: application/pdf; name=report.pdf\n"
        "Content-Transfer-Encoding: BASE64\n"
        'Content-Disposition: attachment; filename="report.pdf"; size=12\n'
        "Content-ID: <part2@example.org>\n"
        "Content-Description: The report\n"
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
        "Content-Language: en, de\n"
        "Content-Location: http://example.org/report.pdf\n"
        "\n"
    )
    pdf = part(
        MIXED,
        pdf_header,
        crlf("JVBERi0xLjQK\nJSVFT0YK"),
        "APPLICATION/PDF",
        (("NAME", "report.pdf"),),
        encoding="BASE64",
        lines=1,
        id="<part2@example.org>",
        description="The report",
        md5="Q2hlY2sgSW50ZWdyaXR5IQ==",
        disposition=Disposition("ATTACHMENT", (("FILENAME", "report.pdf"), ("SIZE", "12"))),
        language=("en", "de"),
        location="http://example.org/report.pdf",
    )
    header, body = MIXED.split(b"\r\n\r\n", 1)
    assert result.body == part(
        MIXED,
        header + b"\r\n\r\n",
        body,
        "MULTIPART/MIXED",
        (("BOUNDARY", "b1"), ("COMMENT", "x")),
        lines=20,
        children=(text, pdf),
    )
    assert pdf.filename == "report.pdf"
    assert result.envelope.subject == "report"


def test_bare_lf_line_endings() -> None:
    result = scan(BARE_LF)
    first = part(
        BARE_LF, b"Content-Type: text/plain\n\n", b"one\ntwo\n", "TEXT/PLAIN", US_ASCII, lines=2
    )
    second = part(BARE_LF, b"\n", b"three", "TEXT/PLAIN", US_ASCII, lines=0)
    header, body = BARE_LF.split(b"\n\n", 1)
    assert result.body == part(
        BARE_LF,
        header + b"\n\n",
        body,
        "MULTIPART/MIXED",
        (("BOUNDARY", "lf"),),
        lines=10,
        children=(first, second),
    )


def test_missing_final_boundary_ends_parts_at_eof() -> None:
    result = scan(NO_FINAL_BOUNDARY)
    first = part(NO_FINAL_BOUNDARY, b"\r\n", b"first", "TEXT/PLAIN", US_ASCII, lines=0)
    second = part(
        NO_FINAL_BOUNDARY,
        b"Content-Type: text/plain\r\n\r\n",
        b"truncated part\r\nno end",
        "TEXT/PLAIN",
        US_ASCII,
        lines=1,
    )
    assert result.body.children == (first, second)
    assert result.body.end == len(NO_FINAL_BOUNDARY)


@pytest.mark.parametrize(
    ("message", "params", "text"),
    [
        (NO_BOUNDARY_AT_ALL, (), b"line one\r\nline two\r\n"),
        (BOUNDARY_NEVER_SEEN, (("BOUNDARY", "never"),), b"just text\r\n-- never\r\nx--never\r\n"),
    ],
)
def test_no_delimiter_gives_one_synthetic_part_spanning_the_body(
    message: bytes, params: tuple[tuple[str, str], ...], text: bytes
) -> None:
    body = scan(message).body
    assert (body.type, body.subtype, body.params) == ("MULTIPART", "MIXED", params)
    assert body.children == (
        BodyPart(
            "TEXT",
            "PLAIN",
            US_ASCII,
            None,
            None,
            "7BIT",
            text.count(b"\n"),
            None,
            None,
            None,
            None,
            header_start=body.body_start,
            body_start=body.body_start,
            end=body.end,
        ),
    )
    assert message[body.body_start : body.end] == text


def test_delimiter_is_matched_as_a_line_prefix() -> None:
    """RFC 2046 section 5.1.1: only the start of the line must match (Dovecot does so)."""
    (only,) = scan(BOUNDARY_AS_PREFIX).body.children
    assert only == part(
        BOUNDARY_AS_PREFIX, b"\r\n", b"so this is a part\r\n", "TEXT/PLAIN", US_ASCII, lines=1
    )


def test_boundary_in_a_mime_header_ends_the_part() -> None:
    result = scan(HEADER_CUT_BY_BOUNDARY)
    cut, after = result.body.children
    # The CRLF before the delimiter belongs to the delimiter (RFC 2046 section 5.1.1).
    assert HEADER_CUT_BY_BOUNDARY[cut.header_start : cut.body_start] == b"Content-Type: text/html"
    assert (cut.type, cut.subtype, cut.size) == ("TEXT", "HTML", 0)
    assert HEADER_CUT_BY_BOUNDARY[after.body_start : after.end] == b"after"


def test_nested_boundaries_sharing_a_prefix() -> None:
    root = scan(NESTED_PREFIX_BOUNDARIES).body
    alternative, outer = root.children
    (inner,) = alternative.children
    assert NESTED_PREFIX_BOUNDARIES[inner.body_start : inner.end] == b"inner"
    assert NESTED_PREFIX_BOUNDARIES[alternative.body_start : alternative.end].endswith(b"--pp--")
    assert NESTED_PREFIX_BOUNDARIES[outer.body_start : outer.end] == b"outer"


def test_empty_message() -> None:
    result = scan(EMPTY)
    assert result.size == 0
    assert result.header == b""
    assert result.envelope == envelope()
    assert result.body == BodyPart(
        "TEXT", "PLAIN", US_ASCII, None, None, "7BIT", 0, None, None, None, None, 0, 0, 0
    )


@pytest.mark.parametrize("message", [HEADER_ONLY, HEADER_AND_BLANK])
def test_header_only(message: bytes) -> None:
    result = scan(message)
    assert result.header == message  # with the blank line if there is one (RFC 3501 6.4.5)
    assert result.body.body_start == result.body.end == len(message)
    assert result.envelope.subject == "only a header"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_chunking_invariance(name: str) -> None:
    message = CORPUS[name]
    whole = scan(message)
    check_invariants(message, whole)
    assert scan(message, one_by_one(message)) == whole
    for split in range(len(message) + 1):
        assert scan(message, [message[:split], message[split:]]) == whole, split


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(CORPUS)), data=st.data())
def test_random_splits(name: str, data: st.DataObject) -> None:
    message = CORPUS[name]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(message)), max_size=12)))
    chunks = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)], strict=True)]
    assert scan(message, chunks) == scan(message)


def test_feed_after_close_is_ignored_and_close_is_idempotent() -> None:
    scanner = MimeScanner()
    scanner.feed(SIMPLE)
    first = scanner.close()
    scanner.feed(b"more")
    assert scanner.close() is first
