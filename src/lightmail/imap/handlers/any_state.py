"""Commands valid in any state (RFC 3501 section 6.1), the small extensions
that answer with one untagged line: ID (RFC 2971), NAMESPACE (RFC 2342), ENABLE
(RFC 5161), and COMPRESS (RFC 4978), which changes the connection itself."""

from __future__ import annotations

import logging
from typing import NoReturn

from lightmail import __version__
from lightmail.imap.session import DELIMITER, ImapSession
from lightmail.imap.state import State
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import responses as r
from lightmail.imap.wire.parser import Utf8
from lightmail.net.driver import SessionEnd

log = logging.getLogger(__name__)


async def capability(session: ImapSession, command: c.CapabilityCommand) -> r.Completion:
    session.send(r.capability_response(session.capabilities()))
    return r.ok()


async def noop(session: ImapSession, command: c.NoopCommand | c.CheckCommand) -> r.Completion:
    await session.announce(allow_expunge=True, force=True)
    return r.ok()


async def logout(session: ImapSession, command: c.LogoutCommand) -> NoReturn:
    """LOGOUT (RFC 3501 6.1.3): BYE, then the OK, then the session ends."""
    session.send(r.UntaggedResponse(r.Status.BYE, "Logging out"))
    session.complete(command, r.ok())
    session.state = State.LOGOUT
    raise SessionEnd


async def identify(session: ImapSession, command: c.IdCommand) -> r.Completion:
    """RFC 2971: say who we are; what the client says is only logged."""
    if command.params:
        fields = {k.decode("ascii", "replace"): v for k, v in command.params}
        log.debug("imap %s: client id %s", session.conn.id, fields)
    session.send(r.id_response([(b"name", b"LightMail"), (b"version", __version__.encode())]))
    return r.ok()


async def namespace(session: ImapSession, command: c.NamespaceCommand) -> r.Completion:
    """RFC 2342: one personal namespace, no others."""
    session.send(r.namespace_response([(b"", DELIMITER)], None, None))
    return r.ok()


async def enable(session: ImapSession, command: c.EnableCommand) -> r.Completion:
    """RFC 5161: ENABLED lists what this command enabled, of the extensions here that
    need enabling: CONDSTORE and QRESYNC (RFC 7162 sections 3.1 and 3.2.3; QRESYNC
    enables CONDSTORE too), and in the Authenticated state UTF8=ACCEPT (RFC 9755
    section 3) and IMAP4rev2 (RFC 9051 Appendix A). Others are ignored."""
    asked = set(command.capabilities)
    had_condstore = session.condstore
    enabled = []
    if "QRESYNC" in asked and session.enable_qresync():
        enabled.append("QRESYNC")
    if "CONDSTORE" in asked and (session.enable_condstore() or not had_condstore):
        enabled.append("CONDSTORE")
    if "UTF8=ACCEPT" in asked and session.enable_utf8(Utf8.ACCEPT):
        enabled.append("UTF8=ACCEPT")
    if "IMAP4REV2" in asked and session.enable_utf8(Utf8.REV2):
        enabled.append("IMAP4rev2")
    session.send(r.enabled_response(enabled))
    return r.ok()


async def compress(session: ImapSession, command: c.CompressCommand) -> r.Completion | None:
    """COMPRESS DEFLATE (RFC 4978 section 3): the OK goes out as it is, then both
    directions are compressed. Once is all: a second COMPRESS is BAD."""
    if session.conn.is_compressed:
        return r.bad("DEFLATE is active already")
    session.complete(command, r.ok("DEFLATE active"))
    await session.driver.start_compression()
    return None
