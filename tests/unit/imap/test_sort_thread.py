"""SORT ordering and the THREAD algorithms (RFC 5256), without a server: messages
are built with the keys delivery would cache, answers compared as THREAD
responses (``thread_response``), which is also how deep trees are checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.imap.search import uses_parse
from lightmail.imap.sort import SortMessage, sort
from lightmail.imap.thread import thread
from lightmail.imap.wire.results import thread_response
from lightmail.imap.wire.types import (
    STAR,
    AddressKey,
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    NotKey,
    OrKey,
    SearchKey,
    SequenceKey,
    SequenceSet,
    SizeKey,
    SortCriterion,
    SortKey,
    TextKey,
    ThreadAlgorithm,
    ThreadNode,
)
from lightmail.mailstore.mime.sorting import base_subject, casemap
from lightmail.mailstore.mime.types import SortKeys

_DAY0 = datetime(2026, 1, 1, tzinfo=UTC)


def message(
    seq: int,
    *,
    subject: str = "",
    message_id: str = "",
    references: tuple[str, ...] = (),
    day: int | None = None,
    size: int = 100,
    from_: str = "",
) -> SortMessage:
    base, reply = base_subject(subject)
    sent = _DAY0 + timedelta(days=seq if day is None else day)
    keys = SortKeys(casemap(base), reply, casemap(from_), "", "", "", "", message_id, references)
    return SortMessage(seq, seq, sent, sent, size, keys)


def threads(messages: list[SortMessage], algorithm: ThreadAlgorithm) -> bytes:
    return thread_response(thread(messages, algorithm)).payload


REFERENCES = ThreadAlgorithm.REFERENCES


# -- the search (SORT and THREAD ALL read no cached parse) --------------------------

_DAY = _DAY0.date()


@pytest.mark.parametrize(
    ("key", "reads"),
    [
        (AllKey(), False),
        (AndKey((FlagKey(b"\\Seen", present=False), SizeKey("larger", 10))), False),
        (
            OrKey(
                DateKey("since", _DAY, sent=False), SequenceKey(SequenceSet(((1, STAR),)), uid=True)
            ),
            False,
        ),
        (NotKey(DateKey("on", _DAY, sent=True)), True),
        (AndKey((AllKey(), HeaderKey(b"SUBJECT", b"x"))), True),
        (OrKey(AllKey(), AddressKey(b"FROM", b"x")), True),
        (NotKey(TextKey(b"x", whole_message=False)), True),
    ],
)
def test_uses_parse(key: SearchKey, reads: bool) -> None:
    assert uses_parse(key) is reads


# -- SORT ------------------------------------------------------------------------


def test_reverse_keeps_ties_in_sequence_order() -> None:
    messages = [message(n, subject="same" if n != 2 else "other") for n in (1, 2, 3)]
    assert sort(messages, [SortCriterion(SortKey.SUBJECT)]) == [2, 1, 3]
    assert sort(messages, [SortCriterion(SortKey.SUBJECT, reverse=True)]) == [1, 3, 2]


def test_later_criteria_break_ties_and_repeats_change_nothing() -> None:
    messages = [
        message(1, from_="b", size=30),
        message(2, from_="a", size=20),
        message(3, from_="b", size=10),
    ]
    by_from_size = [SortCriterion(SortKey.FROM), SortCriterion(SortKey.SIZE)]
    assert sort(messages, by_from_size) == [2, 3, 1]
    repeated = [*by_from_size, SortCriterion(SortKey.FROM, reverse=True)] * 1000
    assert sort(messages, repeated) == [2, 3, 1]
    assert sort(reversed(messages), [SortCriterion(SortKey.ARRIVAL, reverse=True)]) == [3, 2, 1]


def test_sort_of_nothing() -> None:
    assert sort([], [SortCriterion(SortKey.DATE)]) == []


# -- THREAD response -------------------------------------------------------------


def test_thread_response_rfc5256_examples() -> None:
    tree = [
        ThreadNode(2),
        ThreadNode(
            3,
            (
                ThreadNode(
                    6,
                    (
                        ThreadNode(4, (ThreadNode(23),)),
                        ThreadNode(44, (ThreadNode(7, (ThreadNode(96),)),)),
                    ),
                ),
            ),
        ),
    ]
    assert thread_response(tree).payload == b"THREAD (2)(3 6 (4 23)(44 7 96))"
    assert thread_response([ThreadNode(None, (ThreadNode(3), ThreadNode(5)))]).payload == (
        b"THREAD ((3)(5))"
    )
    assert thread_response([]).payload == b"THREAD"


# -- ORDEREDSUBJECT --------------------------------------------------------------


def test_orderedsubject_groups_by_base_subject_and_orders_by_first_date() -> None:
    messages = [
        message(1, subject="Re: b", day=5),
        message(2, subject="a", day=3),
        message(3, subject="B", day=1),
        message(4, subject="Re: a", day=2),
        message(5, subject="c"),
        message(6, subject="[x] b (fwd)", day=4),
    ]
    # b: 3 (day 1), 6, 1; a: 4 (day 2), 2; c: 5 alone.
    assert threads(messages, ThreadAlgorithm.ORDEREDSUBJECT) == b"THREAD (3 (6)(1))(4 2)(5)"


# -- REFERENCES ------------------------------------------------------------------


def test_references_chain_and_branches() -> None:
    messages = [
        message(1, subject="q", message_id="a"),
        message(2, subject="Re: q", message_id="b", references=("a",)),
        message(3, subject="Re: q", message_id="c", references=("a", "b")),
        message(4, subject="Re: q", message_id="d", references=("a",)),
    ]
    assert threads(messages, REFERENCES) == b"THREAD (1 (2 3)(4))"


def test_missing_parents_become_one_dummy_or_vanish() -> None:
    messages = [
        message(1, subject="x", message_id="a", references=("gone",)),
        message(2, subject="y", message_id="b", references=("gone",)),
        message(3, subject="z", message_id="c", references=("gone-too",)),
        message(4, subject="w", message_id="d", references=("root", "mid")),
        message(5, subject="v", message_id="e", references=("root", "mid2")),
    ]
    # 1 and 2 share a dummy; 3's dummy has one child and goes; 4 and 5 hang under
    # dummies "mid" and "mid2" under dummy "root": they become its children.
    assert threads(messages, REFERENCES) == b"THREAD ((1)(2))(3)((4)(5))"


def test_reference_loops_are_not_closed() -> None:
    messages = [
        message(1, subject="x", message_id="a", references=("b",)),
        message(2, subject="y", message_id="b", references=("a",)),
        message(3, subject="z", message_id="c", references=("c",)),  # itself
        message(4, subject="w", message_id="d", references=("e", "d", "e")),
    ]
    assert threads(messages, REFERENCES) == b"THREAD (2 1)(3)(4)"


def test_a_long_reference_loop_is_broken_once() -> None:
    count = 500
    messages = [
        message(n, subject=f"s{n}", message_id=f"m{n}", references=(f"m{n % count + 1}",))
        for n in range(1, count + 1)
    ]
    rendered = threads(messages, REFERENCES)
    numbers = sorted(int(n) for n in rendered[len(b"THREAD (") : -1].split())
    assert numbers == list(range(1, count + 1))  # every message once, in one chain
    assert rendered.count(b"(") == 1


def test_duplicate_message_ids_are_used_by_the_first_only() -> None:
    messages = [
        message(1, subject="x", message_id="dup"),
        message(2, subject="y", message_id="dup"),
        message(3, subject="z", message_id="r", references=("dup",)),
    ]
    assert threads(messages, REFERENCES) == b"THREAD (1 3)(2)"


def test_a_later_message_fills_the_dummy_of_an_earlier_reference() -> None:
    messages = [
        message(1, subject="Re: x", message_id="b", references=("a",), day=2),
        message(2, subject="x", message_id="a", day=1),
    ]
    assert threads(messages, REFERENCES) == b"THREAD (2 1)"


def test_the_last_reference_replaces_a_parent_from_a_truncated_list() -> None:
    messages = [
        message(1, subject="a", message_id="p1"),
        message(2, subject="b", message_id="p2"),
        message(3, subject="c", message_id="kid", references=("p1",)),
        message(4, subject="d", message_id="x", references=("p2", "kid")),
    ]
    # 4's references do not move kid under p2: kid already has p1.
    assert threads(messages, REFERENCES) == b"THREAD (1 3 4)(2)"


def test_subject_gathering() -> None:
    messages = [
        message(1, subject="Re: lunch", message_id="a"),
        message(2, subject="lunch", message_id="b"),  # not a reply: takes the table
        message(3, subject="dinner", message_id="c"),
        message(4, subject="dinner", message_id="d"),  # neither a reply: a new dummy
        message(5, subject="Re: tea", message_id="e", references=("gone",)),
        message(6, subject="Re: tea", message_id="f", references=("gone",)),
        message(7, subject="tea", message_id="g"),
        message(8, subject="", message_id="h"),
        message(9, subject="", message_id="i"),  # empty subjects are never gathered
    ]
    assert threads(messages, REFERENCES) == (b"THREAD (2 1)((3)(4))((5)(6)(7))(8)(9)")


def test_siblings_sort_by_sent_date_then_sequence() -> None:
    messages = [
        message(1, subject="x", message_id="a", day=1),
        message(2, subject="x", message_id="b", references=("a",), day=9),
        message(3, subject="x", message_id="c", references=("a",), day=5),
        message(4, subject="x", message_id="d", references=("a",), day=5),
    ]
    assert threads(messages, REFERENCES) == b"THREAD (1 (3)(4)(2))"


@pytest.mark.parametrize("algorithm", list(ThreadAlgorithm))
def test_very_deep_chains_need_no_recursion(algorithm: ThreadAlgorithm) -> None:
    depth = 20_000
    messages = [
        message(n, subject="Re: deep", message_id=f"m{n}", references=(f"m{n - 1}",))
        for n in range(1, depth + 1)
    ]
    rendered = threads(messages, algorithm)
    if algorithm is REFERENCES:
        assert rendered == b"THREAD (" + b" ".join(b"%d" % n for n in range(1, depth + 1)) + b")"
    else:
        assert rendered.startswith(b"THREAD (1 (2)(3)")


def test_very_deep_branching_renders_without_recursion() -> None:
    depth = 20_000
    messages = [message(1, subject="t", message_id="m1")]
    for n in range(2, depth + 1):  # each parent has a leaf and a deeper child
        parent = f"m{n - 1 - (n % 2 == 1)}" if n > 2 else "m1"
        messages.append(message(n, subject="t", message_id=f"m{n}", references=(parent,)))
    rendered = threads(messages, REFERENCES)
    assert rendered.count(b"(") == rendered.count(b")")
    assert sorted(int(n) for n in rendered[7:].replace(b"(", b" ").replace(b")", b" ").split()) == (
        list(range(1, depth + 1))
    )


_IDS = st.sampled_from(["a", "b", "c", "d", "e", "f", ""])


@st.composite
def _tangles(draw: st.DrawFn) -> list[SortMessage]:
    """Messages whose ids and references come from a small pool: duplicates,
    loops, self-references and missing parents all happen."""
    count = draw(st.integers(0, 12))
    return [
        message(
            seq,
            subject=draw(st.sampled_from(["", "x", "Re: x", "y", "Fwd: y", "[l] x"])),
            message_id=draw(_IDS),
            references=tuple(draw(st.lists(_IDS.filter(bool), max_size=4))),
            day=draw(st.integers(0, 3)),
        )
        for seq in range(1, count + 1)
    ]


def _numbers(rendered: bytes) -> list[int]:
    return sorted(int(n) for n in rendered[6:].replace(b"(", b" ").replace(b")", b" ").split())


@given(_tangles(), st.sampled_from(list(ThreadAlgorithm)))
def test_every_message_is_threaded_once_whatever_the_references(
    messages: list[SortMessage], algorithm: ThreadAlgorithm
) -> None:
    rendered = threads(messages, algorithm)
    assert _numbers(rendered) == [m.seq for m in messages]
    depth = 0
    for char in rendered[6:]:
        depth += {ord("("): 1, ord(")"): -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    assert b"()" not in rendered
    assert threads(list(reversed(messages)), algorithm) == rendered  # input order is no matter
