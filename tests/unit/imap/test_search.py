"""SEARCH keys (RFC 3501 section 6.4.4) and the chunked BODY/TEXT scanner."""

from __future__ import annotations

import base64
import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.imap import objectid, search
from lightmail.imap.search import SearchMessage, matches, text_needles
from lightmail.imap.textscan import PartDecoder, TextScan, text_segments
from lightmail.imap.wire.types import (
    STAR,
    AddressKey,
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    NotKey,
    ObjectIdKey,
    OrKey,
    SearchKey,
    SequenceKey,
    SequenceSet,
    SizeKey,
    TextKey,
)
from lightmail.mailstore.mime.scanner import MimeScanner
from tests.support.headers import header_blocks

HEADER = (
    b"From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>\r\n"
    b"To: Smith <smith@example.net>\r\n"
    b"Cc: team@example.net\r\n"
    b"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n"
    b"  and more\r\n"
    b"X-Empty:\r\n"
    b"Date: Tue, 2 Jan 2024 01:30:00 +0100\r\n"
    b"\r\n"
)

MESSAGE = SearchMessage(
    seq=3,
    uid=42,
    flags=("\\Seen", "\\Flagged", "$Label"),
    recent=True,
    size=2000,
    internaldate=datetime(2024, 1, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
    header=HEADER,
    sent_date=date(2024, 1, 2),
    modseq=7,
    object_key="msg/0192d5c4-7b1e-7c3a-9f00-2b5e8a7d4c11.eml",
    thread_root="root@example.org",
)


def check(
    key: SearchKey,
    message: SearchMessage = MESSAGE,
    found: frozenset[tuple[bytes, bool]] = frozenset(),
) -> bool:
    return matches(key, message, largest_seq=10, largest_uid=100, found=found)


# -- flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (AllKey(), True),
        (FlagKey(b"\\Seen"), True),
        (FlagKey(b"\\SEEN"), True),
        (FlagKey(b"\\Seen", present=False), False),
        (FlagKey(b"\\Answered"), False),
        (FlagKey(b"\\Answered", present=False), True),
        (FlagKey(b"\\Deleted"), False),
        (FlagKey(b"\\Draft", present=False), True),
        (FlagKey(b"\\Flagged"), True),
        (FlagKey(b"\\Recent"), True),
        (FlagKey(b"$Label"), True),
        (FlagKey(b"$label"), True),
        (FlagKey(b"$Other"), False),
        (FlagKey(b"$Other", present=False), True),
        # NEW = (RECENT UNSEEN); OLD = NOT RECENT
        (AndKey((FlagKey(b"\\Recent"), FlagKey(b"\\Seen", present=False))), False),
        (NotKey(FlagKey(b"\\Recent")), False),
    ],
)
def test_flag_keys(key: SearchKey, expected: bool) -> None:
    assert check(key) is expected


def test_recent_comes_from_session_state_not_flags() -> None:
    message = SearchMessage(
        seq=1,
        uid=1,
        flags=("\\Recent",),
        recent=False,
        size=1,
        internaldate=datetime(2024, 1, 1, tzinfo=UTC),
        header=b"",
        sent_date=None,
        modseq=1,
        object_key="msg/0192d5c4-7b1e-7c3a-9f00-2b5e8a7d4c12.eml",
        thread_root="",
    )
    assert not check(FlagKey(b"\\Recent"), message)
    new = AndKey((FlagKey(b"\\Recent"), FlagKey(b"\\Seen", present=False)))
    assert check(new, replace(message, recent=True))
    assert not check(new, replace(message, recent=True, flags=("\\Seen",)))


