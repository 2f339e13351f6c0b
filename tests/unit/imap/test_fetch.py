"""FETCH data: ENVELOPE, BODYSTRUCTURE/BODY, section ranges, HEADER.FIELDS, partials.

Expected strings are written by hand from the RFC 3501 section 9 grammar
(``envelope``, ``address``, ``body``, ``body-fields``, ``body-ext-*``); the first
two messages reproduce the shapes of RFC 3501 sections 8 and 7.4.2.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.imap.fetch import (
    SectionRange,
    apply_partial,
    body_structure_bytes,
    envelope_bytes,
    filter_header,
    section_range,
)
from lightmail.imap.wire.types import BodySection, SectionText
from lightmail.mailstore.mime.scanner import MimeScanner
from lightmail.mailstore.mime.types import Address, BodyPart, Disposition, Envelope, ParsedMessage
from tests.support.headers import header_blocks


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def scan(message: bytes) -> ParsedMessage:
    scanner = MimeScanner()
    scanner.feed(message)
    return scanner.close()


def lines_of(count: int, total: int, char: bytes = b"x") -> bytes:
    """`count` CRLF-terminated lines, `total` octets in all (the last one takes the rest)."""
    width = total // count
    last = total - width * (count - 1)
    return (char * (width - 2) + b"\r\n") * (count - 1) + char * (last - 2) + b"\r\n"


# -- RFC 3501 section 8: a simple text message -------------------------------------

SECTION_8_HEADER = crlf(
    """Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)
From: Terry Gray <gray@cac.washington.edu>
Subject: IMAP4rev1 WG mtg summary and minutes
To: imap@cac.washington.edu
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>
Message-Id: <B27397-0100000@cac.washington.edu>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

"""
)
SECTION_8 = SECTION_8_HEADER + lines_of(92, 3028)


def test_section_8_envelope() -> None:
    parsed = scan(SECTION_8)
    assert envelope_bytes(parsed.envelope) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
        b'"IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")'
        b'("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>")'
    )


def test_section_8_body_and_bodystructure() -> None:
    body = scan(SECTION_8).body
    assert body_structure_bytes(body, extensible=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
    )
    assert body_structure_bytes(body, extensible=True) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL)'
    )


def test_section_8_header_is_342_octets() -> None:
    body = scan(SECTION_8).body
    found = section_range(body, BodySection(text=SectionText.HEADER))
    assert found == SectionRange(0, 342)
    assert SECTION_8[found.start : found.end] == SECTION_8_HEADER


def test_single_part_sections() -> None:
    body = scan(SECTION_8).body
    text = SECTION_8[len(SECTION_8_HEADER) :]
    for section in (BodySection(text=SectionText.TEXT), BodySection(part=(1,))):
        found = section_range(body, section)
        assert found is not None
        assert SECTION_8[found.start : found.end] == text
    assert section_range(body, BodySection()) == SectionRange(0, len(SECTION_8))
    mime = section_range(body, BodySection(part=(1,), text=SectionText.MIME))
    assert mime == SectionRange(0, 342)
    assert section_range(body, BodySection(part=(2,))) is None
    # part 1 of a TEXT/PLAIN message is not MESSAGE/RFC822: it has no HEADER.
    assert section_range(body, BodySection(part=(1,), text=SectionText.HEADER)) is None
    assert section_range(body, BodySection(text=SectionText.MIME)) is None


# -- RFC 3501 section 7.4.2: the two-part example ------------------------------------


def test_section_7_4_2_two_part_example() -> None:
    message = (
        crlf("Subject: diff\nContent-Type: multipart/mixed; boundary=XX\n\n--XX\n\n")
        + lines_of(23, 1152)
        + crlf(
            "\n--XX\n"
            'Content-Type: text/plain; charset=US-ASCII; name="cc.diff"\n'
            "Content-ID: <960723163407.20117h@cac.washington.edu>\n"
            "Content-Description: Compiler diff\n"
            "Content-Transfer-Encoding: base64\n\n"
        )
        + lines_of(73, 4554, b"A")
        + crlf("\n--XX--\n")
    )
    body = scan(message).body
    assert body_structure_bytes(body, extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" '
        b'"BASE64" 4554 73) "MIXED")'
    )


# -- multipart/alternative ----------------------------------------------------------

ALTERNATIVE = crlf(
    """From: a@example.org
