"""Extended SEARCH and SORT over a raw socket, on both backends: ESEARCH (RFC 4731)
with MODSEQ (RFC 7162 section 3.1.10), PARTIAL (RFC 9394) in SEARCH, SORT and UID
FETCH, and ESORT (RFC 5267 section 3).

The mailbox is ``test_sort_thread``'s: sequence numbers 1 to 4 are UIDs 2 to 5,
and in ARRIVAL order they are 3, 1, 2, 4.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_condstore import command
from tests.integration.imap.test_hostile import Wire, connect, login
from tests.integration.imap.test_sort_thread import _sorted_mailbox


async def _talk(imap: ImapTarget, conversation: Callable[[Wire], None]) -> None:
    """``conversation`` on a connection of the sorted mailbox's user, INBOX selected."""
    user = await _sorted_mailbox(imap)

    def run() -> None:
        with connect(imap) as wire:
            login(wire, user)
            command(wire, b"a", b"SELECT INBOX")
            conversation(wire)

    await asyncio.to_thread(run)


def _answers(wire: Wire, tag: bytes, line: bytes, *expected: bytes) -> None:
    assert command(wire, tag, line) == list(expected)


async def test_esearch_answers_min_max_count_and_all_by_number_and_by_uid(
    imap: ImapTarget,
) -> None:
    def conversation(wire: Wire) -> None:
        assert command(wire, b"b", b"STORE 1,3:4 +FLAGS.SILENT (\\Flagged)") == [
            b"b OK Store completed"
        ]
        _answers(
            wire,
            b"A282",
            b"SEARCH RETURN (MIN COUNT) FLAGGED",
            b'* ESEARCH (TAG "A282") MIN 1 COUNT 3',
            b"A282 OK Search completed",
        )
        _answers(
            wire,
            b"A283",
            b"SEARCH RETURN () FLAGGED",
            b'* ESEARCH (TAG "A283") ALL 1,3:4',
            b"A283 OK Search completed",
        )
        _answers(
            wire,
            b"A285",
            b"UID SEARCH RETURN (MIN MAX) 2:4",
            b'* ESEARCH (TAG "A285") UID MIN 3 MAX 5',
            b"A285 OK Search completed",
        )
        _answers(
            wire,
            b"c",
            b"uid search return (all count) charset utf-8 all",
            b'* ESEARCH (TAG "c") UID COUNT 4 ALL 2:5',
            b"c OK Search completed",
        )
        # No match: only COUNT, yet an ESEARCH response all the same.
        _answers(
            wire,
            b"d",
            b"SEARCH RETURN (MIN MAX ALL COUNT) DELETED",
            b'* ESEARCH (TAG "d") COUNT 0',
            b"d OK Search completed",
        )
        _answers(
            wire,
            b"e",
            b"SEARCH RETURN (MIN) DELETED",
            b'* ESEARCH (TAG "e")',
            b"e OK Search completed",
        )
        # A plain SEARCH still answers SEARCH.
        _answers(wire, b"f", b"SEARCH FLAGGED", b"* SEARCH 1 3 4", b"f OK Search completed")
        assert command(wire, b"g", b"SEARCH RETURN (ALL PARTIAL 1:2) ALL")[-1].startswith(b"g BAD ")

    await _talk(imap, conversation)


async def test_esearch_with_a_modseq_key_tells_the_modseq_of_what_it_returns(
    imap: ImapTarget,
) -> None:
    """RFC 4731 section 3.2 and RFC 7162 section 3.1.10."""

    def conversation(wire: Wire) -> None:
        command(wire, b"b", b"STORE 2 +FLAGS.SILENT (\\Flagged)")
        command(wire, b"c", b"STORE 4 +FLAGS.SILENT (\\Flagged)")
        fetched = [x for x in command(wire, b"d", b"FETCH 1:4 (MODSEQ)") if b"FETCH" in x]
        modseq = [int(line.split(b"MODSEQ (")[1].rstrip(b"))")) for line in fetched]
        assert modseq[3] > modseq[1] > max(modseq[0], modseq[2])
        _answers(
            wire,
            b"e",
            b"SEARCH RETURN (ALL) MODSEQ %d" % modseq[1],
            b'* ESEARCH (TAG "e") ALL 2,4 MODSEQ %d' % modseq[3],
            b"e OK Search completed",
        )
        _answers(
            wire,
            b"f",
            b"SEARCH RETURN (MIN) MODSEQ %d" % modseq[1],
            b'* ESEARCH (TAG "f") MIN 2 MODSEQ %d' % modseq[1],
            b"f OK Search completed",
        )
        _answers(
            wire,
            b"g",
            b"UID SEARCH RETURN (COUNT) MODSEQ %d" % modseq[3],
            b'* ESEARCH (TAG "g") UID COUNT 1 MODSEQ %d' % modseq[3],
            b"g OK Search completed",
        )
        # An empty result has no MODSEQ.
        _answers(
            wire,
            b"h",
            b"SEARCH RETURN (COUNT) MODSEQ %d" % (modseq[3] + 1),
            b'* ESEARCH (TAG "h") COUNT 0',
            b"h OK Search completed",
        )

    await _talk(imap, conversation)


