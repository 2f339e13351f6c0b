"""Keywords over a raw socket (issues #13 and #14), on both backends.

RFC 3501 7.2.6 and 7.1: a session is told of a keyword in FLAGS (and
PERMANENTFLAGS) before any response shows it, in the session that stored it
and in every other session with the mailbox selected. Keywords are bounded
(the defaults: 100 per mailbox, 50 per message, 64 characters per name): past
a bound the STORE or APPEND is refused with ``NO [LIMIT]`` and nothing changes.
"""

from __future__ import annotations

import asyncio
import re

from lightmail.accounts.service import User
from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_commands import MESSAGE, deliver
from tests.integration.imap.test_hostile import Wire, connect, login

SYSTEM = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


async def mailbox_with(imap: ImapTarget, count: int) -> User:
    """A user with ``count`` messages in INBOX, none of them still \\Recent."""
    user = await imap.new_user()
    for _ in range(count):
        await deliver(imap, user.id, user.address, MESSAGE)
    store = imap.backend.store
    await store.claim_recent(await store.get_mailbox(user.id, "INBOX"))
    return user


def _select(wire: Wire, tag: bytes = b"S") -> list[bytes]:
    wire.send(tag + b" SELECT INBOX\r\n")
    lines = wire.until(tag)
    assert lines[-1].startswith(tag + b" OK [READ-WRITE]"), lines
    return lines


def _index(lines: list[bytes], prefix: bytes) -> int:
    """The position of the first line starting with ``prefix`` (it must be there)."""
    for index, line in enumerate(lines):
        if line.startswith(prefix):
            return index
    raise AssertionError(f"no {prefix!r} in {lines!r}")


def _keywords_announced(lines: list[bytes], keywords: bytes, *, room: bool = True) -> int:
    """Assert that FLAGS then PERMANENTFLAGS list exactly ``keywords``; FLAGS's index."""
    at = _index(lines, b"* FLAGS ")
    assert lines[at] == b"* FLAGS (" + SYSTEM + b" " + keywords + b")", lines
    star = b" \\*" if room else b""
    assert lines[at + 1] == (
        b"* OK [PERMANENTFLAGS (" + SYSTEM + b" " + keywords + star + b")] Flags permitted"
    ), lines
    return at


def _flags_of(wire: Wire, tag: bytes = b"F") -> dict[int, bytes]:
    wire.send(tag + b" FETCH 1:* (FLAGS)\r\n")
    lines = wire.until(tag)
    assert lines[-1].startswith(tag + b" OK"), lines
    found = {}
    for line in lines[:-1]:
        match = re.fullmatch(rb"\* (\d+) FETCH \(FLAGS \((.*)\)\)", line)
        assert match is not None, line
        found[int(match[1])] = match[2]
    return found


async def test_store_of_a_new_keyword_announces_flags_before_fetch_in_every_session(
    imap: ImapTarget,
) -> None:
    user = await mailbox_with(imap, 2)

    def conversation() -> None:
        with connect(imap) as writer, connect(imap) as watcher, connect(imap) as idler:
            for wire in (writer, watcher, idler):
                login(wire, user)
                _select(wire)
            idler.send(b"I IDLE\r\n")
            assert idler.line() == b"+ idling"

            writer.send(b"A STORE 1 +FLAGS ($Label1)\r\n")
            lines = writer.until(b"A")
            at = _keywords_announced(lines, b"$Label1")
            assert at < _index(lines, b"* 1 FETCH (FLAGS ($Label1))")
            assert lines[-1] == b"A OK Store completed"

            # Another session hears of it at its next command, FLAGS first.
            watcher.send(b"N NOOP\r\n")
            lines = watcher.until(b"N")
            at = _keywords_announced(lines, b"$Label1")
            assert at < _index(lines, b"* 1 FETCH (UID 1 FLAGS ($Label1))")

            # An idling session is pushed both, FLAGS first.
            lines = [idler.line() for _ in range(3)]
            _keywords_announced(lines, b"$Label1")
            assert lines[2] == b"* 1 FETCH (UID 1 FLAGS ($Label1))"
            idler.send(b"DONE\r\n")
            assert idler.line() == b"I OK Idle completed"

            # Silent, and a keyword already announced: nothing is announced again.
            writer.send(b"B STORE 2 +FLAGS.SILENT ($Label1)\r\n")
            assert writer.until(b"B") == [b"B OK Store completed"]

    await asyncio.to_thread(conversation)


