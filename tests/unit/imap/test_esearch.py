"""Extended SEARCH and SORT: the result options (RFC 4731 ESEARCH, RFC 9394 PARTIAL,
RFC 5267 ESORT) through the receiver, the ESEARCH response, and which messages an
answer returns (``result_of``), with the RFCs' examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.imap.search import Found, result_of, uses_search_result, with_search_result
from lightmail.imap.wire.commands import SearchCommand, SortCommand
from lightmail.imap.wire.results import ESearchData, esearch_response
from lightmail.imap.wire.types import (
    AllKey,
    AndKey,
    FlagKey,
    ModseqKey,
    NotKey,
    OrKey,
    PartialRange,
    SearchReturn,
    SequenceKey,
    SequenceSet,
    SortCriterion,
    SortKey,
)
from tests.unit.imap.receiver_harness import bad, one, seq


def returning(*options: str, partial: PartialRange | None = None) -> SearchReturn:
    return SearchReturn(frozenset(options), partial)


EXTENDED_COMMANDS = [
    (
        b"A282 SEARCH RETURN (MIN COUNT) FLAGGED\r\n",
        SearchCommand(b"A282", False, None, FlagKey(b"\\Flagged"), returning("MIN", "COUNT")),
    ),
    (
        b"A283 SEARCH RETURN () FLAGGED\r\n",
        SearchCommand(b"A283", False, None, FlagKey(b"\\Flagged"), returning("ALL")),
    ),
    (
        b"A285 UID SEARCH RETURN (MIN MAX) 1:5000\r\n",
        SearchCommand(
            b"A285", True, None, SequenceKey(seq((1, 5000)), uid=False), returning("MIN", "MAX")
        ),
    ),
    (
        b"a search return (count all min max) charset utf-8 all\r\n",
        SearchCommand(b"a", False, "UTF-8", AllKey(), returning("COUNT", "ALL", "MIN", "MAX")),
    ),
    (
        b'a1 SEARCH RETURN (MIN) MODSEQ "/flags/\\\\draft" all 620162338\r\n',
        SearchCommand(b"a1", False, None, ModseqKey(620162338), returning("MIN")),
    ),
    (
        b"A01 UID SEARCH RETURN (PARTIAL -1:-100) UNDELETED\r\n",
        SearchCommand(
            b"A01",
            True,
            None,
            FlagKey(b"\\Deleted", present=False),
            returning(partial=PartialRange(-1, -100)),
        ),
    ),
    (
        b"A02 UID SEARCH RETURN (COUNT PARTIAL 23500:24000 MIN) ALL\r\n",
        SearchCommand(
            b"A02",
            True,
            None,
            AllKey(),
            returning("COUNT", "MIN", partial=PartialRange(23500, 24000)),
        ),
    ),
    (
        b"E01 UID SORT RETURN () (REVERSE DATE) UTF-8 UNDELETED\r\n",
        SortCommand(
            b"E01",
            True,
            (SortCriterion(SortKey.DATE, reverse=True),),
            "UTF-8",
            FlagKey(b"\\Deleted", present=False),
            returning("ALL"),
        ),
    ),
    (
        b"a SORT RETURN (MIN MAX PARTIAL 1:10) (ARRIVAL) US-ASCII ALL\r\n",
        SortCommand(
            b"a",
            False,
            (SortCriterion(SortKey.ARRIVAL),),
            "US-ASCII",
            AllKey(),
            returning("MIN", "MAX", partial=PartialRange(1, 10)),
        ),
    ),
]


@pytest.mark.parametrize(("data", "expected"), EXTENDED_COMMANDS)
def test_extended_search_and_sort_parse(data: bytes, expected: object) -> None:
    assert one(data) == expected


def test_a_plain_search_has_no_result_options_and_return_alone_is_a_key_error() -> None:
    assert one(b"a SEARCH ALL\r\n") == SearchCommand(b"a", False, None, AllKey())
    assert bad(b"a SEARCH RETURN\r\n").tag == b"a"


@pytest.mark.parametrize(
    "data",
    [
        b"a SEARCH RETURN (MIN)\r\n",  # no search key
        b"a SEARCH RETURN (MIN) \r\n",
        b"a SEARCH RETURN (FOO) ALL\r\n",
        b"a SEARCH RETURN (MIN ) ALL\r\n",
        b"a SEARCH RETURN ( MIN) ALL\r\n",
        b"a SEARCH RETURN (MIN  MAX) ALL\r\n",
        b"a SEARCH RETURN (MIN MAX min) ALL\r\n",
        b"a SEARCH RETURN (MIN ALL\r\n",
        b"a SEARCH RETURN (MIN)ALL\r\n",
        b"a SEARCH RETURN  (MIN) ALL\r\n",
        b"a SEARCH RETURN ((MIN)) ALL\r\n",
        b"a SEARCH CHARSET UTF-8 RETURN (MIN) ALL\r\n",  # RETURN comes first
        b"a SEARCH RETURN (ALL PARTIAL 1:5) ALL\r\n",  # RFC 9394 section 3.1
        b"a SEARCH RETURN (PARTIAL 1:5 ALL) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL 1) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL 0:5) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL 1:*) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL -1:5) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL 1:-5) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL -0:-5) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL --1:-5) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL 1:4294967296) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL 1,3) ALL\r\n",
        b"a SEARCH RETURN (PARTIAL 1:3:5) ALL\r\n",
        b"a SORT (DATE) RETURN (MIN) UTF-8 ALL\r\n",
        b"a SORT RETURN (MIN) UTF-8 ALL\r\n",
        b"a THREAD RETURN (MIN) REFERENCES UTF-8 ALL\r\n",
        b"a SEARCH RETURN (" + b"MIN " * 500 + b"MIN) ALL\r\n",
    ],
)
def test_malformed_result_options_are_bad(data: bytes) -> None:
    """BAD, and the next command still parses (``bad``)."""
    assert bad(data).tag == b"a"


def test_a_partial_range_names_results_from_either_end() -> None:
    results = list(range(10, 20))
    assert PartialRange(1, 3).pick(results) == [10, 11, 12]
    assert PartialRange(3, 1).pick(results) == [10, 11, 12]
    assert PartialRange(-1, -3).pick(results) == [17, 18, 19]
    assert PartialRange(-3, -1).pick(results) == [17, 18, 19]
    assert PartialRange(9, 20).pick(results) == [18, 19]
    assert PartialRange(-9, -20).pick(results) == [10, 11]
    assert PartialRange(11, 20).pick(results) == []
    assert PartialRange(-11, -20).pick(results) == []
    assert PartialRange(1, 4294967295).pick([]) == []


@given(
    st.lists(st.integers(1, 50), max_size=40),
    st.integers(1, 60),
    st.integers(1, 60),
    st.booleans(),
)
def test_a_partial_range_picks_the_same_results_as_counting_them(
    results: list[int], first: int, last: int, negative: bool
) -> None:
    sign = -1 if negative else 1
    low, high = sorted((first, last))
    positions = [
        i
        for i in range(1, len(results) + 1)
        if low <= (len(results) - i + 1 if negative else i) <= high
    ]
    picked = PartialRange(sign * first, sign * last).pick(results)
    assert picked == [results[i - 1] for i in positions]


def test_esearch_responses_rfc4731_examples() -> None:
    def line(tag: bytes, result: ESearchData, *, uid: bool = False) -> bytes:
        return esearch_response(tag, result, uid=uid).to_bytes()

    assert line(b"A282", ESearchData(min=2, count=3)) == b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n'
    assert line(b"A283", ESearchData(all=(2, 10, 11))) == b'* ESEARCH (TAG "A283") ALL 2,10:11\r\n'
    assert line(b"A285", ESearchData(min=7, max=3800), uid=True) == (
        b'* ESEARCH (TAG "A285") UID MIN 7 MAX 3800\r\n'
    )
    assert line(b"A286", ESearchData(count=0)) == b'* ESEARCH (TAG "A286") COUNT 0\r\n'
    assert line(b"a", ESearchData()) == b'* ESEARCH (TAG "a")\r\n'
    assert line(b"a4", ESearchData(min=2, count=10, modseq=917162500)) == (
        b'* ESEARCH (TAG "a4") MIN 2 COUNT 10 MODSEQ 917162500\r\n'
    )
    # RFC 5267 section 3.3: sort order kept, ranges only ascending.
    assert line(b"E01", ESearchData(all=(23765, 23764, 23763, 23761, 1, 2, 3)), uid=True) == (
        b'* ESEARCH (TAG "E01") UID ALL 23765,23764,23763,23761,1:3\r\n'
    )
    # RFC 9394 section 3.1.
    assert line(b"A04", ESearchData(partial=(PartialRange(24000, 24500), ())), uid=True) == (
        b'* ESEARCH (TAG "A04") UID PARTIAL (24000:24500 NIL)\r\n'
    )
    assert line(b"A01", ESearchData(partial=(PartialRange(-1, -3), (7, 8, 10)))) == (
        b'* ESEARCH (TAG "A01") PARTIAL (-1:-3 7:8,10)\r\n'
    )


def found(*numbers: int) -> list[Found]:
    """Messages numbered as given, UID 100 more, mod-sequence 1000 more."""
    return [(n, n + 100, n + 1000) for n in numbers]


def test_result_of_answers_what_was_asked_rfc4731() -> None:
    hits = found(2, 10, 11, 15)
    result, _ = result_of(hits, returning("MIN", "COUNT"), by_modseq=False)
    assert result == ESearchData(min=2, count=4)
    result, _ = result_of(hits, returning("ALL"), by_modseq=False)
    assert result == ESearchData(all=(2, 10, 11, 15))
    result, _ = result_of([], returning("MIN", "MAX", "ALL", "COUNT"), by_modseq=True)
    assert result == ESearchData(count=0)  # MIN, MAX, ALL and MODSEQ left out when none
    result, _ = result_of(found(5, 3, 9), returning("MIN", "MAX"), by_modseq=False)
    assert result == ESearchData(min=5, max=9)  # first and last in result order (ESORT)


def test_modseq_is_of_the_messages_returned_rfc4731_section_3_2() -> None:
    hits = [(2, 2, 917162488), (5, 5, 917162500), (23, 23, 907162321)]
    assert result_of(hits, returning("MIN"), by_modseq=True)[0].modseq == 917162488
    assert result_of(hits, returning("MAX"), by_modseq=True)[0].modseq == 907162321
    assert result_of(hits, returning("MIN", "MAX"), by_modseq=True)[0].modseq == 917162488
    assert result_of(hits, returning("MIN", "COUNT"), by_modseq=True)[0].modseq == 917162500
    assert result_of(hits, returning("ALL"), by_modseq=True)[0].modseq == 917162500
    partial = returning(partial=PartialRange(-1, -1))
    assert result_of(hits, partial, by_modseq=True)[0].modseq == 907162321
    beyond = returning(partial=PartialRange(10, 20))  # none returned: all found
    assert result_of(hits, beyond, by_modseq=True)[0].modseq == 917162500


def test_partial_results_and_the_messages_returned_rfc9394_section_3_2() -> None:
    hits = found(*range(1, 11))
    uid = [n + 100 for n in range(1, 11)]
    result, returned = result_of(hits, returning(partial=PartialRange(-1, -3)), by_modseq=False)
    assert result == ESearchData(partial=(PartialRange(-1, -3), (8, 9, 10)))
    assert returned == uid[7:]
    _, returned = result_of(hits, returning("MIN", partial=PartialRange(5, 6)), by_modseq=False)
    assert returned == [uid[0], uid[4], uid[5]]
    _, returned = result_of(
        hits, returning("MIN", "MAX", partial=PartialRange(5, 5)), by_modseq=False
    )
    assert returned == [uid[0], uid[4], uid[9]]
    _, returned = result_of(
        hits, returning("COUNT", "MIN", partial=PartialRange(5, 5)), by_modseq=False
    )
    assert returned == uid
    result, returned = result_of(hits, returning(partial=PartialRange(11, 20)), by_modseq=False)
    assert result == ESearchData(partial=(PartialRange(11, 20), ()))
    assert returned == []


def test_every_dollar_of_a_search_program_becomes_the_saved_result() -> None:
    """RFC 5182 section 2.2, example 4: ``$`` by number, ``UID $`` by UID, at any depth."""
    saved = SequenceSet((), saved=True)
    numbers, uids = seq((2, 3)), seq((12, 13))
    key = AndKey(
        (
            OrKey(SequenceKey(saved, uid=False), NotKey(SequenceKey(saved, uid=True))),
            SequenceKey(seq((1, 1)), uid=False),
        )
    )
    assert uses_search_result(key)
    rewritten = with_search_result(key, numbers, uids)
    assert rewritten == AndKey(
        (
            OrKey(SequenceKey(numbers, uid=False), NotKey(SequenceKey(uids, uid=True))),
            SequenceKey(seq((1, 1)), uid=False),
        )
    )
    assert not uses_search_result(rewritten)
    assert with_search_result(AllKey(), numbers, uids) == AllKey()
