"""QRESYNC (RFC 7162 section 3.2) over a raw socket, on both backends.

ENABLE QRESYNC, SELECT/EXAMINE (QRESYNC ...) with VANISHED (EARLIER) and the
FETCHes of changed messages, UID FETCH (CHANGEDSINCE n VANISHED), VANISHED
instead of EXPUNGE once enabled, and a correct answer for a client that comes
back after the garbage collector purged what was expunged while it was away.
"""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import select

from lightmail.accounts.service import User
from lightmail.mailstore.purge import Purge
from lightmail.storage.db import tables as t
from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_condstore import command, highestmodseq
from tests.integration.imap.test_hostile import Wire, connect, login
from tests.integration.imap.test_keywords import mailbox_with


def _qresync_session(imap: ImapTarget, wire: Wire, user: User) -> None:
    login(wire, user)
    assert command(wire, b"E", b"ENABLE QRESYNC") == [b"* ENABLED QRESYNC", b"E OK completed"]


def _state(lines: list[bytes]) -> tuple[int, int]:
    """UIDVALIDITY and HIGHESTMODSEQ of a SELECT's answer."""
    [uidvalidity] = [
        m.group(1) for m in map(re.compile(rb"\* OK \[UIDVALIDITY (\d+)\]").match, lines) if m
    ]
    return int(uidvalidity), highestmodseq(lines)


def _expunge(wire: Wire, uids: bytes) -> None:
    command(wire, b"x1", b"UID STORE " + uids + b" +FLAGS.SILENT (\\Deleted)")
    assert command(wire, b"x2", b"UID EXPUNGE " + uids)[-1].startswith(b"x2 OK ")


async def test_qresync_must_be_enabled_first(imap: ImapTarget) -> None:
    """RFC 7162 section 3.2.3: the QRESYNC parameter and VANISHED modifier are BAD
    until ENABLE QRESYNC; ENABLE QRESYNC enables CONDSTORE too."""
    user = await mailbox_with(imap, 1)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            assert b"QRESYNC" in command(wire, b"a", b"CAPABILITY")[0].split()
            assert command(wire, b"b", b"SELECT INBOX (QRESYNC (1 1))") == [
                b"b BAD QRESYNC is not enabled"
            ]
            command(wire, b"c", b"SELECT INBOX")
            assert command(wire, b"d", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)") == [
                b"d BAD QRESYNC is not enabled"
            ]
            lines = command(wire, b"e", b"ENABLE QRESYNC CONDSTORE")
            highest = highestmodseq(lines)  # the first enabling command, with INBOX selected
            assert lines[1:] == [b"* ENABLED QRESYNC CONDSTORE", b"e OK completed"]
            assert command(wire, b"f", b"ENABLE QRESYNC CONDSTORE") == [
                b"* ENABLED",
                b"f OK completed",
            ]
            assert command(
                wire, b"g", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % highest
            ) == [b"g OK Fetch completed"]

    await asyncio.to_thread(conversation)


async def test_select_qresync_tells_what_vanished_and_changed(imap: ImapTarget) -> None:
    """RFC 7162 section 3.2.5: a client back after others expunged and flagged mail."""
    user = await mailbox_with(imap, 6)

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as other:
            _qresync_session(imap, wire, user)
            uidvalidity, known = _state(command(wire, b"a", b"EXAMINE INBOX"))
            command(wire, b"b", b"UNSELECT")
            login(other, user)
            command(other, b"o", b"SELECT INBOX")
            command(other, b"o1", b"STORE 2 +FLAGS.SILENT (\\Seen)")
            _expunge(other, b"4:5")

            lines = command(
                wire, b"c", b"SELECT INBOX (QRESYNC (%d %d 1:6))" % (uidvalidity, known)
            )
            assert lines[-4:] == [
                b"* OK [HIGHESTMODSEQ %d] Highest" % (known + 3),
                b"* VANISHED (EARLIER) 4:5",
                b"* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (%d))" % (known + 1),
                b"c OK [READ-WRITE] Select completed",
            ]
            # Only the UIDs it names; none named: all below UIDNEXT.
            lines = command(
                wire, b"d", b"EXAMINE INBOX (QRESYNC (%d %d 1:3))" % (uidvalidity, known)
            )
            assert lines[0].startswith(b"* OK [CLOSED] ")
            assert lines[-2:] == [
                b"* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (%d))" % (known + 1),
                b"d OK [READ-ONLY] Select completed",
            ]
            lines = command(
                wire, b"e", b"EXAMINE INBOX (QRESYNC (%d %d))" % (uidvalidity, known + 1)
            )
            assert lines[-2:] == [b"* VANISHED (EARLIER) 4:5", b"e OK [READ-ONLY] Select completed"]
            # Another UIDVALIDITY: a full resync is up to the client, nothing is told.
            lines = command(
                wire, b"f", b"EXAMINE INBOX (QRESYNC (%d %d 1:6))" % (uidvalidity + 1, known)
            )
            assert not any(b"VANISHED" in line or b"FETCH" in line for line in lines)

    await asyncio.to_thread(conversation)


