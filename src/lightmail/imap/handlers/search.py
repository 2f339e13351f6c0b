"""SEARCH and UID SEARCH (RFC 3501 section 6.4.4): evaluated by
:mod:`lightmail.imap.search` over the cached parse, BODY/TEXT read from the blob store.
`find` is the search SORT and THREAD (``imap/handlers/sort.py``) run too, and
`send_esearch` the answer of an extended SEARCH or SORT (RFC 4731, RFC 5267)."""

from __future__ import annotations

import email.utils
import logging
from datetime import date

from lightmail.fairness import TimeSlice
from lightmail.imap import search as matching
from lightmail.imap import textscan
from lightmail.imap.session import META_BATCH, ImapSession
from lightmail.imap.wire import commands as c
from lightmail.imap.wire.responses import Completion, ResponseCode, no, ok
from lightmail.imap.wire.results import esearch_response, search_response
from lightmail.imap.wire.types import SearchKey, SearchReturn
from lightmail.mailstore.store import MessageInfo, MessageMeta

log = logging.getLogger(__name__)


async def search(session: ImapSession, command: c.SearchCommand) -> Completion:
    """SEARCH and UID SEARCH (RFC 3501 6.4.4), with MODSEQ (RFC 7162 section 3.1.5),
    which enables CONDSTORE and ends a non-empty answer with the highest
    mod-sequence found; with result options, answered with ESEARCH (RFC 4731), and
    RETURN (SAVE) keeps the result for ``$`` (RFC 5182). After ENABLE IMAP4rev2 a
    SEARCH without them is one with RETURN (ALL) (RFC 9051 section 6.4.4)."""
    returns = command.returns
    if returns is None and session.rev2:
        returns = _ALL
    if returns is not None and "SAVE" in returns.options:
        session.view.search_result = []  # what a SEARCH that fails leaves (RFC 5182 2.1)
    if command.charset not in (None, *CHARSETS):
        return no("Unsupported charset", ResponseCode.badcharset(CHARSETS))
    by_modseq = matching.uses_modseq(command.key)
    if by_modseq:
        session.enable_condstore()
    if matching.uses_rows(command.key):
        found = [(seq, info.uid, info.modseq) for seq, info in await find(session, command.key)]
    else:  # flags and numbers only: the view has them, no row is read
        found = await _find_in_view(session, command.key)
    numbers = [uid if command.uid else seq for seq, uid, _ in found]
    if returns is not None:
        answer = [(n, uid, modseq) for n, (_, uid, modseq) in zip(numbers, found, strict=True)]
        send_esearch(session, command.tag, returns, answer, uid=command.uid, by_modseq=by_modseq)
    else:
        highest = max((modseq for _, _, modseq in found), default=0)
        session.send(search_response(numbers, highest if by_modseq else None))
    await session.announce(allow_expunge=session.may_expunge(command))
    return ok("Search completed")


def send_esearch(
    session: ImapSession,
    tag: bytes,
    returns: SearchReturn,
    found: list[matching.Found],
    *,
    uid: bool,
    by_modseq: bool,
) -> None:
    """The ESEARCH response of an extended SEARCH or SORT (RFC 4731 section 3.1, RFC
    5267 section 3) for the messages found, in result order. SAVE keeps the
    messages it returns as the search result, and alone asks for no response
    (RFC 5182 sections 2.1 and 2.4)."""
    result, returned = matching.result_of(found, returns, by_modseq=by_modseq)
    if "SAVE" in returns.options:
        session.view.search_result = returned
    if returns.options != {"SAVE"} or returns.partial is not None:
        session.send(esearch_response(tag, result, uid=uid))


async def _find_in_view(session: ImapSession, key: SearchKey) -> list[tuple[int, int, int]]:
    """The messages matching a key that does not ``uses_rows`` (flags, numbers), from
    the session's view alone: (sequence number, UID, 0 for the mod-sequence no
    such key needs)."""
    view = session.view
    found: list[tuple[int, int, int]] = []
    turn = TimeSlice()  # other sessions run in between (issue #14)
    for seq, uid in enumerate(view.uids, 1):
        await turn.pause()
        if not view.is_expunged(uid) and matching.matches_in_view(
            key,
            seq,
            uid,
            view.flags_of(uid),
            recent=view.is_recent(uid),
            largest_seq=view.exists,
            largest_uid=view.largest_uid,
        ):
            found.append((seq, uid, 0))
    return found


