"""Commands on mailboxes in the authenticated state (RFC 3501 section 6.3):
SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from lightmail.errors import LightMailError
from lightmail.imap.selected import SelectedMailbox
from lightmail.imap.session import DELIMITER, ImapSession, decode_mailbox
from lightmail.imap.state import State
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import mutf7
from lightmail.imap.wire import responses as r
from lightmail.imap.wire.types import QresyncParameter, SequenceSet
from lightmail.mailstore import names
from lightmail.mailstore.store import Mailbox, MessageInfo

log = logging.getLogger(__name__)


async def select(session: ImapSession, command: c.SelectCommand) -> r.Completion:
    """SELECT and EXAMINE (RFC 3501 sections 6.3.1 and 6.3.2), with CONDSTORE and
    QRESYNC (RFC 7162 sections 3.1.8 and 3.2.5)."""
    qresync = command.qresync
    if qresync is not None and not session.qresync:
        return r.bad("QRESYNC is not enabled")
    if session.selected is not None:
        # A failed SELECT leaves nothing selected; CLOSED marks where the responses
        # for the old mailbox end (RFC 7162 section 3.2.11).
        closed = r.ResponseCode(r.Code.CLOSED)
        session.send(r.UntaggedResponse(r.Status.OK, "Previous mailbox closed", closed))
        session.deselect()
    if command.condstore:
        session.condstore = True  # its HIGHESTMODSEQ follows below
    name = decode_mailbox(command.mailbox)
    mailbox = await session.store.get_mailbox(session.user_id, name)
    infos = await session.store.list_messages(mailbox)
    recent = await session.store.claim_recent(mailbox, readonly=command.readonly)
    view = SelectedMailbox(
        mailbox.id,
        session.snapshot(infos),
        readonly=command.readonly,
        recent=recent,
        keywords=mailbox.keywords,
        keyword_room=session.store.may_create_keywords(mailbox),
    )
    session.modseq = mailbox.highestmodseq
    session.selected = view
    session.state = State.SELECTED
    session.send_keywords(view)
    session.send(r.exists_response(view.exists))
    session.send(r.recent_response(view.recent_count))
    unseen = view.first_unseen()
    if unseen is not None:
        session.send(r.UntaggedResponse(r.Status.OK, "First unseen", r.ResponseCode.unseen(unseen)))
    session.send(
        r.UntaggedResponse(
            r.Status.OK, "UIDs valid", r.ResponseCode.uidvalidity(mailbox.uidvalidity)
        )
    )
    session.send(
        r.UntaggedResponse(
            r.Status.OK, "Predicted next UID", r.ResponseCode.uidnext(mailbox.uidnext)
        )
    )
    if session.condstore:
        code = r.ResponseCode.highestmodseq(mailbox.highestmodseq)
        session.send(r.UntaggedResponse(r.Status.OK, "Highest", code))
    if qresync is not None and qresync.uidvalidity == mailbox.uidvalidity:
        try:
            await _resynchronize(session, mailbox, infos, qresync)
        except LightMailError:
            session.deselect()  # answered NO: nothing is selected (RFC 3501 6.3.1)
            raise
    await session.watch()
    return r.ok("Select completed", r.Code.READ_ONLY if command.readonly else r.Code.READ_WRITE)


async def _resynchronize(
    session: ImapSession, mailbox: Mailbox, infos: list[MessageInfo], qresync: QresyncParameter
) -> None:
    """What changed since the client's mod-sequence, among the UIDs it knows (all
    below UIDNEXT when it names none): VANISHED (EARLIER), then a FETCH of each
    message changed since (RFC 7162 section 3.2.5.1)."""
    view = session.view
    known = qresync.known_uids
    if known is None:
        if mailbox.uidnext == 1:  # never held a message: nothing to know
            return
        known = SequenceSet(((1, mailbox.uidnext - 1),))
    through = view.known_through(zip(*map(_numbers, qresync.seq_match or ()), strict=False))
    await session.send_vanished_earlier(mailbox, qresync.modseq, known, through=through)
    changed = {i.uid: i.modseq for i in infos if i.modseq > qresync.modseq}
    for uid in known.members(changed, view.largest_uid):
        session.send(session.flags_fetch(view.seq_of(uid) or 0, uid, changed[uid]))


def _numbers(numbers: SequenceSet) -> Iterator[int]:
    """A set of QRESYNC's match data, in the order sent (it has no ``*``)."""
    for low, high in numbers.bounds(0):
        yield from range(low, high + 1)


async def create(session: ImapSession, command: c.CreateCommand) -> r.Completion:
    """CREATE (RFC 3501 section 6.3.3). A trailing delimiter only declares that names
    will be created below this one: the name is created without it."""
    raw = command.mailbox
    if raw.endswith(DELIMITER):
        raw = raw[:-1]
    await session.store.create_mailbox(session.user_id, decode_mailbox(raw))
    await session.announce(allow_expunge=True)
    return r.ok("Create completed")