To: b@example.org
Subject: alt
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

plain
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>html</p>
--b1--
"""
)


def test_alternative_bodystructure() -> None:
    body = scan(ALTERNATIVE).body
    assert body_structure_bytes(body, extensible=True) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 5 0 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 11 0 NIL NIL NIL NIL)'
        b' "ALTERNATIVE" ("BOUNDARY" "b1") NIL NIL NIL)'
    )
    assert body_structure_bytes(body, extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 5 0)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 11 0)'
        b' "ALTERNATIVE")'
    )


def test_alternative_envelope_without_cc_bcc_date() -> None:
    assert envelope_bytes(scan(ALTERNATIVE).envelope) == (
        b'(NIL "alt" ((NIL NIL "a" "example.org")) ((NIL NIL "a" "example.org")) '
        b'((NIL NIL "a" "example.org")) ((NIL NIL "b" "example.org")) NIL NIL NIL NIL)'
    )


# -- multipart/mixed: attachment with extension data, nested message, groups ----------

INNER_HEADER = crlf(
    """From: Inner <inner@example.org>
Subject: inner
Date: Mon, 1 Jan 2024 00:00:00 +0000

"""
)
MIXED_HEADER = crlf(
    """From: Sender <sender@example.org>
To: Friends: a@example.net, "B. Bee" <b@example.net>;, c@example.com
Cc: undisclosed-recipients:;
Subject: mixed
Date: Tue, 2 Jan 2024 10:00:00 +0100
Message-ID: <m1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

"""
)
PART1_MIME = crlf("Content-Type: text/plain\nContent-Language: en\n\n")
PART2_MIME = crlf(
    """Content-Type: application/pdf; name="r.pdf"
Content-Disposition: attachment; filename="r.pdf"; size=4
Content-Transfer-Encoding: base64
Content-ID: <id1@x>
Content-Description: Report
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==
Content-Language: en, de
Content-Location: http://example.org/r.pdf

