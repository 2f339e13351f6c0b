"""SORT and THREAD (RFC 5256 section 5, RFC 5957 section 5) through the receiver:
each case is also fed one byte at a time and split everywhere (``check``)."""

from __future__ import annotations

import datetime

import pytest

from lightmail.imap.wire.commands import SortCommand, ThreadCommand
from lightmail.imap.wire.receiver import BadCommand, Receiver
from lightmail.imap.wire.types import (
    AllKey,
    AndKey,
    DateKey,
    HeaderKey,
    SequenceKey,
    SortCriterion,
    SortKey,
    TextKey,
    ThreadAlgorithm,
)
from tests.unit.imap.receiver_harness import bad, one, seq


def test_sort_rfc5256_examples() -> None:
    assert one(b"A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994\r\n") == SortCommand(
        b"A282",
        False,
        (SortCriterion(SortKey.SUBJECT),),
        "UTF-8",
        DateKey("since", datetime.date(1994, 2, 1), sent=False),
    )
    assert one(b"A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL\r\n") == SortCommand(
        b"A283",
        False,
        (SortCriterion(SortKey.SUBJECT), SortCriterion(SortKey.DATE, reverse=True)),
        "UTF-8",
        AllKey(),
    )
    assert one(b'A284 SORT (SUBJECT) US-ASCII TEXT "not in mailbox"\r\n') == one(
        b'A284 SORT (SUBJECT) "US-ASCII" TEXT {14+}\r\nnot in mailbox\r\n'
    )


def test_every_sort_key_and_the_uid_form() -> None:
    keys = b"ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO"
    command = one(b"t UID SORT (" + keys + b" REVERSE displayto) utf-8 1:3 SUBJECT x\r\n")
    assert command == SortCommand(
        b"t",
        True,
        (
            *(SortCriterion(SortKey(name.decode())) for name in keys.split()),
            SortCriterion(SortKey.DISPLAYTO, reverse=True),
        ),
        "UTF-8",
        AndKey((SequenceKey(seq((1, 3)), uid=False), HeaderKey(b"SUBJECT", b"x"))),
    )


def test_thread_rfc5256_examples() -> None:
    assert one(b'A284 THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"\r\n') == ThreadCommand(
        b"A284",
        False,
        ThreadAlgorithm.ORDEREDSUBJECT,
        "US-ASCII",
        TextKey(b"gewp", whole_message=True),
    )
    assert one(b"A285 THREAD REFERENCES UTF-8 SINCE 5-MAR-2000\r\n") == ThreadCommand(
        b"A285",
        False,
        ThreadAlgorithm.REFERENCES,
        "UTF-8",
        DateKey("since", datetime.date(2000, 3, 5), sent=False),
    )


def test_eight_bit_strings_follow_the_charset() -> None:
    command = one(b'a SORT (DATE) UTF-8 SUBJECT "caf\xc3\xa9"\r\n')
    assert isinstance(command, SortCommand)
    assert command.key == HeaderKey(b"SUBJECT", "café".encode())
    assert bad(b'a SORT (DATE) US-ASCII SUBJECT "caf\xc3\xa9"\r\n').tag == b"a"


@pytest.mark.parametrize(
    "data",
    [
        b"a SORT\r\n",
        b"a SORT DATE UTF-8 ALL\r\n",  # the criteria are a list
        b"a SORT () UTF-8 ALL\r\n",
        b"a SORT (DATE) UTF-8\r\n",  # search keys are not optional
        b"a SORT (DATE) ALL\r\n",  # nor is the charset
        b"a SORT (DATE BOGUS) UTF-8 ALL\r\n",
        b"a SORT (REVERSE) UTF-8 ALL\r\n",
        b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL\r\n",
        b"a SORT (DATE  SIZE) UTF-8 ALL\r\n",
        b"a SORT (DATE) UTF-8 ALL )\r\n",
        b"a SORT (DATE UTF-8 ALL\r\n",
        b"a SORT (DATE) \xff ALL\r\n",
        b"a SORT (DATE) UTF-8 BOGUS\r\n",
        b"a THREAD\r\n",
        b"a THREAD REFERENCES\r\n",
        b"a THREAD REFERENCES UTF-8\r\n",
        b"a THREAD X-JWZ UTF-8 ALL\r\n",
        b"a THREAD (REFERENCES) UTF-8 ALL\r\n",
        b"a UID THREAD REFERENCES UTF-8 ALL ALL (\r\n",
    ],
)
def test_malformed_sort_and_thread_are_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


def test_sort_keys_count_against_the_search_key_budget() -> None:
    r = Receiver(max_search_keys=2)
    r.receive_data(b"a SORT (DATE) UTF-8 SEEN ALL\r\nb THREAD REFERENCES UTF-8 SEEN ALL NEW\r\n")
    assert isinstance(r.next_event(), SortCommand)
    event = r.next_event()
    assert isinstance(event, BadCommand)
    assert event.tag == b"b"
