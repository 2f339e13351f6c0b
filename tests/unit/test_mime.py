"""MimeScanner: ENVELOPE, BODYSTRUCTURE and offsets from one streaming pass.

Expected values are written from RFC 3501 sections 6.4.5 and 7.4.2 and RFC 2045/2046:
each part is given by its exact MIME header and body octets, located in the message,
so the offsets are checked to slice out exactly that header and body.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightmail.mailstore.mime.addresses import MISSING_HOST, search_addresses
from lightmail.mailstore.mime.scanner import MimeScanner
from lightmail.mailstore.mime.types import Address, BodyPart, Disposition, Envelope, ParsedMessage

# -- helpers ----------------------------------------------------------------

US_ASCII = (("CHARSET", "US-ASCII"),)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def scan(message: bytes, chunks: Iterable[bytes] | None = None, **limits: int) -> ParsedMessage:
    scanner = MimeScanner(**limits)
    for chunk in [message] if chunks is None else chunks:
        scanner.feed(chunk)
    result = scanner.close()
    assert not scanner.degraded
    return result


def one_by_one(message: bytes) -> list[bytes]:
    return [message[i : i + 1] for i in range(len(message))]


def locate(message: bytes, header: bytes, body: bytes) -> tuple[int, int, int]:
    """Offsets of the one place where `header` is directly followed by `body`."""
    whole = header + body
    assert message.count(whole) == 1, whole
    start = message.index(whole)
    return start, start + len(header), start + len(whole)


def part(
    message: bytes,
    header: bytes,
    body: bytes,
    media: str,
    params: tuple[tuple[str, str], ...] = (),
    *,
    lines: int,
    encoding: str = "7BIT",
    children: tuple[BodyPart, ...] = (),
    envelope: Envelope | None = None,
    inner: BodyPart | None = None,
    id: str | None = None,
    description: str | None = None,
    md5: str | None = None,
    disposition: Disposition | None = None,
    language: tuple[str, ...] | None = None,
    location: str | None = None,
) -> BodyPart:
    start, body_start, end = locate(message, header, body)
    major, minor = media.split("/")
    return BodyPart(
        type=major,
        subtype=minor,
        params=params,
        id=id,
        description=description,
        encoding=encoding,
        lines=lines,
        md5=md5,
        disposition=disposition,
        language=language,
        location=location,
        header_start=start,
        body_start=body_start,
        end=end,
        children=children,
        envelope=envelope,
        message=inner,
    )


def envelope(
    *,
    date: str | None = None,
    subject: str | None = None,
    from_: tuple[Address, ...] | None = None,
    sender: tuple[Address, ...] | None = None,
    reply_to: tuple[Address, ...] | None = None,
    to: tuple[Address, ...] | None = None,
    cc: tuple[Address, ...] | None = None,
    bcc: tuple[Address, ...] | None = None,
    in_reply_to: str | None = None,
    message_id: str | None = None,
) -> Envelope:
    """An envelope with RFC 3501's defaulting of sender and reply-to to from."""
    return Envelope(
        date,
        subject,
        from_,
        sender or from_,
        reply_to or from_,
        to,
        cc,
        bcc,
        in_reply_to,
        message_id,
    )


def addr(mailbox: str, host: str, name: str | None = None) -> Address:
    return Address(name, None, mailbox, host)


def walk(body: BodyPart) -> Iterable[BodyPart]:
    yield body
    for child in body.children:
        yield from walk(child)
    if body.message is not None:
        yield from walk(body.message)


def check_invariants(message: bytes, result: ParsedMessage) -> None:
    """What must hold for any input, however broken."""
    assert result.size == len(message)
    root = result.body
    assert root.header_start == 0
    assert root.end == len(message)
    assert result.header == message[: len(result.header)]
    assert len(result.header) <= root.body_start
    for node in walk(root):
        assert 0 <= node.header_start <= node.body_start <= node.end <= len(message)
        assert node.lines == message[node.body_start : node.end].count(b"\n")
        if node.is_multipart:
            assert node.children
            previous = node.body_start
            for child in node.children:
                assert child.header_start >= previous
                previous = child.end
            assert previous <= node.end
        else:
            assert not node.children
        if (node.type, node.subtype) == ("MESSAGE", "RFC822"):
            assert node.message is not None
            assert node.envelope is not None
            assert node.message.header_start == node.body_start
            assert node.message.end == node.end
        else:
            assert node.message is None
            assert node.envelope is None
    assert BodyPart.from_json(json.loads(json.dumps(root.to_json()))) == root
    assert Envelope.from_json(json.loads(json.dumps(result.envelope.to_json()))) == result.envelope


