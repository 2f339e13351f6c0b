"""Server response rendering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.imap.wire.commands import LoginCommand
from lightmail.imap.wire.receiver import NEED_DATA, Receiver
from lightmail.imap.wire.responses import (
    Code,
    Completion,
    ContinuationResponse,
    DataResponse,
    Raw,
    ResponseCode,
    Status,
    TaggedResponse,
    UntaggedResponse,
    astring,
    bad,
    capability_response,
    enabled_response,
    exists_response,
    expunge_response,
    fetch_response,
    flag_list,
    flags_response,
    id_response,
    list_response,
    literal,
    literal_octets,
    lsub_response,
    namespace_response,
    no,
    nstring,
    ok,
    paren_list,
    quoted,
    recent_response,
    render,
    status_response,
    string,
)
from lightmail.imap.wire.results import search_response, vanished_response
from lightmail.imap.wire.types import STAR, SequenceSet


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"", b'""'),
        (b"abc", b'"abc"'),
        (b'a"b\\c', b'"a\\"b\\\\c"'),
        (b"tab\there", b'"tab\there"'),
        (b"line\r\nbreak", b"{11}\r\nline\r\nbreak"),
        (b"caf\xc3\xa9", b"{5}\r\ncaf\xc3\xa9"),
        (b"nul\x00", b"{4}\r\nnul\x80"),  # RFC 3501 4.3.1: no NUL on the wire
    ],
)
def test_string_chooses_quoted_or_literal(value: bytes, expected: bytes) -> None:
    assert string(value) == expected


def test_quoted_refuses_what_it_cannot_hold() -> None:
    for value in (b"\r", b"\n", b"\x80", b"\x00"):
        with pytest.raises(ValueError, match="quoted"):
            quoted(value)
    assert literal(b"") == b"{0}\r\n"


def test_literal_replaces_nul_octet_for_octet() -> None:
    """A literal is CHAR8 (%x01-ff): NUL goes out as 0x80, so the count stays right."""
    assert literal(b"a\x00b\x00") == b"{4}\r\na\x80b\x80"
    assert literal_octets(b"\x00\x00") == b"\x80\x80"
    plain = b"no nul here"
    assert literal_octets(plain) is plain


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"INBOX", b"INBOX"),
        (b"a]b", b"a]b"),
        (b"", b'""'),
        (b"NIL", b'"NIL"'),
        (b"nil", b'"nil"'),
        (b"two words", b'"two words"'),
        (b"a%b", b'"a%b"'),
        (b"a*b", b'"a*b"'),
        (b"(x)", b'"(x)"'),
        (b"{x", b'"{x"'),
        (b"\xe2\x82\xac", b"{3}\r\n\xe2\x82\xac"),
    ],
)
def test_astring(value: bytes, expected: bytes) -> None:
    assert astring(value) == expected


def test_nstring_and_lists() -> None:
    assert nstring(None) == b"NIL"
    assert nstring(b"NIL") == b'"NIL"'
    assert paren_list([]) == b"()"
    assert flag_list([b"\\Seen", b"$Junk"]) == b"(\\Seen $Junk)"
    with pytest.raises(ValueError, match="flag"):
        flag_list([b"two words"])
    with pytest.raises(ValueError, match="flag"):
        flag_list([b"\\*"])


@settings(max_examples=200)
@given(st.binary(max_size=40).filter(lambda b: b"\x00" not in b))
def test_rendered_strings_parse_back(value: bytes) -> None:
    """What we render as an astring the receiver reads back as the same bytes."""
    r = Receiver()
    r.receive_data(b"a LOGIN " + astring(value) + b" " + string(value) + b"\r\n")
    events = []
    while (event := r.next_event()) is not NEED_DATA:
        events.append(event)
    assert events[-1] == LoginCommand(b"a", value, value)


def test_tagged_responses() -> None:
    assert TaggedResponse(b"a1", Status.OK, "LOGIN completed").to_bytes() == (
        b"a1 OK LOGIN completed\r\n"
    )
    response = TaggedResponse(b"A142", Status.OK, "SELECT completed", ResponseCode(Code.READ_WRITE))
    assert render(response) == b"A142 OK [READ-WRITE] SELECT completed\r\n"
    assert TaggedResponse(b"x", Status.NO, "", ResponseCode(Code.TRYCREATE)).to_bytes() == (
        b"x NO [TRYCREATE] completed\r\n"
    )
    with pytest.raises(ValueError, match="tagged"):
        TaggedResponse(b"a", Status.BYE, "x")
    for tag in (b"", b"+a", b"a b", b"*"):
        with pytest.raises(ValueError, match="tag"):
            TaggedResponse(tag, Status.OK, "x")


def test_completions_render_with_the_tag_stamped_on_them() -> None:
    assert ok().tagged(b"a1") == TaggedResponse(b"a1", Status.OK, "completed")
    assert ok().tagged(b"a1").to_bytes() == b"a1 OK completed\r\n"
    assert ok("Select completed", Code.READ_WRITE).tagged(b"A142").to_bytes() == (
        b"A142 OK [READ-WRITE] Select completed\r\n"
    )
    assert ok("Append completed", ResponseCode.appenduid(38505, [3955])).tagged(
        b"b"
    ).to_bytes() == (b"b OK [APPENDUID 38505 3955] Append completed\r\n")
    assert no("Mailbox is read-only", Code.READ_ONLY).tagged(b"c").to_bytes() == (
        b"c NO [READ-ONLY] Mailbox is read-only\r\n"
    )
    assert no("Message rejected").tagged(b"d").to_bytes() == b"d NO Message rejected\r\n"
    assert bad("Invalid message sequence number").tagged(b"e").to_bytes() == (
        b"e BAD Invalid message sequence number\r\n"
    )
    with pytest.raises(ValueError, match="tagged"):
        Completion(Status.BYE, "x").tagged(b"a")
    with pytest.raises(ValueError, match="tag"):
        ok().tagged(b"*")


def test_text_is_sanitised_to_one_line() -> None:
    evil = "oops\r\n* OK [ALERT] injected\x00\x7f é"
    rendered = TaggedResponse(b"a", Status.BAD, evil).to_bytes()
    assert rendered.count(b"\r\n") == 1
    assert rendered.endswith(b"\r\n")
    assert b"\x00" not in rendered
    assert rendered.isascii()
    assert UntaggedResponse(Status.OK, "[fake] code").to_bytes() == b"* OK fake] code\r\n"
    assert UntaggedResponse(Status.OK, "[").to_bytes() == b"* OK completed\r\n"


def test_untagged_and_continuation() -> None:
    assert UntaggedResponse(Status.BYE, "Logging out").to_bytes() == b"* BYE Logging out\r\n"
    assert UntaggedResponse(
        Status.OK, "Predicted next UID", ResponseCode.uidnext(4392)
    ).to_bytes() == (b"* OK [UIDNEXT 4392] Predicted next UID\r\n")
    assert ContinuationResponse().to_bytes() == b"+ \r\n"
    assert ContinuationResponse("Ready for literal").to_bytes() == b"+ Ready for literal\r\n"
    assert ContinuationResponse("YGgGCSqGSIb3\r\n").to_bytes() == b"+ YGgGCSqGSIb3\r\n"


def test_response_codes() -> None:
    def code(c: ResponseCode) -> bytes:
        return c.to_bytes()

    assert code(ResponseCode(Code.ALERT)) == b"[ALERT]"
    assert code(ResponseCode(Code.TOOBIG)) == b"[TOOBIG]"
    assert code(ResponseCode(Code.READ_ONLY)) == b"[READ-ONLY]"
    assert code(ResponseCode.uidvalidity(3857529045)) == b"[UIDVALIDITY 3857529045]"
    assert code(ResponseCode.unseen(12)) == b"[UNSEEN 12]"
    assert code(ResponseCode.capability(["IMAP4rev1", "IDLE"])) == b"[CAPABILITY IMAP4rev1 IDLE]"
    assert code(ResponseCode.badcharset(["UTF-8", "US-ASCII"])) == b"[BADCHARSET (UTF-8 US-ASCII)]"
    assert code(ResponseCode.badcharset([])) == b"[BADCHARSET]"
    assert code(ResponseCode.permanentflags([b"\\Deleted", b"\\Seen", b"\\*"])) == (
        b"[PERMANENTFLAGS (\\Deleted \\Seen \\*)]"
    )
    assert code(ResponseCode.permanentflags([])) == b"[PERMANENTFLAGS ()]"
    assert code(ResponseCode.appenduid(38505, [3955])) == b"[APPENDUID 38505 3955]"
    assert code(ResponseCode.copyuid(38505, [304, 319, 320], [3956, 3957, 3958])) == (
        b"[COPYUID 38505 304,319:320 3956:3958]"
    )
    # the pairs are kept in order, never re-sorted
    assert code(ResponseCode.copyuid(1, [5, 3], [10, 11])) == b"[COPYUID 1 5,3 10:11]"
    with pytest.raises(ValueError, match="COPYUID"):
        ResponseCode.copyuid(1, [1, 2], [3])
    with pytest.raises(ValueError, match="nz-number"):
        ResponseCode.uidnext(0)
    with pytest.raises(ValueError, match="response code"):
        ResponseCode(Code.ALERT, b"x]y")
    assert {c.value for c in Code} >= {
        "UNAVAILABLE", "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED",
        "PRIVACYREQUIRED", "CONTACTADMIN", "NOPERM", "INUSE", "EXPUNGEISSUED", "CORRUPTION",
        "SERVERBUG", "CLIENTBUG", "CANNOT", "LIMIT", "OVERQUOTA", "ALREADYEXISTS",
        "NONEXISTENT", "UIDNOTSTICKY", "PARSE",
    }  # fmt: skip


def test_fetch_response() -> None:
    response = fetch_response(
        12,
        [
            (b"UID", 4827313),
            (b"FLAGS", Raw(flag_list([b"\\Seen"]))),
            (b"INTERNALDATE", b"17-Jul-1996 02:44:25 -0700"),
            (b"BODY[HEADER.FIELDS (FROM)]", b"From: a\r\n\r\n"),
            (b"X-NESTED", [b"a", None, 3, [Raw(b"NIL")]]),
            (b"BODY[TEXT]", None),
        ],
    )
    assert isinstance(response, DataResponse)
    assert response.to_bytes() == (
        b'* 12 FETCH (UID 4827313 FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
        b'BODY[HEADER.FIELDS (FROM)] {11}\r\nFrom: a\r\n\r\n X-NESTED ("a" NIL 3 (NIL)) '
        b"BODY[TEXT] NIL)\r\n"
    )
    with pytest.raises(TypeError):
        fetch_response(1, [(b"X", True)])
    with pytest.raises(ValueError, match="nz-number"):
        fetch_response(0, [(b"UID", 1)])


def test_data_responses() -> None:
    assert exists_response(172).to_bytes() == b"* 172 EXISTS\r\n"
    assert recent_response(0).to_bytes() == b"* 0 RECENT\r\n"
    assert expunge_response(3).to_bytes() == b"* 3 EXPUNGE\r\n"
    assert flags_response([b"\\Answered", b"\\Flagged"]).to_bytes() == (
        b"* FLAGS (\\Answered \\Flagged)\r\n"
    )
    assert capability_response(["IMAP4rev1", "LITERAL+", "AUTH=PLAIN"]).to_bytes() == (
        b"* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN\r\n"
    )
    assert list_response([b"\\HasNoChildren"], b"/", b"Entw&APw-rfe").to_bytes() == (
        b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe\r\n'
    )
    assert list_response([], None, b"two words").to_bytes() == b'* LIST () NIL "two words"\r\n'
    assert list_response([], b"\\", b"x").to_bytes() == b'* LIST () "\\\\" x\r\n'
    assert lsub_response([b"\\Noselect"], b".", b"#news.comp.mail").to_bytes() == (
        b'* LSUB (\\Noselect) "." #news.comp.mail\r\n'
    )
    with pytest.raises(ValueError, match="delimiter"):
        list_response([], b"//", b"x")
    assert status_response(b"blurdybloop", [("MESSAGES", 231), ("UIDNEXT", 44292)]).to_bytes() == (
        b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"
    )
    assert search_response([2, 84, 882]).to_bytes() == b"* SEARCH 2 84 882\r\n"
    assert search_response([]).to_bytes() == b"* SEARCH\r\n"
    assert id_response(None).to_bytes() == b"* ID NIL\r\n"
    assert id_response([(b"name", b"LightMail"), (b"os", None)]).to_bytes() == (
        b'* ID ("name" "LightMail" "os" NIL)\r\n'
    )
    assert enabled_response([]).to_bytes() == b"* ENABLED\r\n"
    assert enabled_response(["UTF8=ACCEPT"]).to_bytes() == b"* ENABLED UTF8=ACCEPT\r\n"
    assert namespace_response([(b"", b"/")], None, [(b"Shared/", b"/")]).to_bytes() == (
        b'* NAMESPACE (("" "/")) NIL (("Shared/" "/"))\r\n'
    )


def test_condstore_and_qresync_responses() -> None:
    """RFC 7162: HIGHESTMODSEQ, MODIFIED and CLOSED codes, SEARCH's MODSEQ, VANISHED."""
    assert ResponseCode.highestmodseq(715194045007).to_bytes() == b"[HIGHESTMODSEQ 715194045007]"
    assert ResponseCode.highestmodseq((1 << 63) - 1).to_bytes() == (
        b"[HIGHESTMODSEQ 9223372036854775807]"
    )
    for out_of_range in (0, 1 << 63):
        with pytest.raises(ValueError, match="mod-sequence"):
            ResponseCode.highestmodseq(out_of_range)
    assert ResponseCode.modified([9, 7]).to_bytes() == b"[MODIFIED 7,9]"
    assert ResponseCode.modified([1, 2, 3, 5]).to_bytes() == b"[MODIFIED 1:3,5]"
    assert ResponseCode(Code.CLOSED).to_bytes() == b"[CLOSED]"
    assert search_response([2, 5, 6], 917162500).to_bytes() == (
        b"* SEARCH 2 5 6 (MODSEQ 917162500)\r\n"
    )
    # No match: no mod-sequence either (RFC 7162 section 3.1.6).
    assert search_response([], 917162500).to_bytes() == b"* SEARCH\r\n"
    gone = SequenceSet(((41, 41), (43, 116), (118, 118)))
    assert vanished_response(gone, earlier=True).to_bytes() == (
        b"* VANISHED (EARLIER) 41,43:116,118\r\n"
    )
    assert vanished_response(SequenceSet(((405, 405),)), earlier=False).to_bytes() == (
        b"* VANISHED 405\r\n"
    )
    with pytest.raises(ValueError, match="VANISHED"):
        vanished_response(SequenceSet(((1, STAR),)), earlier=False)
