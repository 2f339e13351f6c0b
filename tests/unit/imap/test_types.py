"""Value types of the IMAP wire layer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.imap.wire.types import (
    STAR,
    BinarySection,
    BodySection,
    FetchItem,
    SectionText,
    SequenceSet,
)


def test_resolve_rfc_examples() -> None:
    # RFC 3501 section 9: 2,4:7,9,12:* in a mailbox of 15 messages
    s = SequenceSet(((2, 2), (4, 7), (9, 9), (12, STAR)))
    assert list(s.numbers(15)) == [2, 4, 5, 6, 7, 9, 12, 13, 14, 15]
    assert s.resolve(15) == (range(2, 3), range(4, 8), range(9, 10), range(12, 16))
    # *:4,5:7 with 10 messages is 4..10
    assert SequenceSet(((STAR, 4), (5, 7))).resolve(10) == (range(4, 11),)
    # a UID range 3291:* includes the last UID even when it is smaller
    assert SequenceSet(((3291, STAR),)).resolve(100) == (range(100, 3292),)


def test_reversed_range_and_contains() -> None:
    s = SequenceSet(((4, 2),))
    assert list(s.bounds(10)) == [(2, 4)]
    assert s.contains(3, 10)
    assert not s.contains(5, 10)
    assert SequenceSet(((STAR, STAR),)).contains(7, 7)


def test_huge_range_is_not_expanded() -> None:
    s = SequenceSet(((1, 4294967295),))
    assert s.resolve(4294967295) == (range(1, 4294967296),)
    assert s.contains(4000000000, 4294967295)
    assert next(s.numbers(4294967295)) == 1


def test_star_in_an_empty_mailbox_matches_nothing() -> None:
    assert SequenceSet(((STAR, STAR),)).resolve(0) == ()
    assert SequenceSet(((1, STAR),)).resolve(0) == (range(1, 2),)  # 1:0 is 0:1, i.e. 1
    assert SequenceSet(((STAR, STAR),)).uses_star
    assert not SequenceSet(((1, 2),)).uses_star


def test_to_bytes_and_from_numbers() -> None:
    assert SequenceSet(((2, 2), (4, 7), (12, STAR))).to_bytes() == b"2,4:7,12:*"
    assert SequenceSet.from_numbers([7, 1, 2, 3, 3, 9, 10]).to_bytes() == b"1:3,7,9:10"
    assert list(SequenceSet(((1, 2),))) == [(1, 2)]


@pytest.mark.parametrize("ranges", [((0, 1),), ((1, 1 << 32),), ((1, -1),)])
def test_invalid_sets(ranges: tuple[tuple[int, int], ...]) -> None:
    with pytest.raises(ValueError, match="sequence"):
        SequenceSet(ranges)


def test_the_saved_result_marker_and_the_empty_set() -> None:
    """``$`` (RFC 5182) holds no ranges of its own; an empty saved result becomes a
    set that names no message, which the wire never carries."""
    assert SequenceSet((), saved=True).to_bytes() == b"$"
    with pytest.raises(ValueError, match='"\\$" stands for the saved search result alone'):
        SequenceSet(((1, 1),), saved=True)
    empty = SequenceSet.from_numbers([])
    assert empty == SequenceSet(())
    assert (empty.resolve(10), empty.contains(1, 10), empty.uses_star) == ((), False, False)
    with pytest.raises(ValueError, match="no wire form"):
        empty.to_bytes()


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60) | st.just(0)), min_size=1),
    st.integers(0, 50),
)
def test_resolve_matches_naive_expansion(pairs: list[tuple[int, int]], largest: int) -> None:
    s = SequenceSet(tuple((a, STAR if b == 0 else b) for a, b in pairs))
    expected: set[int] = set()
    for a, b in pairs:
        hi = largest if b == 0 else b
        expected.update(n for n in range(min(a, hi), max(a, hi) + 1) if n >= 1)
    assert list(s.numbers(largest)) == sorted(expected)
    assert all(s.contains(n, largest) == (n in expected) for n in range(0, 70))
    merged = s.resolve(largest)
    assert all(r1.stop < r2.start for r1, r2 in itertools.pairwise(merged))


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60) | st.just(0)), min_size=1),
    st.integers(1, 50),
    st.sets(st.integers(1, 70)),
    st.integers(0, 60),
)
def test_members_and_without_are_set_arithmetic(
    pairs: list[tuple[int, int]], largest: int, present: set[int], above: int
) -> None:
    """What QRESYNC's VANISHED (EARLIER) is computed with (RFC 7162 section 3.2.5)."""
    s = SequenceSet(tuple((a, STAR if b == 0 else b) for a, b in pairs))
    inside = set(s.numbers(largest))
    assert s.members(sorted(present), largest) == sorted(present & inside)
    rest = s.without(sorted(present), largest, above=above)
    expected = {n for n in inside if n <= largest and n > above} - present
    assert (set() if rest is None else set(rest.numbers(largest))) == expected
    if rest is not None:
        assert not rest.uses_star
        assert all(r1.stop < r2.start for r1, r2 in itertools.pairwise(rest.resolve(largest)))


def test_without_never_expands_a_range() -> None:
    """A client may name every UID there can be: the answer costs the live UIDs."""
    every = SequenceSet(((1, 4294967295),))
    assert every.without([2, 4294967294], 4294967295) == SequenceSet(
        ((1, 1), (3, 4294967293), (4294967295, 4294967295))
    )
    assert every.members([5, 4000000000], 4294967295) == [5, 4000000000]


def test_fetch_response_names() -> None:
    assert FetchItem.RFC822_SIZE.response_name == b"RFC822.SIZE"
    assert BodySection(peek=True).response_name == b"BODY[]"
    assert BodySection(part=(1, 2), text=SectionText.MIME).response_name == b"BODY[1.2.MIME]"
    section = BodySection(
        peek=True,
        part=(3,),
        text=SectionText.HEADER_FIELDS_NOT,
        fields=(b"From", b"X Odd"),
        partial=(10, 20),
    )
    assert section.response_name == b'BODY[3.HEADER.FIELDS.NOT (From "X Odd")]<10>'
    assert BodySection(text=SectionText.HEADER_FIELDS, fields=(b"\xff",)).section_bytes() == (
        b"HEADER.FIELDS ({1}\r\n\xff)"
    )


def test_binary_response_names() -> None:
    """RFC 3516 section 7: ``BINARY`` section-binary [``<`` number ``>``], never PEEK."""
    assert BinarySection().response_name == b"BINARY[]"
    assert BinarySection((1, 2), peek=True, partial=(5, 9)).response_name == b"BINARY[1.2]<5>"
    assert BinarySection((3,), size=True).response_name == b"BINARY.SIZE[3]"
    with pytest.raises(ValueError, match=r"BINARY\.SIZE"):
        BinarySection((1,), size=True, partial=(0, 1))
