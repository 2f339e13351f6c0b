"""The vCard parser (RFC 6350 / RFC 2426 content lines, RFC 6352 section 5.1 rules) and
the CardDAV filters (RFC 6352 section 10.5): valid cards, malformed and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.calendars.vcard import (
    MAX_PROPERTIES,
    CardFilter,
    CardPropFilter,
    ParamFilter,
    TextMatch,
    join_vcards,
    parse_object,
    parse_vcard,
    partial,
    split_vcards,
)
from lightmail.errors import InvalidAddressData

V4 = (
    b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\n"
    b"FN:J. Doe\r\nN:Doe;J.;;;\r\nEMAIL;TYPE=work:jdoe@example.com\r\n"
    b'item1.TEL;VALUE=uri;TYPE="voice,home";PREF=1:tel:+1-555-555-5555;ext=5555\r\n'
    b"NOTE:line one\\nline two\\, with comma\r\nEND:VCARD\r\n"
)
V3 = (
    b"BEGIN:VCARD\nVERSION:3.0\nUID:abc-3\nFN:Fr\xc3\xa9d\xc3\xa9ric Chopin\n"
    b"N:Chopin;Fr\xc3\xa9d\xc3\xa9ric\nTEL;HOME;VOICE:+48 22 000\nNICKNAME:Fred\n"
    b"NOTE:a long note that is\n  folded over two lines\nEND:VCARD\n"
)


def test_a_vcard_4_is_parsed_with_groups_quoted_parameters_and_escapes() -> None:
    card = parse_vcard(V4)
    assert (card.version, card.uid) == ("4.0", "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1")
    tel = next(prop for prop in card.properties if prop.name == "TEL")
    assert tel.group == "ITEM1"
    assert tel.param("TYPE") == ("voice", "home")
    assert tel.value == "tel:+1-555-555-5555;ext=5555"
    note = next(prop for prop in card.properties if prop.name == "NOTE")
    assert note.text() == "line one\nline two, with comma"
    assert parse_object(V4).component == "VCARD"


def test_a_vcard_3_with_bare_types_lf_endings_and_folding_is_parsed() -> None:
    card = parse_vcard(V3)
    assert (card.version, card.uid) == ("3.0", "abc-3")
    tel = next(prop for prop in card.properties if prop.name == "TEL")
    assert tel.param("TYPE") == ("HOME", "VOICE")
    note = next(prop for prop in card.properties if prop.name == "NOTE")
    assert note.value == "a long note that is folded over two lines"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "BEGIN:VCARD"),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "BEGIN:VCARD"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nEND:VCARD\r\n", "UID"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:\r\nFN:x\r\nEND:VCARD\r\n", "UID"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nUID:b\r\nFN:x\r\nEND:VCARD\r\n", "UID"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nEND:VCARD\r\n", "FN"),
        (b"BEGIN:VCARD\r\nVERSION:2.1\r\nUID:a\r\nFN:x\r\nEND:VCARD\r\n", "VERSION"),
        (b"BEGIN:VCARD\r\nUID:a\r\nFN:x\r\nEND:VCARD\r\n", "VERSION"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:x\r\n", "END:VCARD"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN x\r\nEND:VCARD\r\n", "without a value"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nF N:x\r\nEND:VCARD\r\n", "property name"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:\x00\r\nEND:VCARD\r\n", "control"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:\xff\r\nFN:x\r\nEND:VCARD\r\n", "UTF-8"),
        (b'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN;X="a:b\r\nEND:VCARD\r\n', "value"),
        (b" BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:x\r\nEND:VCARD\r\n", "continuation"),
        (
            b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:x\r\nBEGIN:VCARD\r\nEND:VCARD\r\n"
            b"END:VCARD\r\n",
            "single vCard",
        ),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:" + b"u" * 256 + b"\r\nFN:x\r\nEND:VCARD\r\n", "UID"),
    ],
)
def test_malformed_vcards_are_refused_as_invalid_address_data(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidAddressData, match=reason) as refused:
        parse_vcard(data)
    assert refused.value.precondition == "valid-address-data"


def test_a_vcard_with_too_many_properties_is_refused() -> None:
    body = b"NOTE:x\r\n" * (MAX_PROPERTIES + 1)
    with pytest.raises(InvalidAddressData, match="more than"):
        parse_vcard(b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:x\r\n" + body + b"END:VCARD\r\n")


@settings(max_examples=400)
@given(st.binary(max_size=400))
def test_any_bytes_are_a_vcard_or_invalid_address_data(data: bytes) -> None:
    refused: InvalidAddressData | None = None
    try:
        card = parse_vcard(data)
    except InvalidAddressData as error:
        refused = error
    else:
        assert card.uid
    assert refused is None or refused.precondition == "valid-address-data"


_LINE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)


@settings(max_examples=400)
@given(st.lists(_LINE, max_size=8), st.sampled_from(["\r\n", "\n"]))
def test_random_lines_inside_a_vcard_are_parsed_or_refused_cleanly(
    lines: list[str], newline: str
) -> None:
    text = newline.join(["BEGIN:VCARD", "VERSION:4.0", "UID:u", "FN:f", *lines, "END:VCARD"])
    try:
        card = parse_vcard(text.encode())
    except InvalidAddressData:
        return
    assert card.uid == "u"
    for prop in card.properties:
        assert prop.head + ":" + prop.value in text.replace(newline + " ", "").replace(
            newline + "\t", ""
        )


def test_a_vcf_file_splits_into_cards_and_joins_back() -> None:
    split = split_vcards(V4 + V3)
    assert [uid for uid, _ in split] == ["urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1", "abc-3"]
    assert split[0][1] == V4
    again = split_vcards(join_vcards(blob for _, blob in split))
    assert again == [(split[0][0], V4), (split[1][0], V3.replace(b"\n", b"\r\n"))]
    with pytest.raises(InvalidAddressData):
        split_vcards(b"garbage\r\n" + V4)
    with pytest.raises(InvalidAddressData):
        split_vcards(V4 + b"BEGIN:VCARD\r\nVERSION:4.0\r\n")


def test_partial_retrieval_keeps_the_named_properties_and_novalue_drops_values() -> None:
    card = parse_vcard(V4)
    text = partial(card, [("FN", False), ("TEL", True), ("X-NONE.EMAIL", False)])
    assert text == (
        'BEGIN:VCARD\r\nVERSION:4.0\r\nFN:J. Doe\r\nitem1.TEL;VALUE=uri;TYPE="voice,home";'
        "PREF=1:\r\nEND:VCARD\r\n"
    )


@pytest.mark.parametrize(
    ("match", "value", "expected"),
    [
        (TextMatch("doe"), "J. Doe", True),
        (TextMatch("DOE", match_type="equals"), "doe", True),
        (TextMatch("J.", match_type="starts-with"), "J. Doe", True),
        (TextMatch("Doe", match_type="ends-with"), "J. Doe", True),
        (TextMatch("J.", match_type="ends-with"), "J. Doe", False),
        (TextMatch("doe", negate=True), "J. Doe", False),
        (TextMatch("doe", collation="i;octet"), "J. Doe", False),
        (TextMatch("FRÉD", collation="i;ascii-casemap"), "Frédéric", False),
        (TextMatch("FRÉD"), "frédéric", True),  # i;unicode-casemap, the default
        (TextMatch("frede"), "Fre\u0301de\u0301ric", False),
        (TextMatch("fre\u0301de\u0301"), "Frédéric", True),  # both decomposed
    ],
)
def test_text_match_collations_and_match_types(
    match: TextMatch, value: str, expected: bool
) -> None:
    assert match.matches(value) is expected


def test_filters_combine_prop_filters_params_and_groups() -> None:
    card = parse_vcard(V4)
    fn = CardPropFilter("FN", texts=(TextMatch("doe"),))
    nick = CardPropFilter("NICKNAME", texts=(TextMatch("x"),))
    assert CardFilter((fn, nick)).matches(card)
    assert not CardFilter((fn, nick), all_of=True).matches(card)
    assert CardFilter().matches(card)
    assert CardFilter((CardPropFilter("NICKNAME", is_not_defined=True),)).matches(card)
    assert CardFilter((CardPropFilter("ITEM1.TEL"),)).matches(card)
    assert not CardFilter((CardPropFilter("ITEM2.TEL"),)).matches(card)
    home = ParamFilter("TYPE", text=TextMatch("home", match_type="equals"))
    assert CardFilter((CardPropFilter("TEL", params=(home,)),)).matches(card)
    no_pref = ParamFilter("PREF", is_not_defined=True)
    both = CardPropFilter("TEL", all_of=True, params=(home, no_pref))
    assert not CardFilter((both,)).matches(card)
    assert CardFilter((CardPropFilter("TEL", params=(home, no_pref)),)).matches(card)


def test_a_continuation_after_a_blank_line_is_refused_not_joined_across_it() -> None:
    text = b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u\r\nFN:f\r\n\r\n 0\r\nEND:VCARD\r\n"
    with pytest.raises(InvalidAddressData, match="continuation"):
        parse_vcard(text)
