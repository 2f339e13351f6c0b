"""Extended SEARCH and SORT over a raw socket, on both backends: ESEARCH (RFC 4731)
with MODSEQ (RFC 7162 section 3.1.10), PARTIAL (RFC 9394) in SEARCH, SORT and UID
FETCH, and ESORT (RFC 5267 section 3).

The mailbox is ``test_sort_thread``'s: sequence numbers 1 to 4 are UIDs 2 to 5,
and in ARRIVAL order they are 3, 1, 2, 4.
"""

from __future__ import annotations

import asyncio

from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_condstore import command
from tests.integration.imap.test_hostile import connect, login
from tests.integration.imap.test_sort_thread import _sorted_mailbox


async def test_esearch_answers_min_max_count_and_all_by_number_and_by_uid(
    imap: ImapTarget,
) -> None:
    user = await _sorted_mailbox(imap)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            command(wire, b"a", b"SELECT INBOX")
            assert command(wire, b"b", b"STORE 1,3:4 +FLAGS.SILENT (\\Flagged)") == [
                b"b OK Store completed"
            ]
            assert command(wire, b"A282", b"SEARCH RETURN (MIN COUNT) FLAGGED") == [
                b'* ESEARCH (TAG "A282") MIN 1 COUNT 3',
                b"A282 OK Search completed",
            ]
            assert command(wire, b"A283", b"SEARCH RETURN () FLAGGED") == [
                b'* ESEARCH (TAG "A283") ALL 1,3:4',
                b"A283 OK Search completed",
            ]
            assert command(wire, b"A285", b"UID SEARCH RETURN (MIN MAX) 2:4") == [
                b'* ESEARCH (TAG "A285") UID MIN 3 MAX 5',
                b"A285 OK Search completed",
            ]
            assert command(wire, b"c", b"uid search return (all count) charset utf-8 all") == [
                b'* ESEARCH (TAG "c") UID COUNT 4 ALL 2:5',
                b"c OK Search completed",
            ]
            # No match: only COUNT, yet an ESEARCH response all the same.
            assert command(wire, b"d", b"SEARCH RETURN (MIN MAX ALL COUNT) DELETED") == [
                b'* ESEARCH (TAG "d") COUNT 0',
                b"d OK Search completed",
            ]
            assert command(wire, b"e", b"SEARCH RETURN (MIN) DELETED") == [
                b'* ESEARCH (TAG "e")',
                b"e OK Search completed",
            ]
            # A plain SEARCH still answers SEARCH.
            assert command(wire, b"f", b"SEARCH FLAGGED") == [
                b"* SEARCH 1 3 4",
                b"f OK Search completed",
            ]
            assert command(wire, b"g", b"SEARCH RETURN (ALL PARTIAL 1:2) ALL")[-1].startswith(
                b"g BAD "
            )

    await asyncio.to_thread(conversation)


async def test_esearch_with_a_modseq_key_tells_the_modseq_of_what_it_returns(
    imap: ImapTarget,
) -> None:
    """RFC 4731 section 3.2 and RFC 7162 section 3.1.10."""
    user = await _sorted_mailbox(imap)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            command(wire, b"a", b"SELECT INBOX")
            command(wire, b"b", b"STORE 2 +FLAGS.SILENT (\\Flagged)")
            command(wire, b"c", b"STORE 4 +FLAGS.SILENT (\\Flagged)")
            fetched = [x for x in command(wire, b"d", b"FETCH 1:4 (MODSEQ)") if b"FETCH" in x]
            modseq = [int(line.split(b"MODSEQ (")[1].rstrip(b"))")) for line in fetched]
            assert modseq[3] > modseq[1] > max(modseq[0], modseq[2])
            assert command(wire, b"e", b"SEARCH RETURN (ALL) MODSEQ %d" % modseq[1]) == [
                b'* ESEARCH (TAG "e") ALL 2,4 MODSEQ %d' % modseq[3],
                b"e OK Search completed",
            ]
            assert command(wire, b"f", b"SEARCH RETURN (MIN) MODSEQ %d" % modseq[1]) == [
                b'* ESEARCH (TAG "f") MIN 2 MODSEQ %d' % modseq[1],
                b"f OK Search completed",
            ]
            assert command(wire, b"g", b"UID SEARCH RETURN (COUNT) MODSEQ %d" % modseq[3]) == [
                b'* ESEARCH (TAG "g") UID COUNT 1 MODSEQ %d' % modseq[3],
                b"g OK Search completed",
            ]
            # An empty result has no MODSEQ.
            assert command(wire, b"h", b"SEARCH RETURN (COUNT) MODSEQ %d" % (modseq[3] + 1)) == [
                b'* ESEARCH (TAG "h") COUNT 0',
                b"h OK Search completed",
            ]

    await asyncio.to_thread(conversation)


