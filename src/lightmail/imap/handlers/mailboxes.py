"""Commands on mailboxes in the authenticated state (RFC 3501 section 6.3):
SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS;
with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE and
CREATE-SPECIAL-USE (RFC 6154), STATUS=SIZE (RFC 8438) and CHILDREN (RFC 3348)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from lightmail.errors import LightMailError
from lightmail.imap import objectid
from lightmail.imap.selected import SelectedMailbox
from lightmail.imap.session import DELIMITER, ImapSession
from lightmail.imap.state import State
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import responses as r
from lightmail.imap.wire.types import QresyncParameter, SequenceSet
from lightmail.mailstore import names
from lightmail.mailstore.store import Mailbox, MessageInfo
from lightmail.mailstore.types import MailboxStatus

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
    name = session.decode_mailbox(command.mailbox)
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
    if session.rev2:
        # RFC 9051 section 6.3.2: a LIST of the mailbox; RECENT and UNSEEN are gone.
        attributes = [mailbox.special_use.encode()] if mailbox.special_use else []
        session.send(r.list_response(attributes, DELIMITER, session.encode_mailbox(mailbox.name)))
    else:
        session.send(r.recent_response(view.recent_count))
        unseen = view.first_unseen()
        if unseen is not None:
            code = r.ResponseCode.unseen(unseen)
            session.send(r.UntaggedResponse(r.Status.OK, "First unseen", code))
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
    session.send(  # RFC 8474 section 4.2
        r.UntaggedResponse(
            r.Status.OK, "Ok", r.ResponseCode.mailboxid(objectid.mailbox_id(mailbox))
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
    will be created below this one: the name is created without it.

    ``USE (\\Sent)`` (RFC 6154 section 3) gives the mailbox that special use; a
    mailbox here has at most one, so two or more are NO [USEATTR], as is one it
    cannot have (``\\All``, ``\\Flagged``: virtual mailboxes).
    """
    raw = command.mailbox
    if raw.endswith(DELIMITER):
        raw = raw[:-1]
    uses = {use.decode("ascii", "replace").lower() for use in command.use}
    if len(uses) > 1:
        return r.no("A mailbox has at most one special use here", r.Code.USEATTR)
    special_use = next(iter(command.use)).decode("ascii", "replace") if uses else None
    mailbox = await session.store.create_mailbox(
        session.user_id, session.decode_mailbox(raw), special_use
    )
    await session.announce(allow_expunge=True)
    return r.ok("Create completed", r.ResponseCode.mailboxid(objectid.mailbox_id(mailbox)))


async def delete(session: ImapSession, command: c.DeleteCommand) -> r.Completion:
    await session.store.delete_mailbox(session.user_id, session.decode_mailbox(command.mailbox))
    await session.announce(allow_expunge=True)
    return r.ok("Delete completed")


async def rename(session: ImapSession, command: c.RenameCommand) -> r.Completion:
    await session.store.rename_mailbox(
        session.user_id, session.decode_mailbox(command.old), session.decode_mailbox(command.new)
    )
    await session.announce(allow_expunge=True)
    return r.ok("Rename completed")


async def subscribe(session: ImapSession, command: c.SubscribeCommand) -> r.Completion:
    await session.store.subscribe(session.user_id, session.decode_mailbox(command.mailbox))
    return r.ok("Subscribe completed")


async def unsubscribe(session: ImapSession, command: c.UnsubscribeCommand) -> r.Completion:
    await session.store.unsubscribe(session.user_id, session.decode_mailbox(command.mailbox))
    return r.ok("Unsubscribe completed")