# -- corpus -------------------------------------------------------------------

SIMPLE = crlf(
    "From: Alice Example <alice@example.org>\n"
    "To: bob@example.net\n"
    "Subject: Hello\n"
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
    "Message-ID: <1@example.org>\n"
    "\n"
    "Hi Bob,\n"
    "See you.\n"
)

ALTERNATIVE = crlf(
    "From: a@example.org\n"
    "To: b@example.org\n"
    "Subject: alt\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="==alt=="\n'
    "\n"
    "This is a multi-part message in MIME format.\n"
    "--==alt==\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Gr=C3=BC=C3=9Fe\n"
    "aus Berlin\n"
    "--==alt==\n"
    'Content-Type: text/html; charset="utf-8"\n'
    "\n"
    "<p>Gr&uuml;&szlig;e</p>\n"
    "--==alt==--\n"
)

MIXED = crlf(
    "From: a@example.org\n"
    "Subject: report\n"
    "Content-Type: multipart/mixed;\n"
    ' boundary="b1"; comment=x\n'
    "\n"
    "--b1\n"
    "\n"
    "See the attachment.\n"
    "Line two -- not a --b1 delimiter\n"
    "---b1 is not one either\n"
    "\n"
    "--b1\n"
    "Content-Type: application/pdf; name=report.pdf\n"
    "Content-Transfer-Encoding: BASE64\n"
    'Content-Disposition: attachment; filename="report.pdf"; size=12\n'
    "Content-ID: <part2@example.org>\n"
    "Content-Description: The report\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Language: en, de\n"
    "Content-Location: http://example.org/report.pdf\n"
    "\n"
    "JVBERi0xLjQK\n"
    "JSVFT0YK\n"
    "--b1--\n"
    "epilogue\n"
)

RFC2231 = crlf(
    "From: a@example.org\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "--outer\n"
    "Content-Type: application/pdf;\n"
    " name*0*=utf-8''%E2%82%AC; name*1*=%20report;\n"
    ' name*2=".pdf"\n'
    "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20report.pdf;\n"
    ' filename="EUR report.pdf"\n'
    "\n"
    "data\n"
    "--outer\n"
    'Content-Type: text/plain; title*0="a "; title*2=c; title*1=b;\n'
    " gap*0=x; gap*2=z\n"
    "\n"
    "text\n"
    "--outer--\n"
)

ENCODED_WORDS = crlf(
    "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>, b@example.org\n"
    'To: "Doe, John" <john@example.com>,\n'
    "\tjoe@example.com (Joe Bloggs), <@relay.example,@b.example:route@example.com>\n"
    "Cc: =?ISO-8859-1?Q?Andr=E9?=\n =?ISO-8859-1?Q?_Pirard?= <pirard@example.be>\n"
    "Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\n"
    "  =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\n"
    "Date: Tue, 1 Jul 2003 10:52:37 +0200\n"
    "In-Reply-To: <parent@example.org>\n"
    "\n"
    "body\n"
)

RAW_UTF8 = (
    b"From: J\xc3\xb6rg <joerg@example.org>\r\n"
    b"Subject: Gr\xc3\xbc\xc3\x9fe \xff end\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe\r\n"
)

NO_HEADERS = crlf("Subject: bare\n\nno date, no from, no content-type\n")

BARE_LF = (
    b"From: a@example.org\n"
    b"Content-Type: multipart/mixed; boundary=lf\n"
    b"\n"
    b"--lf\n"
    b"Content-Type: text/plain\n"
    b"\n"
    b"one\n"
    b"two\n"
    b"\n"
    b"--lf\n"
    b"\n"
    b"three\n"
    b"--lf--\n"
)

NO_FINAL_BOUNDARY = crlf(
    "Content-Type: multipart/mixed; boundary=fb\n"
    "\n"
    "--fb\n"
    "\n"
    "first\n"
    "--fb\n"
    "Content-Type: text/plain\n"
    "\n"
    "truncated part\n"
    "no end"
)