async def delete(session: ImapSession, command: c.DeleteCommand) -> r.Completion:
    await session.store.delete_mailbox(session.user_id, decode_mailbox(command.mailbox))
    await session.announce(allow_expunge=True)
    return r.ok("Delete completed")


async def rename(session: ImapSession, command: c.RenameCommand) -> r.Completion:
    await session.store.rename_mailbox(
        session.user_id, decode_mailbox(command.old), decode_mailbox(command.new)
    )
    await session.announce(allow_expunge=True)
    return r.ok("Rename completed")


async def subscribe(session: ImapSession, command: c.SubscribeCommand) -> r.Completion:
    await session.store.subscribe(session.user_id, decode_mailbox(command.mailbox))
    return r.ok("Subscribe completed")


async def unsubscribe(session: ImapSession, command: c.UnsubscribeCommand) -> r.Completion:
    await session.store.unsubscribe(session.user_id, decode_mailbox(command.mailbox))
    return r.ok("Unsubscribe completed")


async def list_mailboxes(session: ImapSession, command: c.ListCommand) -> r.Completion:
    """LIST (RFC 3501 section 6.3.8) with CHILDREN (RFC 3348) and SPECIAL-USE attributes."""
    if not command.pattern:
        session.send(r.list_response([b"\\Noselect"], DELIMITER, b""))
        return r.ok("List completed")
    pattern = _decode_list_pattern(command.reference, command.pattern)
    mailboxes = await session.store.list_mailboxes(session.user_id)
    existing = {m.name: m for m in mailboxes}
    every = set(existing)
    for name in existing:
        every.update(names.parents(name))
    has_children = {parent for name in every for parent in names.parents(name)}
    for name in sorted(every):
        if not pattern.matches(name):
            continue
        attributes = [b"\\HasChildren" if name in has_children else b"\\HasNoChildren"]
        mailbox = existing.get(name)
        if mailbox is None:
            attributes.insert(0, b"\\Noselect")
        elif mailbox.special_use:
            attributes.append(mailbox.special_use.encode())
        session.send(r.list_response(attributes, DELIMITER, mutf7.encode(name)))
    await session.announce(allow_expunge=True)
    return r.ok("List completed")


async def lsub(session: ImapSession, command: c.LsubCommand) -> r.Completion:
    """LSUB (RFC 3501 section 6.3.9): subscribed names that match the pattern.

    A pattern that ends in ``%`` also matches the levels above a subscribed
    name that are not subscribed themselves; those come with ``\\Noselect``.
    """
    if not command.pattern:
        session.send(r.lsub_response([b"\\Noselect"], DELIMITER, b""))
        return r.ok("Lsub completed")
    pattern = _decode_list_pattern(command.reference, command.pattern)
    subscribed = set(await session.store.subscriptions(session.user_id))
    shown: dict[str, list[bytes]] = {}
    for name in subscribed:
        if pattern.matches(name):
            shown[name] = []
        if pattern.ends_with_percent:
            for parent in names.parents(name):
                if parent not in subscribed and pattern.matches(parent):
                    shown.setdefault(parent, [b"\\Noselect"])
    for name in sorted(shown):
        session.send(r.lsub_response(shown[name], DELIMITER, mutf7.encode(name)))
    return r.ok("Lsub completed")


async def status(session: ImapSession, command: c.StatusCommand) -> r.Completion:
    """STATUS (RFC 3501 section 6.3.10), with HIGHESTMODSEQ (RFC 7162 section 3.1.7),
    which enables CONDSTORE."""
    if "HIGHESTMODSEQ" in command.items:
        session.enable_condstore()
    name = decode_mailbox(command.mailbox)
    status = await session.store.mailbox_status(session.user_id, name)
    recent: list[int] = []
    if "RECENT" in command.items:
        recent = await session.store.claim_recent(status.mailbox, readonly=True)
    values = {
        "MESSAGES": status.messages,
        "RECENT": len(recent),
        "UIDNEXT": status.mailbox.uidnext,
        "UIDVALIDITY": status.mailbox.uidvalidity,
        "UNSEEN": status.unseen,
        "HIGHESTMODSEQ": status.mailbox.highestmodseq,
    }
    items = [(item, values[item]) for item in command.items]
    session.send(r.status_response(mutf7.encode(name), items))
    await session.announce(allow_expunge=True)
    return r.ok("Status completed")


def _decode_list_pattern(reference: bytes, pattern: bytes) -> names.MailboxPattern:
    """LIST's and LSUB's arguments (RFC 3501 section 6.3.8). They are patterns, not
    names: one that is not modified UTF-7 is matched as it reads, never refused."""
    return names.MailboxPattern(mutf7.decode_pattern(reference), mutf7.decode_pattern(pattern))
