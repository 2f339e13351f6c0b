"""Commands of the selected state that change it or its messages (RFC 3501
section 6.4): CLOSE, UNSELECT (RFC 3691), EXPUNGE, UID EXPUNGE (RFC 4315), STORE,
COPY and MOVE (RFC 6851)."""

from __future__ import annotations

import logging
from typing import Any

from lightmail.imap.session import (
    ImapSession,
    decode_mailbox,
    flag_names,
)
from lightmail.imap.wire import commands as c
from lightmail.imap.wire.responses import (
    Code,
    Raw,
    ResponseCode,
    Status,
    UntaggedResponse,
    fetch_response,
)
from lightmail.mailstore.store import StoreMode

log = logging.getLogger(__name__)

_STORE_MODES = {"replace": StoreMode.REPLACE, "add": StoreMode.ADD, "remove": StoreMode.REMOVE}


async def close(session: ImapSession, command: c.CloseCommand) -> None:
    """CLOSE (RFC 3501 6.4.2): expunge silently unless read-only, then deselect."""
    if not session.view.readonly:
        mailbox = await session.store.mailbox_by_id(session.user_id, session.view.mailbox_id)
        await session.store.expunge(session.user_id, mailbox)
    session.deselect()
    session.ok(command.tag, "Close completed")


async def unselect(session: ImapSession, command: c.UnselectCommand) -> None:
    session.deselect()
    session.ok(command.tag, "Unselect completed")


async def expunge(session: ImapSession, command: c.ExpungeCommand | c.UidExpungeCommand) -> None:
    """EXPUNGE (RFC 3501 6.4.3) and UID EXPUNGE (RFC 4315 2.1)."""
    if session.view.readonly:
        session.no(command.tag, "Mailbox is read-only", Code.READ_ONLY)
        return
    uids = None
    if isinstance(command, c.UidExpungeCommand):
        uids = [uid for _, uid in session.resolve(command.sequence_set, uid=True)]
    mailbox = await session.store.mailbox_by_id(session.user_id, session.view.mailbox_id)
    await session.store.expunge(session.user_id, mailbox, uids)
    await session.announce(allow_expunge=True, force=True)
    session.ok(command.tag, "Expunge completed")


async def store(session: ImapSession, command: c.StoreCommand) -> None:
    """STORE (RFC 3501 6.4.6): the new flags of every named message, unless .SILENT."""
    view = session.view
    targets = session.resolve(command.sequence_set, uid=command.uid)
    if view.readonly:
        session.no(command.tag, "Mailbox is read-only", Code.READ_ONLY)
        return
    live = [(seq, uid) for seq, uid in targets if not view.is_expunged(uid)]
    mailbox = await session.store.mailbox_by_id(session.user_id, view.mailbox_id)
    changed = await session.store.store_flags(
        session.user_id,
        mailbox,
        [uid for _, uid in live],
        _STORE_MODES[command.mode],
        flag_names(command.flags),
    )
    for info in changed:
        view.set_flags(info.uid, info.flags.names())
    await session.announce_new_keywords(view)
    if not command.silent:
        for seq, uid in live:
            items: list[tuple[bytes, Any]] = [(b"FLAGS", Raw(session.flag_list(uid)))]
            if command.uid:
                items.insert(0, (b"UID", uid))
            session.send(fetch_response(seq, items))
    await session.announce(allow_expunge=session.may_expunge(command))
    if len(live) < len(targets):
        session.no(command.tag, "Some messages were expunged", Code.EXPUNGEISSUED)
        return
    session.ok(command.tag, "Store completed")


async def copy(session: ImapSession, command: c.CopyCommand | c.MoveCommand) -> None:
    """COPY (RFC 3501 6.4.7, COPYUID of RFC 4315) and MOVE (RFC 6851)."""
    move = isinstance(command, c.MoveCommand)
    view = session.view
    targets = session.resolve(command.sequence_set, uid=command.uid)
    if move and view.readonly:
        session.no(command.tag, "Mailbox is read-only", Code.READ_ONLY)
        return
    destination = decode_mailbox(command.mailbox)
    mailbox = await session.store.mailbox_by_id(session.user_id, view.mailbox_id)
    uids = [uid for _, uid in targets if not view.is_expunged(uid)]
    operation = session.store.move if move else session.store.copy
    result = await operation(session.user_id, mailbox, uids, destination)
    code = None
    if result.source_uids:
        code = ResponseCode.copyuid(result.uidvalidity, result.source_uids, result.dest_uids)
    if move:
        if code is not None:
            session.send(UntaggedResponse(Status.OK, "Moved", code))
        await session.announce(allow_expunge=True, force=True)
        session.ok(command.tag, "Move completed")
    else:
        await session.announce(allow_expunge=True)
        session.ok(command.tag, "Copy completed", code)
