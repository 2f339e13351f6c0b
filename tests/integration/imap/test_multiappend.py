"""MULTIAPPEND (RFC 3502) over a raw socket: all the messages of one APPEND, or none.

Each refusal and each break leaves the mailbox as it was, and no blob behind.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from lightmail.accounts.service import User
from lightmail.imap.handlers.append import MAX_MESSAGES
from tests.integration.imap.conftest import ImapFactory, ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login, still_usable

FIRST = b"From: ann@example.org\r\nSubject: one\r\n\r\nFirst.\r\n"
SECOND = b"From: bob@example.org\r\nSubject: two\r\n\r\nSecond message.\r\n"
THIRD = b"From: cy@example.org\r\nSubject: three\r\n\r\nThird, the last.\r\n"


def head(message: bytes, *, sync: bool) -> bytes:
    return b"{%d%s}\r\n" % (len(message), b"" if sync else b"+")


def messages_in(wire: Wire, mailbox: bytes = b"INBOX") -> int:
    wire.send(b"s1 STATUS " + mailbox + b" (MESSAGES)\r\n")
    found = re.fullmatch(rb"\* STATUS \S+ \(MESSAGES ([0-9]+)\)", wire.line())
    assert found is not None
    assert wire.line() == b"s1 OK Status completed"
    return int(found[1])


async def blobs(imap: ImapTarget) -> set[str]:
    """The message blobs in the store; each test has a store of its own."""
    return {info.key async for page in imap.backend.blobs.list("eml/") for info in page}


async def no_blobs_soon(imap: ImapTarget) -> None:
    """The server deletes the blobs of a broken-off APPEND as the connection ends."""
    for _ in range(100):
        if not await blobs(imap):
            return
        await asyncio.sleep(0.05)
    assert await blobs(imap) == set()


async def test_two_messages_sync_then_non_sync(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"s0 SELECT INBOX\r\n")
            wire.until(b"s0")
            wire.send(b"a1 APPEND INBOX (\\Seen) " + head(FIRST, sync=True))
            assert wire.line().startswith(b"+ ")
            wire.send(FIRST + b' (\\Flagged) "07-Feb-1994 22:43:04 -0800" ')
            wire.send(head(SECOND, sync=False) + SECOND + b"\r\n")
            lines = wire.until(b"a1")
            assert lines[:-1] == [b"* 2 EXISTS", b"* 2 RECENT"]
            reply = re.fullmatch(rb"a1 OK \[APPENDUID ([0-9]+) 1:2\] Append completed", lines[-1])
            assert reply is not None
            wire.send(b"f1 UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE)\r\n")
            fetched = wire.until(b"f1")
            assert fetched[0].startswith(b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) INTERNALDATE ")
            assert fetched[0].endswith(b" RFC822.SIZE %d)" % len(FIRST))
            assert fetched[1] == (
                b'* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) INTERNALDATE "07-Feb-1994 22:43:04'
                b' -0800" RFC822.SIZE %d)' % len(SECOND)
            )

    await asyncio.to_thread(conversation)


async def test_three_messages_in_order_with_consecutive_uids(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"a0 APPEND INBOX " + head(FIRST, sync=False) + FIRST + b"\r\n")
            assert wire.line().startswith(b"a0 OK [APPENDUID ")
            wire.send(b"a1 APPEND INBOX " + head(FIRST, sync=False) + FIRST)
            wire.send(b" " + head(SECOND, sync=True))
            assert wire.line().startswith(b"+ ")
            wire.send(SECOND + b" () " + head(THIRD, sync=True))
            assert wire.line().startswith(b"+ ")
            wire.send(THIRD + b"\r\n")
            assert re.fullmatch(rb"a1 OK \[APPENDUID [0-9]+ 2:4\] Append completed", wire.line())
            wire.send(b"s0 EXAMINE INBOX\r\n")
            wire.until(b"s0")
            wire.send(b"f1 FETCH 2:4 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
            subjects = [line for line in wire.until(b"f1") if line.startswith(b"Subject: ")]
            assert subjects == [b"Subject: one", b"Subject: two", b"Subject: three"]

    await asyncio.to_thread(conversation)


async def refused_whole(imap: ImapTarget, user: User, command: bytes, reply: bytes) -> None:
    """``command`` (tagged a1) is answered ``reply...``; the session goes on and
    nothing of the command is stored, not even a blob."""

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(command)
            assert wire.line().startswith(reply)
            still_usable(wire)
            assert messages_in(wire) == 0

    await asyncio.to_thread(conversation)
    assert await blobs(imap) == set()


async def test_one_message_too_big_refuses_the_whole_command(imap_factory: ImapFactory) -> None:
    imap = await imap_factory(max_append_size="64K")
    # RFC 7889: the third is refused before any octet of it is sent.
    command = b"a1 APPEND INBOX " + head(FIRST, sync=False) + FIRST
    command += b" " + head(SECOND, sync=False) + SECOND + b" {%d}\r\n" % (64 * 1024 + 1)
    await refused_whole(imap, await imap.new_user(), command, b"a1 NO [TOOBIG] ")


async def test_second_message_over_quota_stores_nothing(imap: ImapTarget) -> None:
    user = await imap.backend.new_user(quota=len(FIRST) + len(SECOND) - 1)
    # Non-synchronizing: the refused message and the one after it are on their
    # way, and are read and dropped.
    command = b"a1 APPEND INBOX " + head(FIRST, sync=False) + FIRST
    command += b" " + head(SECOND, sync=False) + SECOND
    command += b" " + head(THIRD, sync=False) + THIRD + b"\r\n"
    await refused_whole(imap, user, command, b"a1 NO [OVERQUOTA] ")

    def each_fits_alone() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"a2 APPEND INBOX " + head(SECOND, sync=False) + SECOND + b"\r\n")
            assert wire.line().startswith(b"a2 OK [APPENDUID ")

    await asyncio.to_thread(each_fits_alone)


async def test_empty_message_cancels_the_command(imap: ImapTarget) -> None:
    # RFC 3501 6.3.11: a zero-length literal is an error; it cancels the APPEND.
    command = b"a1 APPEND INBOX " + head(FIRST, sync=False) + FIRST + b" {0}\r\n"
    await refused_whole(imap, await imap.new_user(), command, b"a1 NO Empty message")


SMUGGLED = b"x1 DELETE INBOX\r\n"


@pytest.mark.parametrize(
    "between",
    [
        # A flag list that does not close: the literal announced at the end of
        # that line is dropped, not run as a command.
        b" (\\Seen " + head(SMUGGLED, sync=False) + SMUGGLED + b"\r\n",
        b"garbage\r\n",
        b' "31-Feb-2024 00:00:00 +0000" ' + head(SECOND, sync=True),
    ],
)
async def test_bad_syntax_between_messages_stores_nothing(imap: ImapTarget, between: bytes) -> None:
    command = b"a1 APPEND INBOX " + head(FIRST, sync=False) + FIRST + between
    await refused_whole(imap, await imap.new_user(), command, b"a1 BAD ")


async def test_disconnect_in_the_middle_stores_nothing(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def first_of_two(wire: Wire) -> None:
        login(wire, user)
        wire.send(b"a1 APPEND INBOX " + head(FIRST, sync=False) + FIRST)
        wire.send(b" " + head(SECOND, sync=True))
        assert wire.line().startswith(b"+ ")

    def conversation() -> None:
        with connect(imap) as wire:
            first_of_two(wire)  # then gone, before the second message
        with connect(imap) as wire:
            first_of_two(wire)
            wire.send(SECOND[:10])  # gone in the middle of the second message
        with connect(imap) as wire:
            first_of_two(wire)
            wire.send(SECOND)  # gone before the CRLF that ends the command

    await asyncio.to_thread(conversation)
    await no_blobs_soon(imap)

    def check(user: User) -> None:
        with connect(imap) as wire:
            login(wire, user)
            assert messages_in(wire) == 0

    await asyncio.to_thread(check, user)


async def test_more_messages_than_the_limit_refuses_the_whole_command(imap: ImapTarget) -> None:
    """Each message holds a blob until the command ends: their number is bounded."""
    command = b"a1 APPEND INBOX " + b" ".join([head(FIRST, sync=False) + FIRST] * MAX_MESSAGES)
    command += b" " + head(SECOND, sync=False) + SECOND + b"\r\n"
    await refused_whole(imap, await imap.new_user(), command, b"a1 NO [LIMIT] ")
