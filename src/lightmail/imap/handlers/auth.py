"""The not-authenticated state (RFC 3501 section 6.2): STARTTLS, LOGIN, and
AUTHENTICATE with SASL-IR (RFC 4959); the SASL rules are :mod:`lightmail.auth.sasl`."""

from __future__ import annotations

import logging

from lightmail.auth.sasl import (
    InvalidBase64,
    InvalidCredentials,
    SaslExchange,
    UnsupportedMechanism,
)
from lightmail.errors import (
    AuthenticationFailed,
)
from lightmail.imap.session import (
    ImapSession,
)
from lightmail.imap.state import State
from lightmail.imap.wire import commands as c
from lightmail.imap.wire.receiver import (
    SaslResponse,
)
from lightmail.imap.wire.responses import (
    Code,
    ContinuationResponse,
)

log = logging.getLogger(__name__)


async def starttls(session: ImapSession, command: c.StartTlsCommand) -> None:
    if session.ctx.tls is None or session.conn.is_tls:
        session.bad(command.tag, "TLS is not available here")
        return
    session.ok(command.tag, "Begin TLS negotiation now")
    await session.driver.start_tls(session.ctx.tls)


async def login(session: ImapSession, command: c.LoginCommand) -> None:
    if not session.login.plaintext_ok:
        session.no(
            command.tag,
            "Plaintext login is disabled without TLS: use STARTTLS",
            Code.PRIVACYREQUIRED,
        )
        return
    await _authenticated(
        session,
        command.tag,
        command.userid.decode("utf-8", "replace"),
        command.password.decode("utf-8", "replace"),
    )


async def authenticate(session: ImapSession, command: c.AuthenticateCommand) -> None:
    """AUTHENTICATE PLAIN (RFC 4616) and LOGIN, with SASL-IR (RFC 4959)."""
    tag = command.tag
    if not session.login.plaintext_ok:
        session.no(tag, "Authentication requires TLS: use STARTTLS", Code.PRIVACYREQUIRED)
        return
    try:
        exchange = SaslExchange(command.mechanism)
    except UnsupportedMechanism:
        session.no(tag, "Unsupported authentication mechanism", Code.CANNOT)
        return
    # RFC 4959: the initial response is base64 like any other (``=`` is empty).
    response = command.initial_response
    try:
        while True:
            if response is None:
                response = await _sasl_challenge(session, tag, exchange.challenge())
                if response is None:
                    return
            credentials = exchange.respond(response)
            if credentials is not None:
                break
            response = None
    except InvalidBase64:
        session.bad(tag, "Invalid base64 in SASL response")
        return
    except InvalidCredentials:
        session.no(tag, f"Invalid {exchange.mechanism} credentials", Code.AUTHENTICATIONFAILED)
        session.login.count_failure()
        return
    await _authenticated(session, tag, credentials.username, credentials.password)


async def _sasl_challenge(session: ImapSession, tag: bytes, challenge: str) -> bytes | None:
    """Send a ``+`` challenge and return the answer as sent (None: answered already)."""
    session.send(ContinuationResponse(challenge))
    session.receiver.expect_sasl_response()
    event = await session.driver.next_event()
    if not isinstance(event, SaslResponse):
        await session.driver.dispatch(event)
        return None
    if event.cancelled:
        session.bad(tag, "Authentication cancelled")
        return None
    return event.data


async def _authenticated(session: ImapSession, tag: bytes, address: str, password: str) -> None:
    try:
        user = await session.ctx.accounts.authenticate(address, password, session.conn.peer_ip)
    except AuthenticationFailed:
        log.info(
            "imap %s: failed login for %r from %s", session.conn.id, address, session.conn.peer
        )
        session.no(tag, "Authentication failed", Code.AUTHENTICATIONFAILED)
        session.login.count_failure()
        return
    if not session.ctx.per_user.try_acquire(user.id):
        session.no(tag, "Too many connections for this user", Code.LIMIT)
        return
    session.user = user
    session.state = State.AUTHENTICATED
    log.info("imap %s: %s logged in from %s", session.conn.id, user.address, session.conn.peer)
    session.ok(tag, "Logged in", session.capability_code())