async def test_fetch_that_sets_seen_announces_a_keyword_another_session_stored_first(
    imap: ImapTarget,
) -> None:
    user = await mailbox_with(imap, 1)

    def conversation() -> None:
        with connect(imap) as reader, connect(imap) as writer:
            for wire in (reader, writer):
                login(wire, user)
                _select(wire)
            writer.send(b"A STORE 1 +FLAGS.SILENT ($Other)\r\n")
            assert writer.until(b"A")[-1] == b"A OK Store completed"
            # The reader's FETCH sets \Seen and reads back the flags, $Other with them.
            reader.send(b"R FETCH 1 (BODY[]<0.4>)\r\n")
            lines = reader.until(b"R")
            at = _keywords_announced(lines, b"$Other")
            assert at < _index(lines, b"* 1 FETCH (")
            assert lines[at + 2 :] == [
                b"* 1 FETCH (BODY[]<0> {4}",  # body data is always a literal
                b"From FLAGS (\\Seen $Other))",
                b"R OK Fetch completed",
            ]

    await asyncio.to_thread(conversation)


async def test_append_with_a_new_keyword_announces_flags_to_the_selected_sessions(
    imap: ImapTarget,
) -> None:
    user = await mailbox_with(imap, 1)

    def conversation() -> None:
        with connect(imap) as writer, connect(imap) as watcher:
            for wire in (writer, watcher):
                login(wire, user)
                _select(wire)
            writer.send(
                b"A APPEND INBOX ($Label2 \\Seen) {" + str(len(MESSAGE)).encode() + b"+}\r\n"
            )
            writer.send(MESSAGE + b"\r\n")
            lines = writer.until(b"A")
            at = _keywords_announced(lines, b"$Label2")
            assert at < _index(lines, b"* 2 EXISTS")
            assert lines[-1].startswith(b"A OK [APPENDUID ")

            watcher.send(b"N NOOP\r\n")
            lines = watcher.until(b"N")
            at = _keywords_announced(lines, b"$Label2")
            assert at < _index(lines, b"* 2 EXISTS")
            assert _flags_of(watcher) == {1: b"", 2: b"\\Seen $Label2"}

    await asyncio.to_thread(conversation)


async def test_hostile_keyword_flood_is_refused_and_changes_nothing(imap: ImapTarget) -> None:
    user = await mailbox_with(imap, 20)
    flood = b" ".join(b"kw%d" % i for i in range(1000))

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            _select(wire)
            wire.send(b"A STORE 1:* +FLAGS.SILENT (" + flood + b")\r\n")
            assert wire.until(b"A") == [
                b"A NO [LIMIT] Keyword limit reached: a message may have at most 50 keywords"
            ]
            assert set(_flags_of(wire).values()) == {b""}
            # The same number of keywords spread one per message: past the mailbox's 100.
            for seq in range(1, 21):
                words = b" ".join(b"k%d_%d" % (seq, i) for i in range(6))
                wire.send(b"B%d STORE %d +FLAGS.SILENT (%s)\r\n" % (seq, seq, words))
                answer = wire.until(b"B%d" % seq)[-1]
                if seq <= 16:  # 16 * 6 = 96 keywords fit
                    assert answer == b"B%d OK Store completed" % seq
                else:
                    assert answer.startswith(b"B%d NO [LIMIT] " % seq), answer
            flags = _flags_of(wire)
            assert flags[16] == b" ".join(sorted(b"k16_%d" % i for i in range(6)))
            assert flags[17] == b""
            # A name longer than 64 characters is refused too.
            wire.send(b"C STORE 1 +FLAGS ($" + b"x" * 64 + b")\r\n")
            assert wire.until(b"C")[-1].startswith(b"C NO [LIMIT] ")
            lines = _select(wire)
            flags_line = lines[_index(lines, b"* FLAGS ")]
            assert flags_line.count(b" k") == 96

    await asyncio.to_thread(conversation)