async def test_a_client_back_after_the_purge_gets_every_vanished_uid(imap: ImapTarget) -> None:
    """The expunges a client missed are listed even after the garbage collector purged
    their rows (RFC 7162 section 3.2.6: every UID of the set that is not live, as a
    server that no longer remembers them must), narrowed by the sequence match data
    (section 3.2.5.2); a client from after the purged expunges gets the exact list."""
    user = await mailbox_with(imap, 6)

    def before() -> tuple[int, int]:
        with connect(imap) as wire:
            _qresync_session(imap, wire, user)
            state = _state(command(wire, b"a", b"SELECT INBOX"))
            _expunge(wire, b"2,5")
            return state

    uidvalidity, month_ago = await asyncio.to_thread(before)
    # The GC's last step on this user's expunged rows (as after [gc] retention).
    inbox = await imap.backend.store.get_mailbox(user.id, "INBOX")
    async with imap.backend.db.read() as conn:
        ids = list(
            (
                await conn.execute(
                    select(t.messages.c.id).where(
                        t.messages.c.mailbox_id == inbox.id, t.messages.c.deleted_at.is_not(None)
                    )
                )
            ).scalars()
        )
    assert len(ids) == 2
    assert await Purge(imap.backend.db).delete_rows(ids, []) == 2

    def after() -> None:
        with connect(imap) as wire:
            back(wire)

    def back(wire: Wire) -> None:
        _qresync_session(imap, wire, user)
        select_ = b"EXAMINE INBOX (QRESYNC (%d %d%s))"
        lines = command(wire, b"b", select_ % (uidvalidity, month_ago, b""))
        assert lines[-2:] == [b"* VANISHED (EARLIER) 2,5", b"b OK [READ-ONLY] Select completed"]
        # Its message 1 is still UID 1 and its message 2 is UID 3: it knew of 2.
        lines = command(wire, b"c", select_ % (uidvalidity, month_ago, b" 1:6 (1:2 1,3)"))
        assert lines[-2:] == [b"* VANISHED (EARLIER) 5", b"c OK [READ-ONLY] Select completed"]
        # Its message 4 was UID 4, now UID 6: nothing known past UID 1.
        lines = command(wire, b"d", select_ % (uidvalidity, month_ago, b" 1:6 (1,4 1,4)"))
        assert lines[-2:] == [b"* VANISHED (EARLIER) 2,5", b"d OK [READ-ONLY] Select completed"]
        lines = command(wire, b"e", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % month_ago)
        assert lines == [b"* VANISHED (EARLIER) 2,5", b"e OK Fetch completed"]
        highest = highestmodseq(lines := command(wire, b"f", b"EXAMINE INBOX"))
        assert lines[-1] == b"f OK [READ-ONLY] Select completed"
        lines = command(wire, b"g", select_ % (uidvalidity, highest, b""))
        assert lines[-1] == b"g OK [READ-ONLY] Select completed"
        assert not any(b"VANISHED" in line for line in lines)

    await asyncio.to_thread(after)