# -- headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (b"FROM", b"joerg@example", True),  # HEADER FROM: the field's decoded text
        (b"FROM", b"J\xc3\xb6rg M\xc3\xbcller", True),  # RFC 2047-decoded
        (b"FROM", b"J\xc3\x96RG", True),  # Unicode case folding
        (b"FROM", b"=?UTF-8?", False),  # not the encoded form
        (b"TO", b"SMITH", True),
        (b"CC", b"team@", True),
        (b"BCC", b"", False),  # no Bcc field at all
        (b"SUBJECT", b"gr\xc3\xbc\xc3\x9fe aus k\xc3\xb6ln", True),
        (b"SUBJECT", b"GR\xc3\x9c\xc3\x9fE", True),
        (b"SUBJECT", b"k\xc3\xb6ln  and more", True),  # unfolded: CRLF removed, WSP kept
        (b"SUBJECT", b"and more", True),
        (b"SUBJECT", b"missing", False),
        (b"x-empty", b"", True),  # empty string: the field is present
        (b"X-EMPTY", b"a", False),
        (b"Received", b"", False),
        (b"date", b"01:30", True),
    ],
)
def test_header_keys(field: bytes, value: bytes, expected: bool) -> None:
    assert check(HeaderKey(field, value)) is expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (b"FROM", b"joerg@example.org", True),
        (b"FROM", b"J\xc3\xb6rg M\xc3\xbcller <JOERG@", True),  # decoded, case-folded
        (b"FROM", b"=?UTF-8?", False),  # not the encoded form
        (b"TO", b"smith <smith@example.net>", True),
        (b"CC", b"team@example.net", True),
        (b"CC", b"", True),  # empty string: the field is present
        (b"BCC", b"", False),  # no Bcc field at all
    ],
)
def test_address_keys(field: bytes, value: bytes, expected: bool) -> None:
    assert check(AddressKey(field, value)) is expected


def test_address_keys_match_addresses_without_comments_or_folding() -> None:
    message = replace(
        MESSAGE,
        header=b"From: <user (comment)@ (comment) example.org>\r\n"
        b"To: a@b (Ann),\r\n c@\r\n d\r\n\r\n",
    )
    assert check(AddressKey(b"FROM", b"user@example.org"), message)
    assert not check(AddressKey(b"FROM", b"comment"), message)
    assert check(AddressKey(b"TO", b"c@d"), message)
    assert not check(AddressKey(b"TO", b"ann"), message)
    assert not check(AddressKey(b"TO", b"a@b, c@d"), message)  # one address at a time
    assert check(HeaderKey(b"FROM", b"(comment)"), message)  # HEADER: the text as written


def test_header_search_with_bare_lf_and_repeated_fields() -> None:
    message = replace(
        MESSAGE, header=b"Received: a\nReceived: from relay\n\tby mx\nSubject: x\n\nX-In-Body: y\n"
    )
    assert check(HeaderKey(b"RECEIVED", b"relay\tby mx"), message)
    assert check(HeaderKey(b"RECEIVED", b"a"), message)
    assert not check(HeaderKey(b"X-In-Body", b""), message)


# -- dates, sizes, sequences --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # internal date 2024-01-01 23:30 -05:00: the 1st in its own zone (RFC 3501
        # 6.4.4 disregards time and timezone), though the 2nd in UTC
        (DateKey("on", date(2024, 1, 1), sent=False), True),
        (DateKey("on", date(2024, 1, 2), sent=False), False),
        (DateKey("before", date(2024, 1, 1), sent=False), False),
        (DateKey("before", date(2024, 1, 2), sent=False), True),
        (DateKey("since", date(2024, 1, 1), sent=False), True),
        (DateKey("since", date(2024, 1, 2), sent=False), False),
        # sent date in its own zone: 2024-01-02 (it was 2024-01-01 in UTC)
        (DateKey("on", date(2024, 1, 2), sent=True), True),
        (DateKey("before", date(2024, 1, 2), sent=True), False),
        (DateKey("since", date(2024, 1, 2), sent=True), True),
        (DateKey("since", date(2024, 1, 3), sent=True), False),
        (SizeKey("larger", 1999), True),
        (SizeKey("larger", 2000), False),
        (SizeKey("smaller", 2000), False),
        (SizeKey("smaller", 2001), True),
        (SequenceKey(SequenceSet(((3, 3),)), uid=False), True),
        (SequenceKey(SequenceSet(((1, 2), (4, STAR))), uid=False), False),
        (SequenceKey(SequenceSet(((STAR, 2),)), uid=False), True),  # 10:2
        (SequenceKey(SequenceSet(((42, 42),)), uid=True), True),
        (SequenceKey(SequenceSet(((3, 3),)), uid=True), False),
        (SequenceKey(SequenceSet(((50, STAR),)), uid=True), False),  # 50:100
        (SequenceKey(SequenceSet(((STAR, STAR),)), uid=True), False),
    ],
)
def test_date_size_sequence_keys(key: SearchKey, expected: bool) -> None:
    assert check(key) is expected


