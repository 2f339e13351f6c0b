"""Commands of the selected state that change it or its messages (RFC 3501
section 6.4): CLOSE, UNSELECT (RFC 3691), EXPUNGE, UID EXPUNGE (RFC 4315), STORE,
COPY and MOVE (RFC 6851)."""

from __future__ import annotations

import logging
from typing import Any

from lightmail.imap.session import ImapSession, flag_names
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import responses as r
from lightmail.mailstore.store import StoreMode

log = logging.getLogger(__name__)

_STORE_MODES = {"replace": StoreMode.REPLACE, "add": StoreMode.ADD, "remove": StoreMode.REMOVE}


async def close(session: ImapSession, command: c.CloseCommand) -> r.Completion:
    """CLOSE (RFC 3501 6.4.2): expunge silently unless read-only, then deselect."""
    if not session.view.readonly:
        mailbox = await session.store.mailbox_by_id(session.user_id, session.view.mailbox_id)
        await session.store.expunge(session.user_id, mailbox)
    session.deselect()
    return r.ok("Close completed")


async def unselect(session: ImapSession, command: c.UnselectCommand) -> r.Completion:
    session.deselect()
    return r.ok("Unselect completed")


async def expunge(
    session: ImapSession, command: c.ExpungeCommand | c.UidExpungeCommand
) -> r.Completion:
    """EXPUNGE (RFC 3501 6.4.3) and UID EXPUNGE (RFC 4315 2.1); once QRESYNC is
    enabled, the new HIGHESTMODSEQ when some message went (RFC 7162 3.2.7, 3.2.9):
    every change up to it has been told by then."""
    if session.view.readonly:
        return r.no("Mailbox is read-only", r.Code.READ_ONLY)
    uids = None
    if isinstance(command, c.UidExpungeCommand):
        uids = [uid for _, uid in session.resolve(command.sequence_set, uid=True)]
    mailbox = await session.store.mailbox_by_id(session.user_id, session.view.mailbox_id)
    expunged = await session.store.expunge(session.user_id, mailbox, uids)
    await session.announce(allow_expunge=True, force=True)
    if expunged and session.qresync:
        return r.ok("Expunge completed", r.ResponseCode.highestmodseq(session.modseq))
    return r.ok("Expunge completed")


async def store(session: ImapSession, command: c.StoreCommand) -> r.Completion:
    """STORE (RFC 3501 6.4.6): the new flags of every named message, unless .SILENT;
    with UNCHANGEDSINCE (RFC 7162 section 3.1.3), only on messages not changed
    since, the others named in MODIFIED and shown as they are."""
    view = session.view
    targets = session.resolve(command.sequence_set, uid=command.uid)
    if view.readonly:
        return r.no("Mailbox is read-only", r.Code.READ_ONLY)
    conditional = command.unchangedsince is not None
    if conditional:
        session.enable_condstore()
    live = [(seq, uid) for seq, uid in targets if not view.is_expunged(uid)]
    mailbox = await session.store.mailbox_by_id(session.user_id, view.mailbox_id)
    result = await session.store.store_flags(
        session.user_id,
        mailbox,
        [uid for _, uid in live],
        _STORE_MODES[command.mode],
        flag_names(command.flags),
        unchangedsince=command.unchangedsince,
    )
    # The view takes the flags the store has now of each message this session
    # changed or is about to show, so what a FETCH response says (flags and
    # mod-sequence) is one state; an unchanged message a .SILENT STORE does not
    # show keeps what the client was told, so another session's change to it is
    # still announced.
    shown = [*result.changed, *result.modified]
    if not command.silent:
        shown += result.unchanged
    for info in shown:
        view.set_flags(info.uid, info.flags.names())
    found = {info.uid: info for info in (*shown, *result.unchanged)}
    if result.changed:
        session.note_own_change(result.changed[0].modseq)
    await session.announce_new_keywords(view)
    modified = {info.uid for info in result.modified}
    for seq, uid in live:
        now = found.get(uid)
        if now is not None and (uid in modified or session.condstore):
            if command.silent and uid not in modified:
                if conditional:  # MODSEQ even when silent (RFC 7162 section 3.1.3)
                    session.send(r.fetch_response(seq, [(b"UID", uid), (b"MODSEQ", [now.modseq])]))
                continue
            session.send(session.flags_fetch(seq, uid, now.modseq))
        elif not command.silent:
            items: list[tuple[bytes, Any]] = [(b"FLAGS", r.Raw(session.flag_list(uid)))]
            if command.uid:
                items.insert(0, (b"UID", uid))
            session.send(r.fetch_response(seq, items))
    await session.announce(allow_expunge=session.may_expunge(command))
    code = None
    if modified:
        failed = [uid if command.uid else seq for seq, uid in live if uid in modified]
        code = r.ResponseCode.modified(failed)
    if len(live) < len(targets):
        return r.no("Some messages were expunged", code or r.Code.EXPUNGEISSUED)
    if code is not None:
        return r.ok("Conditional STORE failed for some messages", code)
    return r.ok("Store completed")


async def copy(session: ImapSession, command: c.CopyCommand | c.MoveCommand) -> r.Completion:
    """COPY (RFC 3501 6.4.7, COPYUID of RFC 4315) and MOVE (RFC 6851)."""
    move = isinstance(command, c.MoveCommand)
    view = session.view
    targets = session.resolve(command.sequence_set, uid=command.uid)
    if move and view.readonly:
        return r.no("Mailbox is read-only", r.Code.READ_ONLY)
    destination = session.decode_mailbox(command.mailbox)
    mailbox = await session.store.mailbox_by_id(session.user_id, view.mailbox_id)
    uids = [uid for _, uid in targets if not view.is_expunged(uid)]
    operation = session.store.move if move else session.store.copy
    result = await operation(session.user_id, mailbox, uids, destination)
    code = None
    if result.source_uids:
        code = r.ResponseCode.copyuid(result.uidvalidity, result.source_uids, result.dest_uids)
    if move:
        if code is not None:
            session.send(r.UntaggedResponse(r.Status.OK, "Moved", code))
        await session.announce(allow_expunge=True, force=True)
        return r.ok("Move completed")
    await session.announce(allow_expunge=True)
    return r.ok("Copy completed", code)