async def test_full_mailbox_stops_offering_new_keywords_until_one_is_unused(
    imap: ImapTarget,
) -> None:
    user = await mailbox_with(imap, 3)
    first = [b"a%02d" % i for i in range(50)]
    second = [b"b%02d" % i for i in range(50)]

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as watcher:
            for session in (wire, watcher):
                login(session, user)
                _select(session)
            wire.send(b"A STORE 1 +FLAGS.SILENT (" + b" ".join(first) + b")\r\n")
            lines = wire.until(b"A")
            _keywords_announced(lines, b" ".join(first))
            wire.send(b"B STORE 2 +FLAGS.SILENT (" + b" ".join(second) + b")\r\n")
            lines = wire.until(b"B")
            # 100 keywords: the limit, so PERMANENTFLAGS no longer offers \*.
            _keywords_announced(lines, b" ".join(first + second), room=False)
            assert lines[-1] == b"B OK Store completed"
            watcher.send(b"N NOOP\r\n")
            _keywords_announced(watcher.until(b"N"), b" ".join(first + second), room=False)

            wire.send(b"C STORE 3 +FLAGS (new)\r\n")
            assert wire.until(b"C") == [
                b"C NO [LIMIT] Keyword limit reached: a mailbox may have at most 100 keywords"
            ]
            assert _flags_of(wire)[3] == b""
            # Keywords already defined can still be set.
            wire.send(b"D STORE 3 +FLAGS.SILENT (a00 b49)\r\n")
            assert wire.until(b"D") == [b"D OK Store completed"]
            # Once no message has a00, its place can be taken.
            wire.send(b"E STORE 1,3 -FLAGS.SILENT (a00)\r\n")
            assert wire.until(b"E") == [b"E OK Store completed"]
            wire.send(b"G STORE 3 +FLAGS (new)\r\n")
            lines = wire.until(b"G")
            assert lines[-1] == b"G OK Store completed"
            # The session keeps a00 in its FLAGS; the mailbox is full again.
            at = _keywords_announced(lines, b" ".join(first + second) + b" new", room=False)
            assert at < _index(lines, b"* 3 FETCH (FLAGS (b49 new))")
            lines = _select(wire)
            assert lines[_index(lines, b"* FLAGS ")] == (
                b"* FLAGS (" + SYSTEM + b" " + b" ".join(first[1:] + second) + b" new)"
            )

    await asyncio.to_thread(conversation)


async def test_append_past_a_keyword_limit_is_refused_and_stores_nothing(
    imap: ImapTarget,
) -> None:
    user = await mailbox_with(imap, 1)
    many = b" ".join(b"kw%d" % i for i in range(51))
    literal = b" {" + str(len(MESSAGE)).encode() + b"+}\r\n" + MESSAGE + b"\r\n"

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"A APPEND INBOX (" + many + b")" + literal)
            assert wire.until(b"A") == [
                b"A NO [LIMIT] Keyword limit reached: a message may have at most 50 keywords"
            ]
            wire.send(b"B APPEND INBOX ($" + b"y" * 64 + b")" + literal)
            assert wire.until(b"B")[-1].startswith(b"B NO [LIMIT] ")
            # Refused before the literal: no continuation request, nothing read.
            wire.send(b"D APPEND INBOX (" + many + b") {" + str(len(MESSAGE)).encode() + b"}\r\n")
            assert wire.line().startswith(b"D NO [LIMIT] ")
            wire.send(b"C STATUS INBOX (MESSAGES)\r\n")
            assert wire.until(b"C")[0] == b"* STATUS INBOX (MESSAGES 1)"
            lines = _select(wire)
            assert lines[_index(lines, b"* FLAGS ")] == b"* FLAGS (" + SYSTEM + b")"

    await asyncio.to_thread(conversation)