BOUNDARY_NEVER_SEEN = crlf(
    "Content-Type: multipart/mixed; boundary=never\n\njust text\n-- never\nx--never\n"
)

BOUNDARY_AS_PREFIX = crlf(
    "Content-Type: multipart/mixed; boundary=never\n"
    "\n"
    "just text\n"
    "--nevertheless: a line that starts with the delimiter is one\n"
    "\n"
    "so this is a part\n"
)

NO_BOUNDARY_AT_ALL = crlf("Content-Type: multipart/mixed\n\nline one\nline two\n")

GROUPS = crlf(
    "From: Alice <alice@example.org>\n"
    'To: A Group: a@example.org, "B" <b@example.org>;, c@example.org\n'
    "Cc: undisclosed-recipients:;\n"
    "Bcc: nohost\n"
    "Sender: \n"
    "Reply-To: replies@example.org\n"
    "\n"
)

DIGEST = crlf(
    "Content-Type: multipart/digest; boundary=d\n"
    "\n"
    "--d\n"
    "\n"
    "Subject: first\n"
    "\n"
    "one\n"
    "--d\n"
    "Content-Type: text/plain\n"
    "\n"
    "not a message\n"
    "--d--\n"
)

# The structure of RFC 3501 section 6.4.5's example.
RFC3501_EXAMPLE = crlf(
    "Subject: example\n"
    "Content-Type: multipart/mixed; boundary=x1\n"
    "\n"
    "--x1\n"
    "\n"
    "part 1\n"
    "--x1\n"
    "Content-Type: application/octet-stream\n"
    "\n"
    "part 2\n"
    "--x1\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: part 3\n"
    "Content-Type: multipart/mixed; boundary=x3\n"
    "\n"
    "--x3\n"
    "\n"
    "part 3.1\n"
    "--x3\n"
    "Content-Type: application/octet-stream\n"
    "\n"
    "part 3.2\n"
    "--x3--\n"
    "--x1\n"
    "Content-Type: multipart/mixed; boundary=x4\n"
    "\n"
    "--x4\n"
    "Content-Type: image/gif\n"
    "\n"
    "part 4.1\n"
    "--x4\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: part 4.2\n"
    "Content-Type: multipart/mixed; boundary=x42\n"
    "\n"
    "--x42\n"
    "\n"
    "part 4.2.1\n"
    "--x42\n"
    "Content-Type: multipart/alternative; boundary=x422\n"
    "\n"
    "--x422\n"
    "\n"
    "part 4.2.2.1\n"
    "--x422\n"
    "Content-Type: text/richtext\n"
    "\n"
    "part 4.2.2.2\n"
    "--x422--\n"
    "--x42--\n"
    "--x4--\n"
    "--x1--\n"
)

HEADER_CUT_BY_BOUNDARY = crlf(
    "Content-Type: multipart/mixed; boundary=h\n"
    "\n"
    "--h\n"
    "Content-Type: text/html\n"
    "--h\n"
    "\n"
    "after\n"
    "--h--\n"
)

ENCODED_MESSAGE = crlf(
    "Content-Type: message/rfc822\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "U3ViamVjdDogaGkNCg0KYm9keQ0K\n"
)

GARBLED_TYPES = crlf(
    "Content-Type: multipart/mixed; boundary=g\n"
    "\n"
    "--g\n"
    'Content-Type: text/html; charset="iso-8859-1" (comment)\n'
    "Content-Type: application/x-second\n"
    "\n"
    "first wins\n"
    "--g\n"
    "Content-Type: garbage\n"
    "Content-Transfer-Encoding: (comment) Base64 (more)\n"
    "\n"
    "invalid type\n"
    "--g\n"
    "Content-Type: text/\n"
    "\n"
    "no subtype\n"
    "--g\n"
    "Content-Type: image/png; name==?utf-8?q?Bild_=C3=BC?=; boundary=----=_Part_1\n"
    "\n"
    "encoded-word name\n"
    "--g--\n"
)