async def test_partial_pages_through_search_and_uid_fetch_results(imap: ImapTarget) -> None:
    """RFC 9394 sections 3.1 and 3.3."""

    def conversation(wire: Wire) -> None:
        _answers(
            wire,
            b"A01",
            b"UID SEARCH RETURN (PARTIAL -1:-2) ALL",
            b'* ESEARCH (TAG "A01") UID PARTIAL (-1:-2 4:5)',
            b"A01 OK Search completed",
        )
        _answers(
            wire,
            b"A02",
            b"SEARCH RETURN (PARTIAL 3:10 COUNT) ALL",
            b'* ESEARCH (TAG "A02") COUNT 4 PARTIAL (3:10 3:4)',
            b"A02 OK Search completed",
        )
        _answers(
            wire,
            b"A04",
            b"UID SEARCH RETURN (PARTIAL 5:500) ALL",
            b'* ESEARCH (TAG "A04") UID PARTIAL (5:500 NIL)',
            b"A04 OK Search completed",
        )
        _answers(
            wire,
            b"b",
            b"SEARCH RETURN (MIN PARTIAL -2:-1) NOT 1",
            b'* ESEARCH (TAG "b") MIN 2 PARTIAL (-2:-1 3:4)',
            b"b OK Search completed",
        )
        _answers(
            wire,
            b"c",
            b"UID FETCH 3:* (UID) (PARTIAL -1:-2)",
            b"* 3 FETCH (UID 4)",
            b"* 4 FETCH (UID 5)",
            b"c OK Fetch completed",
        )
        _answers(
            wire,
            b"d",
            b"UID FETCH 1:* (UID) (PARTIAL 1:1)",
            b"* 1 FETCH (UID 2)",
            b"d OK Fetch completed",
        )
        assert command(wire, b"e", b"FETCH 1:* (UID) (PARTIAL 1:1)")[-1].startswith(b"e BAD ")

    await _talk(imap, conversation)


async def test_esort_answers_in_sort_order(imap: ImapTarget) -> None:
    """RFC 5267 section 3: MIN and MAX are the first and last sorted, ALL keeps the
    order with ranges that only ascend."""

    def conversation(wire: Wire) -> None:
        _answers(
            wire,
            b"b",
            b"SORT RETURN (MIN MAX COUNT ALL) (ARRIVAL) UTF-8 ALL",
            b'* ESEARCH (TAG "b") MIN 3 MAX 4 COUNT 4 ALL 3,1:2,4',
            b"b OK Sort completed",
        )
        _answers(
            wire,
            b"E01",
            b"UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL",
            b'* ESEARCH (TAG "E01") UID ALL 5,3,2,4',
            b"E01 OK Sort completed",
        )
        _answers(
            wire,
            b"c",
            b"SORT RETURN (PARTIAL -1:-2) (ARRIVAL) UTF-8 ALL",
            b'* ESEARCH (TAG "c") PARTIAL (-1:-2 2,4)',
            b"c OK Sort completed",
        )
        _answers(
            wire,
            b"d",
            b"SORT RETURN (COUNT) (ARRIVAL) UTF-8 DELETED",
            b'* ESEARCH (TAG "d") COUNT 0',
            b"d OK Sort completed",
        )
        _answers(wire, b"f", b"SORT (ARRIVAL) UTF-8 ALL", b"* SORT 3 1 2 4", b"f OK Sort completed")

    await _talk(imap, conversation)