async def list_mailboxes(session: ImapSession, command: c.ListCommand) -> r.Completion:
    """LIST (RFC 3501 section 6.3.8) and its extensions (see the module docstring).

    The names are the user's mailboxes and the levels above them that do not
    exist themselves ("holes", shown ``\\Noselect``, or ``\\NonExistent`` to a
    client that used RFC 5258's syntax), or with SUBSCRIBED the subscribed
    names, existing or not. CHILDREN and special-use attributes are always
    sent. Replies come in name order, one per name, each with its STATUS right
    after it when asked for (RFC 5819).
    """
    if not command.extended and command.patterns == (b"",):
        session.send(r.list_response([b"\\Noselect"], DELIMITER, b""))
        return r.ok("List completed")
    # An extended LIST ignores an empty pattern (RFC 5258 section 3).
    patterns = [_list_pattern(session, command.reference, p) for p in command.patterns if p]
    selecting = command.select_options
    mailboxes = {m.name: m for m in await session.store.list_mailboxes(session.user_id)}
    subscribed: set[str] = set()
    if "SUBSCRIBED" in selecting or "SUBSCRIBED" in command.return_options:
        subscribed = set(await session.store.subscriptions(session.user_id))
    with_children = {parent for name in mailboxes for parent in names.parents(name)}

    def selected(name: str) -> bool:
        """The name meets every selection option."""
        mailbox = mailboxes.get(name)
        if "SUBSCRIBED" in selecting and name not in subscribed:
            return False
        if "SPECIAL-USE" in selecting and (mailbox is None or not mailbox.special_use):
            return False
        return "SUBSCRIBED" in selecting or mailbox is not None or name in with_children

    universe = set(subscribed if "SUBSCRIBED" in selecting else mailboxes) | with_children
    chosen = {name for name in universe if selected(name)}
    # RECURSIVEMATCH (section 3.5): the levels above a chosen name say so in CHILDINFO,
    # and are shown for it even when they are not chosen themselves, if this LIST
    # does not show that name.
    above_chosen: set[str] = set()
    above_unshown: set[str] = set()
    if "RECURSIVEMATCH" in selecting:
        for name in chosen:
            parents = names.parents(name)
            above_chosen.update(parents)
            if not any(pattern.matches(name) for pattern in patterns):
                above_unshown.update(parents)
    shown: list[tuple[str, bool]] = []  # (name, meets the selection itself)
    for name in sorted(chosen | above_unshown):
        if any(pattern.matches(name) for pattern in patterns):
            shown.append((name, name in chosen))
    statuses: dict[int, MailboxStatus] = {}
    if "STATUS" in command.return_options:
        ids = [mailboxes[name].id for name, meets in shown if meets and name in mailboxes]
        statuses = await session.store.mailbox_statuses(session.user_id, ids)
    for name, meets in shown:
        mailbox = mailboxes.get(name)
        status = statuses.get(mailbox.id) if mailbox is not None else None
        attributes: list[bytes] = []
        if mailbox is None:
            attributes.append(b"\\NonExistent" if command.extended else b"\\Noselect")
        elif "STATUS" in command.return_options and meets and status is None:
            attributes.append(b"\\Noselect")  # deleted since it was listed (RFC 5819)
        attributes.append(b"\\HasChildren" if name in with_children else b"\\HasNoChildren")
        if mailbox is not None and mailbox.special_use:
            attributes.append(mailbox.special_use.encode())
        if subscribed and name in subscribed:
            attributes.append(b"\\Subscribed")
        childinfo = ("SUBSCRIBED",) if name in above_chosen else ()
        encoded = session.encode_mailbox(name)
        session.send(r.list_response(attributes, DELIMITER, encoded, childinfo=childinfo))
        if status is not None:
            session.send(await _status_response(session, encoded, status, command.status_items))
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
    pattern = _list_pattern(session, command.reference, command.pattern)
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
        session.send(r.lsub_response(shown[name], DELIMITER, session.encode_mailbox(name)))
    return r.ok("Lsub completed")


async def status(session: ImapSession, command: c.StatusCommand) -> r.Completion:
    """STATUS (RFC 3501 section 6.3.10), with SIZE (RFC 8438), DELETED and
    DELETED-STORAGE (RFC 9208 section 4.1.4), APPENDLIMIT (RFC 7889) and
    HIGHESTMODSEQ (RFC 7162 section 3.1.7), which enables CONDSTORE."""
    name = session.decode_mailbox(command.mailbox)
    status = await session.store.mailbox_status(session.user_id, name)
    session.send(
        await _status_response(session, session.encode_mailbox(name), status, command.items)
    )
    await session.announce(allow_expunge=True)
    return r.ok("Status completed")


async def _status_response(
    session: ImapSession, name: bytes, status: MailboxStatus, items: Sequence[str]
) -> r.DataResponse:
    """``* STATUS name (...)`` with ``items`` in the order asked; RECENT costs a query
    of its own, so it is counted only when asked for. HIGHESTMODSEQ, in STATUS or
    in LIST's STATUS return option, enables CONDSTORE (RFC 7162 section 3.1)."""
    if "HIGHESTMODSEQ" in items:
        session.enable_condstore()
    recent = 0
    if "RECENT" in items:
        recent = len(await session.store.claim_recent(status.mailbox, readonly=True))
    values: dict[str, int | bytes] = {
        "MESSAGES": status.messages,
        "RECENT": recent,
        "UIDNEXT": status.mailbox.uidnext,
        "UIDVALIDITY": status.mailbox.uidvalidity,
        "UNSEEN": status.unseen,
        "SIZE": status.size,
        "DELETED": status.deleted,
        "DELETED-STORAGE": status.deleted_size,
        "APPENDLIMIT": session.settings.max_append_size,  # RFC 7889: the same everywhere
        "HIGHESTMODSEQ": status.mailbox.highestmodseq,
        "MAILBOXID": b"(" + objectid.mailbox_id(status.mailbox) + b")",  # RFC 8474 4.3
    }
    return r.status_response(name, [(item, values[item]) for item in items])


def _list_pattern(session: ImapSession, reference: bytes, pattern: bytes) -> names.MailboxPattern:
    """LIST's and LSUB's arguments (RFC 3501 section 6.3.8). They are patterns, not
    names: one that is not modified UTF-7 (UTF-8) is matched as it reads, never refused."""
    return names.MailboxPattern(session.decode_pattern(reference), session.decode_pattern(pattern))