NESTED_PREFIX_BOUNDARIES = crlf(
    "Content-Type: multipart/mixed; boundary=p\n"
    "\n"
    "--p\n"
    "Content-Type: multipart/alternative; boundary=pp\n"
    "\n"
    "--pp\n"
    "\n"
    "inner\n"
    "--pp--\n"
    "--p\n"
    "\n"
    "outer\n"
    "--p--\n"
)

EMPTY = b""
HEADER_ONLY = crlf("Subject: only a header\n")
HEADER_AND_BLANK = crlf("Subject: only a header\n\n")

CORPUS = {
    "simple": SIMPLE,
    "alternative": ALTERNATIVE,
    "mixed": MIXED,
    "rfc2231": RFC2231,
    "encoded_words": ENCODED_WORDS,
    "raw_utf8": RAW_UTF8,
    "no_headers": NO_HEADERS,
    "bare_lf": BARE_LF,
    "no_final_boundary": NO_FINAL_BOUNDARY,
    "boundary_never_seen": BOUNDARY_NEVER_SEEN,
    "boundary_as_prefix": BOUNDARY_AS_PREFIX,
    "no_boundary_at_all": NO_BOUNDARY_AT_ALL,
    "groups": GROUPS,
    "digest": DIGEST,
    "rfc3501_example": RFC3501_EXAMPLE,
    "header_cut_by_boundary": HEADER_CUT_BY_BOUNDARY,
    "encoded_message": ENCODED_MESSAGE,
    "garbled_types": GARBLED_TYPES,
    "nested_prefix_boundaries": NESTED_PREFIX_BOUNDARIES,
    "empty": EMPTY,
    "header_only": HEADER_ONLY,
    "header_and_blank": HEADER_AND_BLANK,
}


# -- expected values, message by message -------------------------------------


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


def test_rfc2231_parameters_merged_as_dovecot_does() -> None:
    result = scan(RFC2231)
    pdf, text = result.body.children
    assert pdf.params == (("NAME*", "utf-8''%E2%82%AC%20report.pdf"),)
    assert pdf.param("name") == "€ report.pdf"
    assert pdf.disposition == Disposition(
        "ATTACHMENT",
        (("FILENAME*", "utf-8''%E2%82%AC%20report.pdf"), ("FILENAME", "EUR report.pdf")),
    )
    assert pdf.filename == "€ report.pdf"  # the RFC 2231 form wins
    # Plain continuations are joined in index order; a gap leaves them unmerged.
    assert text.params == (
        ("TITLE", "a bc"),
        ("GAP*0", "x"),
        ("GAP*2", "z"),
        ("CHARSET", "US-ASCII"),
    )
    assert (pdf.lines, text.lines) == (0, 0)
    assert RFC2231[pdf.body_start : pdf.end] == b"data"


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


def test_raw_8bit_headers_are_decoded_as_utf8_with_replacement() -> None:
    result = scan(RAW_UTF8)
    assert result.envelope.subject == "Grüße \ufffd end"
    assert result.envelope.from_ == (addr("joerg", "example.org", "Jörg"),)
    assert result.subject == "Grüße \ufffd end"
    assert result.from_ == "Jörg <joerg@example.org>"
    assert result.body.params == (("CHARSET", "utf-8"),)
    assert result.body.lines == 1


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


