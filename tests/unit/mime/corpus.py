"""The MIME test corpus and the helpers that state expected parse results.

Expected values are written from RFC 3501 sections 6.4.5 and 7.4.2 and RFC 2045/2046:
each part is given by its exact MIME header and body octets, located in the message,
so the offsets are checked to slice out exactly that header and body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

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
    assert BodyPart.bounds_from_json(json.loads(json.dumps(root.to_json()))) == (
        root.body_start,
        root.end,
    )
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