def test_star_is_the_largest() -> None:
    last = replace(MESSAGE, seq=10, uid=100)
    assert check(SequenceKey(SequenceSet(((STAR, STAR),)), uid=False), last)
    assert check(SequenceKey(SequenceSet(((STAR, STAR),)), uid=True), last)


def test_sent_keys_never_match_without_date() -> None:
    undated = replace(MESSAGE, sent_date=None)
    ops: tuple[Literal["before", "on", "since"], ...] = ("before", "on", "since")
    for op in ops:
        assert not check(DateKey(op, date(2024, 1, 2), sent=True), undated)
        assert check(NotKey(DateKey(op, date(2024, 1, 2), sent=True)), undated)


# -- combinations --------------------------------------------------------------------


def test_nested_or_not_and() -> None:
    # FLAGGED SINCE 1-Jan-2024 NOT FROM "Smith"  (RFC 3501's example, shifted)
    key = AndKey(
        (
            FlagKey(b"\\Flagged"),
            DateKey("since", date(2024, 1, 1), sent=False),
            NotKey(AddressKey(b"FROM", b"Smith")),
        )
    )
    assert check(key)
    assert not check(AndKey((key, AddressKey(b"FROM", b"nobody"))))
    assert check(OrKey(AddressKey(b"FROM", b"nobody"), OrKey(AllKey(), FlagKey(b"\\Deleted"))))
    assert not check(OrKey(FlagKey(b"\\Deleted"), NotKey(OrKey(AllKey(), AllKey()))))
    assert check(NotKey(NotKey(AndKey((FlagKey(b"\\Seen"), SizeKey("larger", 1))))))


# -- BODY / TEXT -------------------------------------------------------------------


def test_text_needles_collects_every_text_key() -> None:
    key = AndKey(
        (
            TextKey(b"a", whole_message=True),
            OrKey(NotKey(TextKey(b"b", whole_message=False)), FlagKey(b"\\Seen")),
            AndKey((TextKey(b"a", whole_message=False),)),
        )
    )
    assert text_needles(key) == {(b"a", True), (b"b", False), (b"a", False)}
    assert text_needles(AndKey((FlagKey(b"\\Seen"), AddressKey(b"TO", b"x")))) == frozenset()


RAW_HEADER = b"Subject: Hello World\r\nX-Tag: needle-in-header\r\n\r\n"
RAW = RAW_HEADER + b"First line\r\nThe Quick BROWN fox\r\nGr\xc3\xbc\xc3\x9fe\r\n"
BODY_START = len(RAW_HEADER)


def run_scan(
    needles: set[tuple[bytes, bool]], chunks: list[bytes]
) -> frozenset[tuple[bytes, bool]]:
    scan = TextScan(needles, BODY_START)
    for chunk in chunks:
        scan.feed(chunk)
    return scan.found()