def test_rfc3501_part_numbering() -> None:
    """The example of RFC 3501 section 6.4.5, section by section."""
    root = scan(RFC3501_EXAMPLE).body
    expected = {
        (1,): ("TEXT", "PLAIN", b"part 1"),
        (2,): ("APPLICATION", "OCTET-STREAM", b"part 2"),
        (3,): ("MESSAGE", "RFC822", None),
        (3, 1): ("TEXT", "PLAIN", b"part 3.1"),
        (3, 2): ("APPLICATION", "OCTET-STREAM", b"part 3.2"),
        (4,): ("MULTIPART", "MIXED", None),
        (4, 1): ("IMAGE", "GIF", b"part 4.1"),
        (4, 2): ("MESSAGE", "RFC822", None),
        (4, 2, 1): ("TEXT", "PLAIN", b"part 4.2.1"),
        (4, 2, 2): ("MULTIPART", "ALTERNATIVE", None),
        (4, 2, 2, 1): ("TEXT", "PLAIN", b"part 4.2.2.1"),
        (4, 2, 2, 2): ("TEXT", "RICHTEXT", b"part 4.2.2.2"),
    }
    for section, (major, minor, body) in expected.items():
        found = root.find(section)
        assert found is not None, section
        assert (found.type, found.subtype) == (major, minor), section
        if body is not None:
            assert RFC3501_EXAMPLE[found.body_start : found.end] == body, section
    for missing in [(0,), (5,), (1, 1), (3, 3), (4, 3), (4, 2, 3), (4, 2, 2, 3), (1, 1, 1)]:
        assert root.find(missing) is None, missing
    assert root.find(()) is root
    # 3.HEADER, 3.TEXT and 4.1.MIME are byte ranges.
    three = root.find((3,))
    assert three is not None
    assert three.message is not None
    assert three.envelope is not None
    inner = three.message
    assert RFC3501_EXAMPLE[inner.header_start : inner.body_start] == crlf(
        "Subject: part 3\nContent-Type: multipart/mixed; boundary=x3\n\n"
    )
    assert RFC3501_EXAMPLE[inner.body_start : inner.end].startswith(b"--x3\r\n\r\npart 3.1")
    assert RFC3501_EXAMPLE[inner.body_start : inner.end].endswith(b"--x3--")
    assert three.envelope.subject == "part 3"
    gif = root.find((4, 1))
    assert gif is not None
    assert RFC3501_EXAMPLE[gif.header_start : gif.body_start] == b"Content-Type: image/gif\r\n\r\n"


def test_part_one_of_a_single_part_message_is_its_body() -> None:
    body = scan(SIMPLE).body
    assert body.find((1,)) is body
    assert body.find((2,)) is None
    assert body.find((1, 1)) is None


def test_boundary_in_a_mime_header_ends_the_part() -> None:
    result = scan(HEADER_CUT_BY_BOUNDARY)
    cut, after = result.body.children
    # The CRLF before the delimiter belongs to the delimiter (RFC 2046 section 5.1.1).
    assert HEADER_CUT_BY_BOUNDARY[cut.header_start : cut.body_start] == b"Content-Type: text/html"
    assert (cut.type, cut.subtype, cut.size) == ("TEXT", "HTML", 0)
    assert HEADER_CUT_BY_BOUNDARY[after.body_start : after.end] == b"after"


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


# -- chunking ---------------------------------------------------------------------


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


def test_8bit_parameter_name_does_not_break_the_parse() -> None:
    """'\xff'.upper() is not latin-1: parameter names are upper-cased in ASCII only."""
    message = b"Content-Type: text/plain; \xc3\xbf\xc2\xb5=1; ch\xc3\x9f=2\r\n\r\nx"
    result = scan(message)
    assert result.body.params == (("ÿµ", "1"), ("CHß", "2"), ("CHARSET", "US-ASCII"))
    check_invariants(message, result)


def test_feed_after_close_is_ignored_and_close_is_idempotent() -> None:
    scanner = MimeScanner()
    scanner.feed(SIMPLE)
    first = scanner.close()
    scanner.feed(b"more")
    assert scanner.close() is first


# -- persistence ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_json_round_trip(name: str) -> None:
    result = scan(CORPUS[name])
    text = json.dumps(result.body.to_json(), separators=(",", ":"))
    assert BodyPart.from_json(json.loads(text)) == result.body
    text = json.dumps(result.envelope.to_json(), separators=(",", ":"))
    assert Envelope.from_json(json.loads(text)) == result.envelope


def test_json_is_compact() -> None:
    body_start = SIMPLE.index(b"\r\n\r\n") + 4
    assert scan(SIMPLE).body.to_json() == [
        *("TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 2),
        *(None, None, None, None, 0, body_start, len(SIMPLE)),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        1,
        "x",
        [],
        ["TEXT"],
        ["TEXT", "PLAIN", ["odd"], None, None, "7BIT", 0, None, None, None, None, 0, 0, 0],
        ["TEXT", "PLAIN", [], None, None, "7BIT", True, None, None, None, None, 0, 0, 0],
        ["TEXT", "PLAIN", [], None, None, "7BIT", 0, None, None, None, None, 0, 0, 0, [1]],
    ],
)
def test_json_rejects_malformed_data(bad: object) -> None:
    with pytest.raises(ValueError, match="malformed"):
        BodyPart.from_json(bad)
