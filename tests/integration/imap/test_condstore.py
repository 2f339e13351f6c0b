"""CONDSTORE (RFC 7162 section 3.1) with imapclient and over a raw socket, on both backends.

Mod-sequences: HIGHESTMODSEQ in SELECT/EXAMINE and STATUS, FETCH MODSEQ and
CHANGEDSINCE, conditional STORE (UNCHANGEDSINCE) with MODIFIED, SEARCH MODSEQ,
MODSEQ in the FETCH responses that tell of flag changes once CONDSTORE is
enabled, and CLOSED when a SELECT replaces the selected mailbox.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import imapclient  # type: ignore[import-untyped]

from lightmail.accounts.service import User
from tests.integration.imap.conftest import PASSWORD, ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login
from tests.integration.imap.test_keywords import mailbox_with


def highestmodseq(lines: list[bytes]) -> int:
    [value] = [
        m.group(1) for m in map(re.compile(rb"\* OK \[HIGHESTMODSEQ (\d+)\]").match, lines) if m
    ]
    return int(value)


def command(wire: Wire, tag: bytes, command: bytes) -> list[bytes]:
    wire.send(tag + b" " + command + b"\r\n")
    return wire.until(tag)


@contextmanager
def _imapclient(imap: ImapTarget, user: User) -> Iterator[Any]:
    client = imapclient.IMAPClient(imap.host, imap.port, ssl=False, timeout=30)
    try:
        client.login(user.address, PASSWORD)
        yield client
    finally:
        client.logout()


async def test_imapclient_syncs_flags_by_modseq(imap: ImapTarget) -> None:
    """The CONDSTORE calls of imapclient: ENABLE, SELECT's HIGHESTMODSEQ, STATUS,
    FETCH MODSEQ and CHANGEDSINCE, SEARCH MODSEQ with the highest mod-sequence."""
    user = await mailbox_with(imap, 3)

    def conversation() -> None:
        with _imapclient(imap, user) as client, _imapclient(imap, user) as other:
            assert b"CONDSTORE" in client.capabilities()
            assert client.enable("CONDSTORE") == [b"CONDSTORE"]
            assert client.enable("CONDSTORE") == []  # enabled already (RFC 5161 3.1)
            selected = client.select_folder("INBOX")
            known = selected[b"HIGHESTMODSEQ"]
            status = other.folder_status("INBOX", ["HIGHESTMODSEQ", "MESSAGES"])
            assert status == {b"HIGHESTMODSEQ": known, b"MESSAGES": 3}
            modseqs = client.fetch([1, 2, 3], ["MODSEQ"])
            assert sorted(modseqs) == [1, 2, 3]
            assert all(0 < data[b"MODSEQ"][0] <= known for data in modseqs.values())

            other.select_folder("INBOX")
            other.add_flags([2], [b"$Label1"])
            changed = client.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {known}"])
            assert list(changed) == [2]
            assert changed[2][b"FLAGS"] == (b"$Label1",)
            [modseq] = changed[2][b"MODSEQ"]
            assert modseq > known
            assert client.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq}"]) == {}

            found = client.search(["MODSEQ", known + 1])
            assert (list(found), found.modseq) == ([2], modseq)
            assert client.search(["MODSEQ", modseq + 1]) == []
            assert client.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == modseq

    await asyncio.to_thread(conversation)


async def test_conditional_store_and_flag_changes_carry_modseq(imap: ImapTarget) -> None:
    """RFC 7162 sections 3.1.3, 3.1.4.2 and 3.1.5 over the wire (Examples 3, 6, 8, 14)."""
    user = await mailbox_with(imap, 3)

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as other:
            login(wire, user)
            login(other, user)
            known = highestmodseq(command(wire, b"a", b"SELECT INBOX (CONDSTORE)"))
            command(other, b"b", b"SELECT INBOX")
            assert command(other, b"b1", b"STORE 2 +FLAGS ($Other)")[-1] == b"b1 OK Store completed"

            # Message 2 changed after `known`: left alone, shown as it is, and named.
            lines = command(
                wire, b"a1", b"STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % known
            )
            other_modseq, modseq = known + 1, known + 2
            # $Other is new to this session: FLAGS first (RFC 3501 section 7.2.6).
            assert lines[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Other)"
            assert lines[1].startswith(b"* OK [PERMANENTFLAGS ")
            assert lines[2:] == [
                b"* 1 FETCH (UID 1 MODSEQ (%d))" % modseq,
                b"* 2 FETCH (UID 2 FLAGS ($Other) MODSEQ (%d))" % other_modseq,
                b"* 3 FETCH (UID 3 MODSEQ (%d))" % modseq,
                b"a1 OK [MODIFIED 2] Conditional STORE failed for some messages",
            ]
            # UNCHANGEDSINCE 0 always fails (Example 8); UID STORE names UIDs.
            assert command(wire, b"a2", b"UID STORE 1 (UNCHANGEDSINCE 0) +FLAGS ($MDNSent)") == [
                b"* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (%d))" % modseq,
                b"a2 OK [MODIFIED 1] Conditional STORE failed for some messages",
            ]
            # Without UNCHANGEDSINCE, once enabled: UID and MODSEQ with the flags.
            assert command(wire, b"a3", b"STORE 2 +FLAGS (\\Flagged)") == [
                b"* 2 FETCH (UID 2 FLAGS (\\Flagged $Other) MODSEQ (%d))" % (modseq + 1),
                b"a3 OK Store completed",
            ]
            # Another session's change reaches this one with its MODSEQ (Example 14).
            command(other, b"b2", b"STORE 3 -FLAGS.SILENT (\\Seen)")
            # (The mailbox's keyword set grew by the $MDNSent a2 asked for: FLAGS first.)
            assert command(wire, b"a4", b"NOOP")[-2:] == [
                b"* 3 FETCH (UID 3 FLAGS () MODSEQ (%d))" % (modseq + 2),
                b"a4 OK completed",
            ]
            assert command(wire, b"a5", b"FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % (modseq + 1)) == [
                b"* 3 FETCH (FLAGS () MODSEQ (%d))" % (modseq + 2),
                b"a5 OK Fetch completed",
            ]
            assert command(wire, b"a6", b"UID SEARCH MODSEQ %d" % modseq) == [
                b"* SEARCH 1 2 3 (MODSEQ %d)" % (modseq + 2),
                b"a6 OK Search completed",
            ]
            assert command(
                wire, b"a7", b'SEARCH MODSEQ "/flags/\\\\draft" all %d' % (modseq + 3)
            ) == [
                b"* SEARCH",
                b"a7 OK Search completed",
            ]
            # A SELECT that replaces the mailbox says CLOSED first (section 3.2.11).
            lines = command(wire, b"a8", b"EXAMINE INBOX")
            assert lines[0].startswith(b"* OK [CLOSED] ")
            assert highestmodseq(lines) == modseq + 2

    await asyncio.to_thread(conversation)


async def test_first_enabling_command_with_a_mailbox_selected_tells_highestmodseq(
    imap: ImapTarget,
) -> None:
    """RFC 7162 section 3.1: no HIGHESTMODSEQ before CONDSTORE is enabled; the first
    enabling command tells it, once; a \\Seen set by FETCH then comes with MODSEQ."""
    user = await mailbox_with(imap, 2)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            lines = command(wire, b"a", b"SELECT INBOX")
            assert not any(b"HIGHESTMODSEQ" in line for line in lines)
            assert not any(b"CLOSED" in line for line in lines)
            lines = command(wire, b"b", b"FETCH 1 (MODSEQ)")
            highest = highestmodseq(lines)
            assert lines[1:] == [
                b"* 1 FETCH (MODSEQ (%d))" % (highest - 1),
                b"b OK Fetch completed",
            ]
            assert command(wire, b"c", b"FETCH 2 (MODSEQ)") == [
                b"* 2 FETCH (MODSEQ (%d))" % highest,
                b"c OK Fetch completed",
            ]
            lines = command(wire, b"d", b"FETCH 2 (BODY[TEXT])")
            assert lines[0] == b"* 2 FETCH (BODY[TEXT] {43}"
            assert lines[-2] == b" UID 2 MODSEQ (%d) FLAGS (\\Seen))" % (highest + 1)
            assert command(wire, b"e", b"STATUS INBOX (HIGHESTMODSEQ)") == [
                b"* STATUS INBOX (HIGHESTMODSEQ %d)" % (highest + 1),
                b"e OK Status completed",
            ]

    await asyncio.to_thread(conversation)


async def test_status_highestmodseq_enables_condstore(imap: ImapTarget) -> None:
    user = await mailbox_with(imap, 1)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            command(wire, b"a", b"SELECT INBOX")
            lines = command(wire, b"b", b"STATUS INBOX (MESSAGES HIGHESTMODSEQ)")
            highest = highestmodseq(lines)
            assert lines[1:] == [
                b"* STATUS INBOX (MESSAGES 1 HIGHESTMODSEQ %d)" % highest,
                b"b OK Status completed",
            ]
            assert command(wire, b"c", b"STORE 1 FLAGS (\\Answered)") == [
                b"* 1 FETCH (UID 1 FLAGS (\\Answered) MODSEQ (%d))" % (highest + 1),
                b"c OK Store completed",
            ]

    await asyncio.to_thread(conversation)


async def test_sort_with_modseq_ends_with_the_highest_and_enables_condstore(
    imap: ImapTarget,
) -> None:
    """RFC 7162 section 3.1.5: SORT's answer to a MODSEQ search ends like SEARCH's."""
    user = await mailbox_with(imap, 3)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            command(wire, b"a", b"SELECT INBOX")
            stored = command(wire, b"b", b"STORE 2 +FLAGS.SILENT (\\Flagged)")
            assert stored == [b"b OK Store completed"]
            [fetched] = [x for x in command(wire, b"c", b"FETCH 2 (MODSEQ)") if b"FETCH" in x]
            modseq = int(fetched.split(b"MODSEQ (")[1].rstrip(b"))"))
            assert command(wire, b"d", b"SORT (ARRIVAL) UTF-8 MODSEQ 1") == [
                b"* SORT 1 2 3 (MODSEQ %d)" % modseq,
                b"d OK Sort completed",
            ]
            assert command(wire, b"e", b"UID SORT (ARRIVAL) UTF-8 MODSEQ %d" % modseq) == [
                b"* SORT 2 (MODSEQ %d)" % modseq,
                b"e OK Sort completed",
            ]
            assert command(wire, b"f", b"SORT (ARRIVAL) UTF-8 MODSEQ %d" % (modseq + 1)) == [
                b"* SORT",
                b"f OK Sort completed",
            ]

    await asyncio.to_thread(conversation)


async def test_a_silent_store_that_changes_nothing_keeps_anothers_change_to_tell(
    imap: ImapTarget,
) -> None:
    """A .SILENT STORE that finds a message as asked shows nothing of it, so a change
    another session made to that message is still announced, with its MODSEQ."""
    user = await mailbox_with(imap, 1)

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as other:
            login(wire, user)
            login(other, user)
            known = highestmodseq(command(wire, b"a", b"SELECT INBOX (CONDSTORE)"))
            assert command(wire, b"b", b"STORE 1 +FLAGS.SILENT (\\Seen)") == [
                b"b OK Store completed"
            ]
            command(other, b"o", b"SELECT INBOX")
            assert (
                command(other, b"o1", b"STORE 1 +FLAGS (\\Flagged)")[-1] == b"o1 OK Store completed"
            )
            lines = command(wire, b"c", b"STORE 1 +FLAGS.SILENT (\\Seen)")
            assert lines == [
                b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Flagged) MODSEQ (%d))" % (known + 2),
                b"c OK Store completed",
            ]

    await asyncio.to_thread(conversation)