async def test_a_saved_search_result_is_used_by_dollar_in_every_command(imap: ImapTarget) -> None:
    """RFC 5182 sections 2.1 to 2.4: SAVE alone answers nothing; ``$`` names the
    saved messages by sequence number or by UID, wherever the command takes a set."""

    def conversation(wire: Wire) -> None:
        command(wire, b"b", b"CREATE Other")
        # Pipelined: the FETCH uses what the SEARCH before it saved.
        wire.send(b"A282 UID SEARCH RETURN (SAVE) UID 2:3\r\nA283 FETCH $ (UID)\r\n")
        assert wire.until(b"A283") == [
            b"A282 OK Search completed",
            b"* 1 FETCH (UID 2)",
            b"* 2 FETCH (UID 3)",
            b"A283 OK Fetch completed",
        ]
        _answers(
            wire,
            b"c",
            b"UID FETCH $ (UID)",
            b"* 1 FETCH (UID 2)",
            b"* 2 FETCH (UID 3)",
            b"c OK Fetch completed",
        )
        _answers(
            wire, b"A301", b"UID SEARCH UID $ NOT 1", b"* SEARCH 3", b"A301 OK Search completed"
        )
        _answers(wire, b"d", b"SEARCH OR $ 4", b"* SEARCH 1 2 4", b"d OK Search completed")
        assert command(wire, b"e", b"STORE $ +FLAGS.SILENT (\\Flagged)") == [
            b"e OK Store completed"
        ]
        _answers(wire, b"f", b"SEARCH FLAGGED", b"* SEARCH 1 2", b"f OK Search completed")
        copied = command(wire, b"g", b"UID COPY $ Other")
        assert copied[-1].startswith(b"g OK [COPYUID ")
        assert copied[-1].endswith(b" 2:3 1:2] Copy completed")
        # SAVE with MIN and MAX keeps those two; with COUNT, all found.
        _answers(
            wire,
            b"C285",
            b"SEARCH RETURN (MAX SAVE MIN) ALL",
            b'* ESEARCH (TAG "C285") MIN 1 MAX 4',
            b"C285 OK Search completed",
        )
        assert command(wire, b"h", b"SEARCH $") == [b"* SEARCH 1 4", b"h OK Search completed"]
        _answers(
            wire,
            b"C286",
            b"SEARCH RETURN (MAX SAVE MIN COUNT) NOT 3",
            b'* ESEARCH (TAG "C286") MIN 1 MAX 4 COUNT 3',
            b"C286 OK Search completed",
        )
        _answers(wire, b"i", b"SEARCH $", b"* SEARCH 1 2 4", b"i OK Search completed")
        _answers(
            wire,
            b"j",
            b"SEARCH RETURN (SAVE PARTIAL -1:-1) ALL",
            b'* ESEARCH (TAG "j") PARTIAL (-1:-1 4)',
            b"j OK Search completed",
        )
        assert command(wire, b"k", b"UID SEARCH $") == [b"* SEARCH 5", b"k OK Search completed"]
        assert command(wire, b"l", b"UID MOVE $ Other")[-1] == b"l OK Move completed"
        _answers(wire, b"m", b"SEARCH ALL", b"* SEARCH 1 2 3", b"m OK Search completed")

    await _talk(imap, conversation)


async def test_an_empty_or_failed_or_reset_search_result_names_no_message(
    imap: ImapTarget,
) -> None:
    """RFC 5182 section 2.1: empty until saved, emptied by a SAVE that fails, reset
    by SELECT, EXAMINE, CLOSE and UNSELECT; ``$`` with nothing in it is valid."""

    def saved(wire: Wire, tag: bytes) -> list[bytes]:
        return command(wire, tag, b"UID FETCH $ (UID)")[:-1]

    def conversation(wire: Wire) -> None:
        assert command(wire, b"b", b"FETCH $ (UID)") == [b"b OK Fetch completed"]
        assert command(wire, b"E283", b"COPY $ INBOX") == [b"E283 OK Copy completed"]
        assert command(wire, b"c", b"SEARCH $") == [b"* SEARCH", b"c OK Search completed"]
        assert command(wire, b"d", b"SEARCH RETURN (SAVE) NOT $") == [b"d OK Search completed"]
        assert saved(wire, b"e") == [b"* %d FETCH (UID %d)" % (n, n + 1) for n in (1, 2, 3, 4)]
        refused = command(wire, b"B283", b"SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
        assert refused[-1].startswith(b"B283 NO [BADCHARSET")
        assert saved(wire, b"f") == []
        for tag, reset in [
            (b"g", b"SELECT INBOX"),
            (b"h", b"EXAMINE INBOX"),
            (b"i", b"UNSELECT"),
            (b"j", b"CLOSE"),
        ]:
            command(wire, b"k", b"SELECT INBOX")
            command(wire, b"l", b"SEARCH RETURN (SAVE) ALL")
            assert len(saved(wire, b"m")) == 4
            assert command(wire, tag, reset)[-1].startswith(tag + b" OK")
            command(wire, b"n", b"SELECT INBOX")
            assert saved(wire, b"o") == [], reset

    await _talk(imap, conversation)


async def test_an_expunged_message_leaves_the_saved_result(imap: ImapTarget) -> None:
    """RFC 5182 section 2.1: ``$`` by sequence number follows the renumbering."""

    def conversation(wire: Wire) -> None:
        command(wire, b"b", b"SEARCH RETURN (SAVE) 2:4")
        command(wire, b"c", b"STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        _answers(wire, b"d", b"EXPUNGE", b"* 2 EXPUNGE", b"* 1 EXPUNGE", b"d OK Expunge completed")
        _answers(
            wire,
            b"e",
            b"FETCH $ (UID)",
            b"* 1 FETCH (UID 4)",
            b"* 2 FETCH (UID 5)",
            b"e OK Fetch completed",
        )
        command(wire, b"f0", b"STORE $ +FLAGS.SILENT (\\Deleted)")
        _answers(
            wire, b"f", b"UID EXPUNGE $", b"* 2 EXPUNGE", b"* 1 EXPUNGE", b"f OK Expunge completed"
        )
        _answers(
            wire,
            b"g",
            b"SEARCH RETURN (COUNT) $",
            b'* ESEARCH (TAG "g") COUNT 0',
            b"g OK Search completed",
        )

    await _talk(imap, conversation)
