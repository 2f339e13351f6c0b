"""Commands valid in any state (RFC 3501 section 6.1) and the small extensions
that answer with one untagged line: ID (RFC 2971), NAMESPACE (RFC 2342), ENABLE (RFC 5161)."""

from __future__ import annotations

import logging

from lightmail import __version__
from lightmail.imap.session import (
    DELIMITER,
    ImapSession,
)
from lightmail.imap.state import State
from lightmail.imap.wire import commands as c
from lightmail.imap.wire.responses import (
    Status,
    UntaggedResponse,
    capability_response,
    enabled_response,
    id_response,
    namespace_response,
)
from lightmail.net.driver import SessionEnd

log = logging.getLogger(__name__)


async def capability(session: ImapSession, command: c.CapabilityCommand) -> None:
    session.send(capability_response(session.capabilities()))
    session.ok(command.tag)


async def noop(session: ImapSession, command: c.NoopCommand | c.CheckCommand) -> None:
    await session.announce(allow_expunge=True, force=True)
    session.ok(command.tag)


async def logout(session: ImapSession, command: c.LogoutCommand) -> None:
    session.send(UntaggedResponse(Status.BYE, "Logging out"))
    session.ok(command.tag)
    session.state = State.LOGOUT
    raise SessionEnd


async def identify(session: ImapSession, command: c.IdCommand) -> None:
    """RFC 2971: say who we are; what the client says is only logged."""
    if command.params:
        fields = {k.decode("ascii", "replace"): v for k, v in command.params}
        log.debug("imap %s: client id %s", session.conn.id, fields)
    session.send(id_response([(b"name", b"LightMail"), (b"version", __version__.encode())]))
    session.ok(command.tag)


async def namespace(session: ImapSession, command: c.NamespaceCommand) -> None:
    """RFC 2342: one personal namespace, no others."""
    session.send(namespace_response([(b"", DELIMITER)], None, None))
    session.ok(command.tag)


async def enable(session: ImapSession, command: c.EnableCommand) -> None:
    """RFC 5161: none of our extensions needs enabling, so none is enabled."""
    session.send(enabled_response([]))
    session.ok(command.tag)