async def test_partial_pages_through_search_and_uid_fetch_results(imap: ImapTarget) -> None:
    """RFC 9394 sections 3.1 and 3.3."""
    user = await _sorted_mailbox(imap)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            command(wire, b"a", b"SELECT INBOX")
            assert command(wire, b"A01", b"UID SEARCH RETURN (PARTIAL -1:-2) ALL") == [
                b'* ESEARCH (TAG "A01") UID PARTIAL (-1:-2 4:5)',
                b"A01 OK Search completed",
            ]
            assert command(wire, b"A02", b"SEARCH RETURN (PARTIAL 3:10 COUNT) ALL") == [
                b'* ESEARCH (TAG "A02") COUNT 4 PARTIAL (3:10 3:4)',
                b"A02 OK Search completed",
            ]
            assert command(wire, b"A04", b"UID SEARCH RETURN (PARTIAL 5:500) ALL") == [
                b'* ESEARCH (TAG "A04") UID PARTIAL (5:500 NIL)',
                b"A04 OK Search completed",
            ]
            assert command(wire, b"b", b"SEARCH RETURN (MIN PARTIAL -2:-1) NOT 1") == [
                b'* ESEARCH (TAG "b") MIN 2 PARTIAL (-2:-1 3:4)',
                b"b OK Search completed",
            ]
            assert command(wire, b"c", b"UID FETCH 3:* (UID) (PARTIAL -1:-2)") == [
                b"* 3 FETCH (UID 4)",
                b"* 4 FETCH (UID 5)",
                b"c OK Fetch completed",
            ]
            assert command(wire, b"d", b"UID FETCH 1:* (UID) (PARTIAL 1:1)") == [
                b"* 1 FETCH (UID 2)",
                b"d OK Fetch completed",
            ]
            assert command(wire, b"e", b"FETCH 1:* (UID) (PARTIAL 1:1)")[-1].startswith(b"e BAD ")

    await asyncio.to_thread(conversation)


async def test_esort_answers_in_sort_order(imap: ImapTarget) -> None:
    """RFC 5267 section 3: MIN and MAX are the first and last sorted, ALL keeps the
    order with ranges that only ascend."""
    user = await _sorted_mailbox(imap)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            command(wire, b"a", b"SELECT INBOX")
            assert command(wire, b"b", b"SORT RETURN (MIN MAX COUNT ALL) (ARRIVAL) UTF-8 ALL") == [
                b'* ESEARCH (TAG "b") MIN 3 MAX 4 COUNT 4 ALL 3,1:2,4',
                b"b OK Sort completed",
            ]
            assert command(wire, b"E01", b"UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL") == [
                b'* ESEARCH (TAG "E01") UID ALL 5,3,2,4',
                b"E01 OK Sort completed",
            ]
            assert command(wire, b"c", b"SORT RETURN (PARTIAL -1:-2) (ARRIVAL) UTF-8 ALL") == [
                b'* ESEARCH (TAG "c") PARTIAL (-1:-2 2,4)',
                b"c OK Sort completed",
            ]
            assert command(wire, b"d", b"SORT RETURN (COUNT) (ARRIVAL) UTF-8 DELETED") == [
                b'* ESEARCH (TAG "d") COUNT 0',
                b"d OK Sort completed",
            ]
            assert command(wire, b"f", b"SORT (ARRIVAL) UTF-8 ALL") == [
                b"* SORT 3 1 2 4",
                b"f OK Sort completed",
            ]

    await asyncio.to_thread(conversation)