"""
)
PART3_MIME = crlf("Content-Type: message/rfc822\n\n")
MIXED_TEXT = (
    b"--outer\r\n"
    + PART1_MIME
    + b"Hello\r\n--outer\r\n"
    + PART2_MIME
    + b"JVBE\r\n--outer\r\n"
    + PART3_MIME
    + INNER_HEADER
    + b"Inner body\r\n--outer--\r\n"
)
MIXED = MIXED_HEADER + MIXED_TEXT

INNER_ENVELOPE = (
    b'("Mon, 1 Jan 2024 00:00:00 +0000" "inner" '
    b'(("Inner" NIL "inner" "example.org")) (("Inner" NIL "inner" "example.org")) '
    b'(("Inner" NIL "inner" "example.org")) NIL NIL NIL NIL NIL)'
)


def test_mixed_envelope_with_groups() -> None:
    assert envelope_bytes(scan(MIXED).envelope) == (
        b'("Tue, 2 Jan 2024 10:00:00 +0100" "mixed" '
        b'(("Sender" NIL "sender" "example.org")) '
        b'(("Sender" NIL "sender" "example.org")) '
        b'(("Sender" NIL "sender" "example.org")) '
        b'((NIL NIL "Friends" NIL)(NIL NIL "a" "example.net")("B. Bee" NIL "b" "example.net")'
        b'(NIL NIL NIL NIL)(NIL NIL "c" "example.com")) '
        b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        b'NIL NIL "<m1@example.org>")'
    )


def test_mixed_bodystructure() -> None:
    # The encapsulated message: header (99 - 10 octets, 4 lines) plus "Inner body".
    assert len(INNER_HEADER) + len(b"Inner body") == 99
    assert body_structure_bytes(scan(MIXED).body, extensible=True) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 0 NIL NIL "en" NIL)'
        b'("APPLICATION" "PDF" ("NAME" "r.pdf") "<id1@x>" "Report" "BASE64" 4 '
        b'"Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "r.pdf" "SIZE" "4")) '
        b'("en" "de") "http://example.org/r.pdf")'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 99 '
        + INNER_ENVELOPE
        + b' ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 0 NIL NIL NIL NIL)'
        b" 4 NIL NIL NIL NIL)"
        b' "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)'
    )


def test_mixed_body_has_no_extension_data() -> None:
    assert body_structure_bytes(scan(MIXED).body, extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 0)'
        b'("APPLICATION" "PDF" ("NAME" "r.pdf") "<id1@x>" "Report" "BASE64" 4)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 99 '
        + INNER_ENVELOPE
        + b' ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 0) 4) "MIXED")'
    )


def _slice(message: bytes, body: BodyPart, section: BodySection) -> bytes | None:
    found = section_range(body, section)
    if found is None:
        return None
    data = message[found.start : found.end]
    if found.fields is not None:
        data = filter_header(data, found.fields, exclude=found.exclude)
    return data


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (BodySection(), MIXED),
        (BodySection(text=SectionText.HEADER), MIXED_HEADER),
        (BodySection(text=SectionText.TEXT), MIXED_TEXT),
        (BodySection(part=(1,)), b"Hello"),
        (BodySection(part=(1,), text=SectionText.MIME), PART1_MIME),
        (BodySection(part=(2,)), b"JVBE"),
        (BodySection(part=(2,), text=SectionText.MIME), PART2_MIME),
        (BodySection(part=(3,)), INNER_HEADER + b"Inner body"),
        (BodySection(part=(3,), text=SectionText.MIME), PART3_MIME),
        (BodySection(part=(3,), text=SectionText.HEADER), INNER_HEADER),
        (BodySection(part=(3,), text=SectionText.TEXT), b"Inner body"),
        (BodySection(part=(3, 1)), b"Inner body"),
        (
            BodySection(part=(3,), text=SectionText.HEADER_FIELDS, fields=(b"subject",)),
            b"Subject: inner\r\n\r\n",
        ),
        (
            BodySection(text=SectionText.HEADER_FIELDS_NOT, fields=(b"TO", b"Cc", b"content-type")),
            crlf(
                "From: Sender <sender@example.org>\n"
                "Subject: mixed\n"
                "Date: Tue, 2 Jan 2024 10:00:00 +0100\n"
                "Message-ID: <m1@example.org>\n"
                "MIME-Version: 1.0\n\n"
            ),
        ),
        (BodySection(part=(4,)), None),
        (BodySection(part=(1, 1)), None),
        (BodySection(part=(3, 2)), None),
        (BodySection(part=(1,), text=SectionText.HEADER), None),
        (BodySection(part=(2,), text=SectionText.TEXT), None),
        (BodySection(part=(4,), text=SectionText.MIME), None),
    ],
)
def test_mixed_sections(section: BodySection, expected: bytes | None) -> None:
    assert _slice(MIXED, scan(MIXED).body, section) == expected


def test_header_fields_range_carries_fields() -> None:
    body = scan(MIXED).body
    section = BodySection(text=SectionText.HEADER_FIELDS, fields=(b"FROM", b"X-None"))
    assert section_range(body, section) == SectionRange(
        0, len(MIXED_HEADER), fields=(b"FROM", b"X-None"), exclude=False
    )


def test_nested_multipart_in_attached_message() -> None:
    inner = crlf(
        "Subject: nested\nContent-Type: multipart/alternative; boundary=in\n\n"
        "--in\nContent-Type: text/plain\n\nA\n--in\nContent-Type: text/html\n\n<b>B</b>\n--in--\n"
    )
    message = (
        crlf("Subject: outer\nContent-Type: multipart/mixed; boundary=out\n\n--out\n")
        + crlf("Content-Type: message/rfc822\n\n")
        + inner
        + crlf("\n--out--\n")
    )
    body = scan(message).body
    assert _slice(message, body, BodySection(part=(1, 2))) == b"<b>B</b>"
    assert _slice(message, body, BodySection(part=(1, 2), text=SectionText.MIME)) == crlf(
        "Content-Type: text/html\n\n"
    )
    assert _slice(message, body, BodySection(part=(1,), text=SectionText.HEADER)) == crlf(
        "Subject: nested\nContent-Type: multipart/alternative; boundary=in\n\n"
    )
    # Part 1's body is the whole inner message: 157 octets, 12 LFs (the CRLF before
    # "--out--" belongs to the delimiter).
    assert (len(inner), inner.count(b"\n")) == (157, 12)
    assert body_structure_bytes(body, extensible=False) == (
        b'(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 157 '
        b'(NIL "nested" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 0)'
        b'("TEXT" "HTML" NIL NIL NIL "7BIT" 8 0) "ALTERNATIVE") 12) "MIXED")'
    )


# -- missing headers, quoting, literals --------------------------------------------


def test_missing_headers_give_nil_envelope() -> None:
    parsed = scan(b"\r\nno header at all\r\n")
    assert envelope_bytes(parsed.envelope) == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    # No Content-Type: TEXT/PLAIN; charset=US-ASCII (RFC 2045 section 5.2).
    assert body_structure_bytes(parsed.body, extensible=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 18 1)'
    )


def test_present_but_empty_subject_is_empty_string() -> None:
    parsed = scan(crlf("Subject:\nFrom: x@y\n\nbody"))
    assert envelope_bytes(parsed.envelope).startswith(b'(NIL "" ((NIL NIL "x" "y"))')


def test_quoted_specials_and_literal_for_8bit() -> None:
    envelope = Envelope(
        date=None,
        subject='say "hi" \\o/',
        from_=(Address("Jörg", None, "joerg", "example.org"),),
        sender=None,
        reply_to=None,
        to=None,
        cc=None,
        bcc=None,
        in_reply_to=None,
        message_id=None,
    )
    name = "Jörg".encode()
    assert envelope_bytes(envelope) == (
        b'(NIL "say \\"hi\\" \\\\o/" (({'
        + str(len(name)).encode()
        + b"}\r\n"
        + name
        + b' NIL "joerg" "example.org")) NIL NIL NIL NIL NIL NIL NIL)'
    )


def test_source_route_address() -> None:
    address = Address(None, "@relay.example", "user", "example.org")
    envelope = Envelope(None, None, (address,), None, None, None, None, None, None, None)
    assert envelope_bytes(envelope) == (
        b'(NIL NIL ((NIL "@relay.example" "user" "example.org")) NIL NIL NIL NIL NIL NIL NIL)'
    )


def _leaf(**overrides: object) -> BodyPart:
    fields: dict[str, object] = {
        "type": "IMAGE",
        "subtype": "PNG",
        "params": (),
        "id": None,
        "description": None,
        "encoding": "BASE64",
        "lines": 3,
        "md5": None,
        "disposition": None,
        "language": None,
        "location": None,
        "header_start": 0,
        "body_start": 10,
        "end": 30,
    }
    fields.update(overrides)
    return BodyPart(**fields)  # type: ignore[arg-type]


def test_basic_part_has_no_lines_and_nil_params() -> None:
    assert body_structure_bytes(_leaf(), extensible=False) == (
        b'("IMAGE" "PNG" NIL NIL NIL "BASE64" 20)'
    )


def test_disposition_without_params_and_single_language() -> None:
    part = _leaf(disposition=Disposition("INLINE", ()), language=("fr",), location="a b")
    assert body_structure_bytes(part, extensible=True) == (
        b'("IMAGE" "PNG" NIL NIL NIL "BASE64" 20 NIL ("INLINE" NIL) "fr" "a b")'
    )


def test_message_part_without_encapsulated_message_stays_grammatical() -> None:
    part = _leaf(type="MESSAGE", subtype="RFC822", encoding="7BIT")
    assert body_structure_bytes(part, extensible=False) == (
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 20 '
        b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 20 3) 3)'
    )


# -- HEADER.FIELDS ---------------------------------------------------------------

HEADER = crlf(
    """Received: from a