NEEDLES = {
    (b"quick brown", False),
    (b"QUICK brown", True),
    (b"needle-in-header", False),  # BODY: only the body counts
    (b"needle-in-header", True),  # TEXT: header too
    (b"hello", True),
    (b"hello", False),
    (b"line\r\nthe", False),  # across lines
    (b"\r\n\r\nfirst", True),  # straddles header and body
    (b"\r\n\r\nfirst", False),  # starts in the header: not BODY
    (b"GR\xc3\x9c\xc3\x9fE", False),  # non-ASCII, Unicode case folding
    (b"gr\xc3\xbcsse", True),  # casefold: sharp s is "ss"
    (b"absent", True),
    (b"", False),  # the empty string is in every body
}
EXPECTED = {
    (b"quick brown", False),
    (b"QUICK brown", True),
    (b"needle-in-header", True),
    (b"hello", True),
    (b"line\r\nthe", False),
    (b"\r\n\r\nfirst", True),
    (b"GR\xc3\x9c\xc3\x9fE", False),
    (b"gr\xc3\xbcsse", True),
    (b"", False),
}


def test_text_scan_whole() -> None:
    assert run_scan(NEEDLES, [RAW]) == EXPECTED


def test_text_scan_one_octet_at_a_time() -> None:
    assert run_scan(NEEDLES, [RAW[i : i + 1] for i in range(len(RAW))]) == EXPECTED


def test_text_scan_every_split() -> None:
    for cut in range(len(RAW) + 1):
        assert run_scan(NEEDLES, [RAW[:cut], RAW[cut:]]) == EXPECTED, cut


def test_text_scan_done_after_a_long_gap() -> None:
    scan = TextScan({(b"fox", False)}, BODY_START)
    states = [scan.done]
    scan.feed(RAW_HEADER)
    scan.feed(b"x" * 100_000 + b"fo")
    states.append(scan.done)
    scan.feed(b"X and more")
    states.append(scan.done)
    assert states == [False, False, True]
    assert scan.found() == {(b"fox", False)}


def test_body_needle_not_found_when_message_has_no_body() -> None:
    scan = TextScan({(b"subject", False), (b"subject", True)}, BODY_START)
    scan.feed(RAW_HEADER)
    assert scan.found() == {(b"subject", True)}


def test_matches_uses_found_and_decoded_header_for_text() -> None:
    body = TextKey(b"fox", whole_message=False)
    text = TextKey(b"fox", whole_message=True)
    assert check(body, found=frozenset({(b"fox", False)}))
    assert not check(body, found=frozenset({(b"fox", True)}))
    assert not check(text)
    assert check(text, found=frozenset({(b"fox", True)}))
    # TEXT also sees the RFC 2047-decoded header (the raw one holds only base64).
    assert check(TextKey(b"k\xc3\xb6ln", whole_message=True))
    assert not check(TextKey(b"k\xc3\xb6ln", whole_message=False))
    assert check(NotKey(body))


@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(RAW)), max_size=12),
    needles=st.sets(
        st.tuples(
            st.one_of(
                st.sampled_from([needle for needle, _ in NEEDLES]),
                st.binary(max_size=4),
                st.integers(0, len(RAW) - 1).flatmap(
                    lambda i: st.integers(i, min(len(RAW), i + 12)).map(lambda j: RAW[i:j])
                ),
            ),
            st.booleans(),
        ),
        max_size=6,
    ),
)
def test_text_scan_any_chunking_gives_the_same_result(
    cuts: list[int], needles: set[tuple[bytes, bool]]
) -> None:
    bounds = [0, *sorted(cuts), len(RAW)]
    chunks = [RAW[a:b] for a, b in itertools.pairwise(bounds)]
    assert run_scan(needles, chunks) == run_scan(needles, [RAW])
    # ASCII needles agree with a plain case-insensitive search of the raw octets.
    for needle, whole in needles:
        if needle.isascii():
            haystack = RAW.lower() if whole else RAW[BODY_START:].lower()
            expected = needle.lower() in haystack
            assert ((needle, whole) in run_scan(needles, chunks)) is expected


# -- decoding text parts for BODY/TEXT ----------------------------------------------


