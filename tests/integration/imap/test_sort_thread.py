"""SORT, SORT=DISPLAY and THREAD (RFC 5256, RFC 5957) through imapclient, which
speaks them, on both backends; the orders expected are worked out by hand from
the messages below (base subjects, first addresses, sent dates in UTC)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]

from lightmail.accounts.service import User
from lightmail.mailstore.store import StoreMode
from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login
from tests.integration.imap.test_imapclient import connect as imapclient_connect


def _message(*fields: str, body: int = 10) -> bytes:
    header = "".join(f"{field}\r\n" for field in fields)
    return header.encode() + b"\r\n" + b"x" * body + b"\r\n"


# Sequence numbers 1 to 4 (UIDs 2 to 5: UID 1 is expunged first).
SORTED = [
    _message(
        "From: Aaron <zed@a.org>",
        "To: Zoe <b@x.org>",
        "Subject: Re: apple",
        "Date: Sat, 3 Jan 2026 10:00:00 +0000",
        body=2000,
    ),
    _message(
        "From: alice@b.org",
        "To: Carol <c@x.org>",
        "Cc: d@x.org",
        "Subject: banana",
        "Date: Thu, 1 Jan 2026 12:00:00 +0000",
        body=3000,
    ),
    _message(
        "From: =?UTF-8?Q?=C3=89mile?= <emile@c.org>",
        "To: d@x.org",
        "Subject: [list] Apple (fwd)",
        body=1000,
    ),
    _message("Subject:", "Date: Sat, 3 Jan 2026 06:00:00 -0800"),  # 14:00 UTC
]
ARRIVALS = [
    datetime(2026, 2, 1, tzinfo=UTC),
    datetime(2026, 2, 2, tzinfo=UTC),
    datetime(2025, 12, 31, tzinfo=UTC),  # the sent date of 3, which has no Date
    datetime(2026, 2, 3, tzinfo=UTC),
]


async def _append(imap: ImapTarget, user: User, message: bytes, arrival: datetime) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    await imap.backend.store.append(user.id, "INBOX", source(), internaldate=arrival)


async def _sorted_mailbox(imap: ImapTarget) -> User:
    user = await imap.new_user()
    await _append(imap, user, _message("Subject: gone"), ARRIVALS[0])
    store = imap.backend.store
    inbox = await store.get_mailbox(user.id, "INBOX")
    await store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["\\Deleted"])
    await store.expunge(user.id, inbox)
    for message, arrival in zip(SORTED, ARRIVALS, strict=True):
        await _append(imap, user, message, arrival)
    return user


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (["SUBJECT"], [4, 1, 3, 2]),  # "", APPLE, APPLE, BANANA
        (["REVERSE", "SUBJECT"], [2, 1, 3, 4]),  # ties stay in sequence order
        (["SUBJECT", "DATE"], [4, 3, 1, 2]),
        (["DATE"], [3, 2, 1, 4]),  # 4's 06:00 -0800 is after 1's 10:00 UTC
        (["REVERSE", "DATE"], [4, 1, 2, 3]),
        (["ARRIVAL"], [3, 1, 2, 4]),
        (["SIZE"], [4, 3, 1, 2]),
        (["FROM"], [4, 2, 3, 1]),  # "", ALICE, EMILE, ZED
        (["TO"], [4, 1, 2, 3]),  # "", B, C, D
        (["CC"], [1, 3, 4, 2]),
        (["DISPLAYFROM"], [4, 1, 2, 3]),  # "", AARON, ALICE@B.ORG, ÉMILE
        (["DISPLAYTO"], [4, 2, 3, 1]),  # "", CAROL, D@X.ORG, ZOE
    ],
)
async def test_sort_orders_by_each_criterion(
    imap: ImapTarget, criteria: list[str], expected: list[int]
) -> None:
    user = await _sorted_mailbox(imap)

    def conversation() -> None:
        with imapclient_connect(imap, user) as client:
            client.select_folder("INBOX")
            assert client.sort(criteria) == [seq + 1 for seq in expected]  # UID SORT
            client.use_uid = False
            assert client.sort(criteria) == expected

    await asyncio.to_thread(conversation)


async def test_sort_searches_with_the_search_keys(imap: ImapTarget) -> None:
    user = await _sorted_mailbox(imap)

    def conversation() -> None:
        with imapclient_connect(imap, user) as client:
            client.select_folder("INBOX")
            client.use_uid = False
            assert client.sort(["REVERSE", "DATE"], ["SINCE", date(2026, 1, 1)]) == [4, 1, 2]
            assert client.sort("SUBJECT", ["FROM", "c.org"]) == [3]
            assert client.sort("SUBJECT", ["SUBJECT", "pomegranate"]) == []
            assert client.sort("ARRIVAL", ["BODY", "xxxxxxxxxxx"]) == [3, 1, 2]
            with pytest.raises(IMAPClientError, match=r"BADCHARSET"):
                client.sort("DATE", "ALL", charset="ISO-8859-1")

    await asyncio.to_thread(conversation)


# Sequence numbers 1 to 8.
THREADED = [
    ("<a@x>", "", "Plans", 1),
    ("<b@x>", "References: <a@x>", "Re: Plans", 2),
    ("<c@x>", "In-Reply-To: <b@x> (Bob's message)", "Re: Plans", 3),
    ("<d@x>", "References: <missing@x>", "Other", 4),
    ("<e@x>", "References: <missing@x>", "Re: Other", 5),
    ("<f@x>", 'References: <a@x> <"b"@x>', "Re: Plans", 6),  # quoting: <b@x>
    ("<g@x>", "", "Re: Lunch", 7),
    ("<h@x>", "", "Lunch", 8),
]


async def _threaded_mailbox(imap: ImapTarget) -> User:
    user = await imap.new_user()
    for message_id, references, subject, day in THREADED:
        fields = [f"Message-ID: {message_id}", f"Subject: {subject}"]
        fields.append(f"Date: {day} Jan 2026 09:00:00 +0000")
        if references:
            fields.append(references)
        await _append(imap, user, _message(*fields), datetime(2026, 2, day, tzinfo=UTC))
    return user


async def test_thread_references_links_replies_and_gathers_subjects(imap: ImapTarget) -> None:
    user = await _threaded_mailbox(imap)

    def conversation() -> Any:
        with imapclient_connect(imap, user) as client:
            client.select_folder("INBOX")
            client.use_uid = False
            assert client.thread("REFERENCES") == (
                (1, 2, (3,), (6,)),  # 6's References end in <"b"@x>, which is <b@x>
                ((4,), (5,)),  # siblings under a parent not in the mailbox
                (8, 7),  # "Re: Lunch" joins "Lunch" by subject
            )
            assert client.thread("REFERENCES", ["NOT", "SUBJECT", "lunch"]) == (
                (1, 2, (3,), (6,)),
                ((4,), (5,)),
            )
            client.use_uid = True
            assert client.thread("REFERENCES", ["SUBJECT", "other"]) == (((4,), (5,)),)

    await asyncio.to_thread(conversation)


async def test_thread_orderedsubject_groups_by_base_subject(imap: ImapTarget) -> None:
    user = await _threaded_mailbox(imap)

    def conversation() -> Any:
        with imapclient_connect(imap, user) as client:
            client.select_folder("INBOX")
            client.use_uid = False
            assert client.thread("ORDEREDSUBJECT") == (
                (1, (2,), (3,), (6,)),
                (4, 5),
                (7, 8),
            )
            assert client.thread("ORDEREDSUBJECT", ["SUBJECT", "nothing like it"]) == ()

    await asyncio.to_thread(conversation)


async def test_sort_and_thread_replies_on_the_wire(imap: ImapTarget) -> None:
    """The exact untagged replies, and BAD for malformed commands."""
    user = await _threaded_mailbox(imap)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            _ok(wire, b"SELECT INBOX")
            assert _ok(wire, b"THREAD REFERENCES US-ASCII ALL") == [
                b"* THREAD (1 2 (3)(6))((4)(5))(8 7)"
            ]
            assert _ok(wire, b"UID SORT (REVERSE ARRIVAL) UTF-8 1:3") == [b"* SORT 3 2 1"]
            assert _ok(wire, b'SORT (SUBJECT) "UTF-8" SUBJECT "zzz"') == [b"* SORT"]
            for bad in (
                b"SORT DATE UTF-8 ALL",
                b"SORT (DATE BOGUS) UTF-8 ALL",
                b"SORT () UTF-8 ALL",
                b"SORT (DATE) UTF-8",
                b"THREAD FOO UTF-8 ALL",
                b"THREAD REFERENCES UTF-8",
            ):
                wire.send(b"B " + bad + b"\r\n")
                assert wire.until(b"B")[-1].startswith(b"B BAD"), bad

    await asyncio.to_thread(conversation)


def _ok(wire: Wire, line: bytes) -> list[bytes]:
    wire.send(b"A " + line + b"\r\n")
    lines = wire.until(b"A")
    assert lines[-1].startswith(b"A OK"), lines
    return [reply for reply in lines[:-1] if not reply.startswith(b"* OK [")]


async def test_arrival_compares_internaldate_to_the_second(imap: ImapTarget) -> None:
    """INTERNALDATE has no fractions of a second on the wire (RFC 3501 date-time),
    so two messages that arrived within one second tie, and sequence order decides."""
    user = await imap.new_user()
    noon = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    await _append(imap, user, _message("Subject: later"), noon.replace(microsecond=900_000))
    await _append(imap, user, _message("Subject: sooner"), noon.replace(microsecond=100_000))

    def conversation() -> None:
        with imapclient_connect(imap, user) as client:
            client.select_folder("INBOX")
            client.use_uid = False
            assert client.sort("ARRIVAL") == [1, 2]
            assert client.sort(["REVERSE", "ARRIVAL"]) == [1, 2]

    await asyncio.to_thread(conversation)