\tby b; Mon, 1 Jan 2024 00:00:00 +0000
Subject: a folded
  subject line
From: x@example.org
subject : second subject
X-Subjects: not this one
To: y@example.org

"""
)


def test_header_fields_keeps_continuations_and_order() -> None:
    assert filter_header(HEADER, [b"SUBJECT", b"to"], exclude=False) == crlf(
        "Subject: a folded\n  subject line\nsubject : second subject\nTo: y@example.org\n\n"
    )


def test_header_fields_not() -> None:
    assert filter_header(HEADER, [b"Subject", b"RECEIVED"], exclude=True) == crlf(
        "From: x@example.org\nX-Subjects: not this one\nTo: y@example.org\n\n"
    )


def test_header_fields_none_match_gives_blank_line() -> None:
    assert filter_header(HEADER, [b"Cc"], exclude=False) == b"\r\n"


def test_header_fields_bare_lf() -> None:
    header = b"From: a@b\nSubject: s\n t\nTo: c@d\n\n"
    assert filter_header(header, [b"subject"], exclude=False) == b"Subject: s\n t\n\r\n"
    assert filter_header(header, [b"subject"], exclude=True) == b"From: a@b\nTo: c@d\n\r\n"


def test_header_fields_without_blank_line_or_final_newline() -> None:
    assert filter_header(b"From: a@b\r\nTo: c@d", [b"TO"], exclude=False) == b"To: c@d\r\n\r\n"


def test_header_fields_stop_at_blank_line() -> None:
    header = b"From: a@b\r\n\r\nTo: body@text\r\n"
    assert filter_header(header, [b"to"], exclude=False) == b"\r\n"


# -- partial ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "partial", "expected"),
    [
        (10, None, (0, 10)),
        (10, (0, 4), (0, 4)),
        (10, (2, 4), (2, 4)),
        (10, (8, 4), (8, 2)),
        (10, (0, 2048), (0, 10)),
        (10, (10, 1), (10, 0)),
        (10, (11, 5), (10, 0)),
        (0, (0, 5), (0, 0)),
    ],
)
def test_apply_partial(
    length: int, partial: tuple[int, int] | None, expected: tuple[int, int]
) -> None:
    assert apply_partial(length, partial) == expected


@given(
    header=header_blocks(
        [
            b"Subject: s",
            b"SUBJECT : t",
            b"To: x",
            b"Received: r",
            b" cont",
            b"\tcont",
            b"junk",
            b"",
            b"\r",
            b"Sub ject: no",
            b"subject-x: no",
            b"To: y\r\n folded\n\tfolded again",
        ]
    ),
    names=st.lists(
        st.sampled_from([b"subject", b"TO", b"received", b"a b", b"x:y", b""]), max_size=3
    ),
)
def test_header_fields_and_fields_not_split_the_block_between_them(
    header: bytes, names: list[bytes]
) -> None:
    """Every line of the block (up to its first empty line; a last line without an
    end gets a CRLF) is in HEADER.FIELDS or in HEADER.FIELDS.NOT with the same
    names, each in the block's order; the two are built differently. Continuation
    lines before the first field belong to no field and are in neither."""
    block: list[bytes] = []
    for line in re.findall(rb"[^\n]*\n|[^\n]+", header):
        if line in (b"\n", b"\r\n"):
            break
        if block or line[:1] not in (b" ", b"\t"):
            block.append(line if line.endswith(b"\n") else line + b"\r\n")
    kept = filter_header(header, names, exclude=False)
    dropped = filter_header(header, names, exclude=True)
    assert kept.endswith(b"\r\n")
    assert dropped.endswith(b"\r\n")
    kept_lines = re.findall(rb"[^\n]*\n", kept[:-2])
    dropped_lines = re.findall(rb"[^\n]*\n", dropped[:-2])
    for part in (kept_lines, dropped_lines):  # each a subsequence of the block
        rest = iter(block)
        assert all(any(line == other for other in rest) for line in part)
    assert sorted(kept_lines + dropped_lines) == sorted(block)
