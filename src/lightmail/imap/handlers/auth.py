"""The not-authenticated state (RFC 3501 section 6.2): STARTTLS, LOGIN, and
AUTHENTICATE with SASL-IR (RFC 4959); the SASL rules are :mod:`lightmail.auth.sasl`."""

from __future__ import annotations

import logging

from lightmail.auth import sasl
from lightmail.errors import AuthenticationFailed
from lightmail.imap.session import ImapSession
from lightmail.imap.state import State
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import responses as r
from lightmail.imap.wire.receiver import SaslResponse

log = logging.getLogger(__name__)


async def starttls(session: ImapSession, command: c.StartTlsCommand) -> r.Completion | None:
    """STARTTLS (RFC 3501 6.2.1): the OK goes out in plaintext, then the handshake."""
    if session.ctx.tls is None or session.conn.is_tls:
        return r.bad("TLS is not available here")
    session.complete(command, r.ok("Begin TLS negotiation now"))
    await session.driver.start_tls(session.ctx.tls)
    return None


async def login(session: ImapSession, command: c.LoginCommand) -> r.Completion | None:
    if not session.login.plaintext_ok:
        return r.no("Plaintext login is disabled without TLS: use STARTTLS", r.Code.PRIVACYREQUIRED)
    return await _authenticated(
        session,
        command,
        command.userid.decode("utf-8", "replace"),
        command.password.decode("utf-8", "replace"),
    )


async def authenticate(session: ImapSession, command: c.AuthenticateCommand) -> r.Completion | None:
    """AUTHENTICATE PLAIN (RFC 4616) and LOGIN, with SASL-IR (RFC 4959)."""
    if not session.login.plaintext_ok:
        return r.no("Authentication requires TLS: use STARTTLS", r.Code.PRIVACYREQUIRED)
    try:
        exchange = sasl.SaslExchange(command.mechanism)
    except sasl.UnsupportedMechanism:
        return r.no("Unsupported authentication mechanism", r.Code.CANNOT)
    # RFC 4959: the initial response is base64 like any other (``=`` is empty).
    response = command.initial_response
    try:
        while True:
            if response is None:
                answer = await _sasl_challenge(session, exchange.challenge())
                if answer is None:
                    return None
                if answer.cancelled:
                    return r.bad("Authentication cancelled")
                response = answer.data
            credentials = exchange.respond(response)
            if credentials is not None:
                break
            response = None
    except sasl.InvalidBase64:
        return r.bad("Invalid base64 in SASL response")
    except sasl.InvalidCredentials:
        failed = r.no(f"Invalid {exchange.mechanism} credentials", r.Code.AUTHENTICATIONFAILED)
        _failed(session, command, failed)
        return None
    return await _authenticated(session, command, credentials.username, credentials.password)


async def _sasl_challenge(session: ImapSession, challenge: str) -> SaslResponse | None:
    """Send a ``+`` challenge and return the client's answer (None: the client sent
    something else, which the driver has answered)."""
    session.send(r.ContinuationResponse(challenge))
    session.receiver.expect_sasl_response()
    event = await session.driver.next_event()
    if not isinstance(event, SaslResponse):
        await session.driver.dispatch(event)
        return None
    return event


async def _authenticated(
    session: ImapSession,
    command: c.LoginCommand | c.AuthenticateCommand,
    address: str,
    password: str,
) -> r.Completion | None:
    try:
        user = await session.ctx.accounts.authenticate(address, password, session.conn.peer_ip)
    except AuthenticationFailed:
        log.info(
            "imap %s: failed login for %r from %s", session.conn.id, address, session.conn.peer
        )
        _failed(session, command, r.no("Authentication failed", r.Code.AUTHENTICATIONFAILED))
        return None
    if not await session.ctx.per_user.admit(user.id):
        return r.no("Too many connections for this user", r.Code.LIMIT)
    session.user = user
    session.state = State.AUTHENTICATED
    log.info("imap %s: %s logged in from %s", session.conn.id, user.address, session.conn.peer)
    return r.ok("Logged in", session.capability_code())


def _failed(
    session: ImapSession, command: c.LoginCommand | c.AuthenticateCommand, refusal: r.Completion
) -> None:
    """Send a failed login's NO, then count it: at the limit the session ends
    after the NO (the BYE follows it)."""
    session.complete(command, refusal)
    session.login.count_failure()