async def find(session: ImapSession, key: SearchKey) -> list[tuple[int, MessageInfo]]:
    """The messages of the selected mailbox that match `key`, with their sequence
    numbers, in sequence order: the one search of SEARCH, SORT and THREAD."""
    view = session.view
    mailbox = await session.store.mailbox_by_id(session.user_id, view.mailbox_id)
    needles = matching.text_needles(key)
    sent_dates = matching.uses_sent_date(key)  # else the envelope stays undecoded
    parsed = matching.uses_parse(key)  # else the cached parse is not read at all
    matched: list[tuple[int, MessageInfo]] = []
    live = [(seq, uid) for seq, uid in enumerate(view.uids, 1) if not view.is_expunged(uid)]
    turn = TimeSlice()  # other sessions run in between (issue #14)
    for start in range(0, len(live), META_BATCH):
        batch = live[start : start + META_BATCH]
        uids = [uid for _, uid in batch]
        rows: dict[int, tuple[MessageInfo, MessageMeta | None]]
        if parsed:
            metas = await session.store.fetch_meta(mailbox, uids)
            rows = {meta.info.uid: (meta.info, meta) for meta in metas}
        else:
            infos = await session.store.fetch_infos(mailbox, uids)
            rows = {info.uid: (info, None) for info in infos}
        for seq, uid in batch:
            row = rows.get(uid)
            if row is None:
                continue
            info, meta = row
            found: frozenset[tuple[bytes, bool]] = frozenset()
            if needles and meta is not None:
                found = await _search_text(session, meta, needles, turn)
            message = matching.SearchMessage(
                seq=seq,
                uid=uid,
                flags=view.flags_of(uid),
                recent=view.is_recent(uid),
                size=info.size,
                internaldate=info.internaldate,
                header=b"" if meta is None else meta.header,
                sent_date=_sent_date(meta.envelope.date) if sent_dates and meta else None,
                modseq=info.modseq,
                object_key=info.object_key,
                thread_root="" if meta is None else meta.thread_root,
            )
            if matching.matches(
                key,
                message,
                largest_seq=view.exists,
                largest_uid=view.largest_uid,
                found=found,
            ):
                matched.append((seq, info))
            await turn.pause()
    return matched


async def _search_text(
    session: ImapSession, meta: MessageMeta, needles: frozenset[tuple[bytes, bool]], turn: TimeSlice
) -> frozenset[tuple[bytes, bool]]:
    """BODY/TEXT needles found in the parts' MIME headers and decoded text, read
    range by range from the blob store (the top-level header is matched from
    the cache by ``matching.matches``). Scanned in pieces of ``_SCAN_PIECE``
    octets, giving way to other sessions in between."""
    scan = textscan.TextScan(needles, body_start=0)
    for segment in textscan.text_segments(meta.body):
        part = segment.part
        decoder = (
            None if part is None else textscan.PartDecoder(part.encoding, part.param("CHARSET"))
        )
        async for chunk in session.store.read_message(meta.info, segment.start, segment.end):
            data = chunk if decoder is None else decoder.feed(chunk)
            for at in range(0, len(data), _SCAN_PIECE):
                scan.feed(data[at : at + _SCAN_PIECE])
                if scan.done:
                    return scan.found()
                await turn.pause()
        if decoder is not None:
            scan.feed(decoder.close())
        scan.feed(b"\n")  # no match across two segments
    return scan.found()


_ALL = SearchReturn(frozenset({"ALL"}))
CHARSETS = ("US-ASCII", "UTF-8")
"""The charsets SEARCH, SORT and THREAD take (RFC 3501 6.4.4, RFC 5256)."""
_SCAN_PIECE = 8 * 1024  # octets BODY/TEXT search scans between two chances to give way


def _sent_date(value: str | None) -> date | None:
    """The day of the Date: header in its own time zone (RFC 3501 SENTON and friends)."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).date()
    except (TypeError, ValueError, IndexError):
        return None
