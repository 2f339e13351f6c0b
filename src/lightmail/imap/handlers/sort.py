"""SORT and THREAD, with their UID forms (RFC 5256, RFC 5957).

The messages are found by SEARCH's own search (`imap/handlers/search.py::find`),
then ordered from the keys cached at delivery (``Messages.fetch_sort_keys``):
no blob is read unless a search key asks for BODY or TEXT.
"""

from __future__ import annotations

from lightmail.imap import search as matching
from lightmail.imap import sort as ordering
from lightmail.imap.handlers.search import CHARSETS, find, send_esearch
from lightmail.imap.session import ImapSession
from lightmail.imap.sort import SortMessage
from lightmail.imap.thread import thread as threads_of
from lightmail.imap.wire import commands as c
from lightmail.imap.wire.responses import Completion, ResponseCode, no, ok
from lightmail.imap.wire.results import sort_response, thread_response
from lightmail.imap.wire.types import SearchKey


async def sort(session: ImapSession, command: c.SortCommand) -> Completion:
    """SORT and UID SORT (RFC 5256 BASE.6.4.SORT); with a MODSEQ search key the answer
    ends with the highest mod-sequence found (RFC 7162 section 3.1.5). With result
    options it is an ESEARCH response, in sort order (RFC 5267 section 3, ESORT)."""
    if command.charset not in CHARSETS:
        return no("Unsupported charset", ResponseCode.badcharset(CHARSETS))
    messages, found = await _messages(session, command.key, uid=command.uid)
    by_modseq = matching.uses_modseq(command.key)
    numbers = ordering.sort(messages, command.criteria)
    if command.returns is not None:
        answer = [(n, *found[n]) for n in numbers]
        send_esearch(
            session, command.tag, command.returns, answer, uid=command.uid, by_modseq=by_modseq
        )
    else:
        highest = max((modseq for _, modseq in found.values()), default=0)
        session.send(sort_response(numbers, highest if by_modseq else None))
    await session.announce(allow_expunge=session.may_expunge(command))
    return ok("Sort completed")


async def thread(session: ImapSession, command: c.ThreadCommand) -> Completion:
    """THREAD and UID THREAD (RFC 5256 BASE.6.4.THREAD)."""
    if command.charset not in CHARSETS:
        return no("Unsupported charset", ResponseCode.badcharset(CHARSETS))
    messages, _ = await _messages(session, command.key, uid=command.uid)
    session.send(thread_response(threads_of(messages, command.algorithm)))
    await session.announce(allow_expunge=session.may_expunge(command))
    return ok("Thread completed")


async def _messages(
    session: ImapSession, key: SearchKey, *, uid: bool
) -> tuple[list[SortMessage], dict[int, tuple[int, int]]]:
    """The messages matching `key` with their sort keys, numbered by UID when `uid`,
    and the UID and mod-sequence of each by its number. A MODSEQ key enables
    CONDSTORE (RFC 7162 3.1)."""
    if matching.uses_modseq(key):
        session.enable_condstore()
    found = await find(session, key)
    if not found:
        return [], {}
    mailbox = await session.store.mailbox_by_id(session.user_id, session.view.mailbox_id)
    cached = {
        keys.uid: keys
        for keys in await session.store.fetch_sort_keys(mailbox, [info.uid for _, info in found])
    }
    messages: list[SortMessage] = []
    numbered: dict[int, tuple[int, int]] = {}
    for seq, info in found:
        keys = cached.get(info.uid)
        if keys is None:
            continue  # expunged by another session since the search
        # INTERNALDATE as clients see it, to the second (RFC 3501 date-time).
        arrival = info.internaldate.replace(microsecond=0)
        messages.append(
            SortMessage(
                seq=seq,
                number=info.uid if uid else seq,
                arrival=arrival,
                sent=arrival if keys.sent_date is None else keys.sent_date,
                size=info.size,
                keys=keys.keys,
            )
        )
        numbered[messages[-1].number] = (info.uid, info.modseq)
    return messages, numbered