async def test_expunges_are_vanished_once_qresync_is_enabled(imap: ImapTarget) -> None:
    """RFC 7162 sections 3.2.7, 3.2.9 and 3.2.10.2: EXPUNGE, UID EXPUNGE, MOVE and
    other sessions' expunges are told as VANISHED, with HIGHESTMODSEQ in the OK."""
    user = await mailbox_with(imap, 6)

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as other:
            _qresync_session(imap, wire, user)
            known = highestmodseq(command(wire, b"a", b"SELECT INBOX"))
            command(wire, b"b", b"STORE 2:3 +FLAGS.SILENT (\\Deleted)")
            assert command(wire, b"c", b"EXPUNGE") == [
                b"* VANISHED 2:3",
                b"c OK [HIGHESTMODSEQ %d] Expunge completed" % (known + 2),
            ]
            assert command(wire, b"d", b"EXPUNGE") == [b"d OK Expunge completed"]
            lines = command(wire, b"e", b"MOVE 1 Trash")
            assert lines[1:] == [b"* VANISHED 1", b"e OK Move completed"]
            login(other, user)
            command(other, b"o", b"SELECT INBOX")
            _expunge(other, b"6")
            assert command(wire, b"f", b"NOOP") == [b"* VANISHED 6", b"f OK completed"]
            lines = command(wire, b"g", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % known)
            assert lines == [b"* VANISHED (EARLIER) 1:3,6", b"g OK Fetch completed"]
            # Only UIDs of the set; none that are live.
            lines = command(
                wire, b"h", b"UID FETCH 2,4:5 (FLAGS) (CHANGEDSINCE %d VANISHED)" % known
            )
            assert lines == [b"* VANISHED (EARLIER) 2", b"h OK Fetch completed"]

    await asyncio.to_thread(conversation)


async def test_a_held_back_expunge_caps_the_highestmodseq_told(imap: ImapTarget) -> None:
    """RFC 7162 section 3.2: while a FETCH may not tell of an expunge, flag changes
    after it come with their MODSEQ, so the client is told a HIGHESTMODSEQ from
    before the expunge; the VANISHED follows at the next command that allows it."""
    user = await mailbox_with(imap, 3)

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as other:
            _qresync_session(imap, wire, user)
            known = highestmodseq(command(wire, b"a", b"SELECT INBOX"))
            login(other, user)
            command(other, b"o", b"SELECT INBOX")
            _expunge(other, b"3")
            command(other, b"o2", b"STORE 1 +FLAGS.SILENT (\\Flagged)")
            assert command(wire, b"b", b"FETCH 2 (FLAGS)") == [
                b"* 2 FETCH (FLAGS ())",
                b"* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (%d))" % (known + 3),
                b"* OK [HIGHESTMODSEQ %d] Expunges pending" % known,
                b"b OK Fetch completed",
            ]
            assert command(wire, b"c", b"NOOP") == [b"* VANISHED 3", b"c OK completed"]
            assert command(wire, b"d", b"FETCH 2 (FLAGS)") == [
                b"* 2 FETCH (FLAGS ())",
                b"d OK Fetch completed",
            ]

    await asyncio.to_thread(conversation)


async def test_no_vanished_during_a_uid_search_with_message_numbers(imap: ImapTarget) -> None:
    """RFC 7162 section 3.2.10.2: a UID SEARCH may tell of expunges, unless its
    criteria hold message numbers, which the expunge would shift under it."""
    user = await mailbox_with(imap, 4)

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as other:
            _qresync_session(imap, wire, user)
            command(wire, b"a", b"SELECT INBOX")
            login(other, user)
            command(other, b"o", b"SELECT INBOX")
            _expunge(other, b"2")
            lines = command(wire, b"b", b"UID SEARCH 3:4")
            assert lines[0] == b"* SEARCH 3 4"
            assert lines[1].endswith(b"Expunges pending")  # the HIGHESTMODSEQ before it
            assert lines[2:] == [b"b OK Search completed"]
            assert command(wire, b"c", b"UID SEARCH UID 3:4") == [
                b"* SEARCH 3 4",
                b"* VANISHED 2",
                b"c OK Search completed",
            ]

    await asyncio.to_thread(conversation)