def decode_in_pieces(decoder: PartDecoder, data: bytes, size: int) -> bytes:
    out = b"".join(decoder.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + decoder.close()


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_part_decoder_base64_in_any_chunking(size: int) -> None:
    text = "Grüße aus Köln, viele Grüße!\n" * 3
    encoded = base64.encodebytes(text.encode("iso-8859-1"))
    assert decode_in_pieces(PartDecoder("base64", "ISO-8859-1"), encoded, size) == text.encode()


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_part_decoder_quoted_printable_soft_breaks(size: int) -> None:
    encoded = b"caf=C3=A9 au lait, tr=\r\nes bon\r\n"
    out = decode_in_pieces(PartDecoder("QUOTED-PRINTABLE", "utf-8"), encoded, size)
    assert out == "café au lait, tres bon\r\n".encode()


def test_part_decoder_survives_garbage_and_unknown_charsets() -> None:
    decoder = PartDecoder("BASE64", "x-no-such-charset")
    assert isinstance(decoder.feed(b"!!!%%%\xff\xfe"), bytes)
    assert isinstance(decoder.close(), bytes)
    endless = PartDecoder("QUOTED-PRINTABLE", None)
    assert len(endless.feed(b"a" * 200_000)) > 100_000  # no newline: still decoded, bounded


def test_text_segments_skip_attachment_bodies_and_enter_messages() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--b\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: inner\r\nContent-Type: text/html\r\n\r\n<p>inner</p>\r\n"
        b"--b--\r\n"
    )
    scanner = MimeScanner()
    scanner.feed(raw)
    segments = text_segments(scanner.close().body)
    assert [(raw[s.start : s.end], s.part is not None) for s in segments] == [
        (b"Content-Type: text/plain\r\n\r\n", False),
        (b"hello", True),
        (b"Content-Type: application/pdf; name=a.pdf\r\n\r\n", False),
        (b"Content-Type: message/rfc822\r\n\r\n", False),
        (b"Subject: inner\r\nContent-Type: text/html\r\n\r\n", False),
        (b"<p>inner</p>", True),
    ]


def test_emailid_and_threadid_keys_match_exactly() -> None:
    """RFC 8474 section 6: an object id matches as it is (case counts)."""
    emailid = b"M0192d5c47b1e7c3a9f002b5e8a7d4c11"
    threadid = objectid.thread_id("root@example.org", MESSAGE.object_key)
    assert objectid.email_id(MESSAGE.object_key) == emailid
    assert check(ObjectIdKey(emailid, thread=False))
    assert not check(ObjectIdKey(emailid.upper(), thread=False))
    assert not check(ObjectIdKey(emailid, thread=True))
    assert check(ObjectIdKey(threadid, thread=True))
    # Without a Message-ID to go by, a message is a thread of its own.
    alone = replace(MESSAGE, thread_root="")
    assert check(ObjectIdKey(b"T0192d5c47b1e7c3a9f002b5e8a7d4c11", thread=True), alone)


# Header lines of every kind the two header readers must agree on: fields (any case,
# blanks before the colon, RFC 2047 words), continuations, lines that are no field,
# blank lines, and CRLF, bare LF or no line end.
_HEADER_LINES = header_blocks(
    [
        b"Subject: hello",
        b"SUBJECT :=?utf-8?q?caf=C3=A9?= bar",
        b"subject:",
        b"Subject-Line: no",
        b"X-Subject: no",
        b"From: a@b",
        b" continued",
        b"\tmore",
        b"no colon here",
        b"",
        b"\r",
        b"Subject\t: tab",
        b"Subject: a\r\n b\n\t=?utf-8?q?c?=",
    ]
)


@given(
    header=_HEADER_LINES,
    name=st.sampled_from([b"subject", b"SUBJECT", b"from", b"x-subject", b"bad name", b""]),
)
def test_field_values_are_what_parsing_every_field_gives(header: bytes, name: bytes) -> None:
    """The shortcut of HEADER and SUBJECT (one field's values) agrees with the full
    parse that TEXT uses."""
    wanted = name.decode().lower()
    expected = [value for field, value in search._parse_header(header) if field == wanted]
    assert search.field_values(header, name) == expected
