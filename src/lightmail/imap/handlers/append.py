"""APPEND (RFC 3501 section 6.3.11): the literal streams into the blob store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from lightmail import errors
from lightmail.antivirus.policy import ingest_scanned
from lightmail.imap.session import ImapSession, decode_mailbox, flag_names, reply_for_error
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import responses as r
from lightmail.imap.wire.receiver import AppendEnd, LiteralChunk
from lightmail.metrics import APPENDS
from lightmail.net.driver import SessionEnd
from lightmail.net.stream import StreamError

log = logging.getLogger(__name__)


async def append(session: ImapSession, command: c.AppendCommand) -> r.Completion | None:
    """APPEND (RFC 3501 section 6.3.11): the literal streams into the blob store.
    None: the literal broke off, and the driver answered what broke it off."""
    try:
        if command.size > session.settings.max_append_size:
            raise errors.MessageTooLarge(session.settings.max_append_size)
        name = decode_mailbox(command.mailbox)
        session.store.check_flags(flag_names(command.flags))
        await session.store.get_mailbox(session.user_id, name)
    except errors.LightMailError as error:
        if isinstance(error, errors.MailboxNotFound):
            error = errors.MailboxNotFound(error.name, try_create=True)
        session.receiver.reject_literal()
        APPENDS.labels(_append_outcome(error)).inc()
        return reply_for_error(error)
    except Exception:
        # The literal is still owed: refuse it, or the receiver stays stuck on it.
        log.exception("imap %s: APPEND failed before its literal", session.conn.id)
        session.receiver.reject_literal()
        APPENDS.labels("error").inc()
        return r.no("Internal error", r.Code.SERVERBUG)
    if command.synchronizing:
        session.send(r.ContinuationResponse("Ready for literal"))
    session.receiver.accept_literal()
    await session.driver.flush()
    literal = _Literal(session)
    source = literal.chunks()
    what = f"imap {session.conn.id} APPEND by {session.user.address if session.user else '?'}"
    try:
        try:
            async with ingest_scanned(
                session.store, session.ctx.scanner, session.ctx.antivirus, source, what
            ) as ingest:
                result = await ingest.append(
                    session.user_id,
                    name,
                    flags=flag_names(command.flags),
                    internaldate=command.date_time,
                )
        except errors.MessageRejected:
            APPENDS.labels("refused").inc()
            return r.no("Message refused by content policy")
    except _LiteralAborted:
        APPENDS.labels("aborted").inc()
        return None  # the receiver's event (BAD, or the end of the connection) was handled
    except errors.LightMailError as error:
        if await _drain_literal(literal, source):
            APPENDS.labels(_append_outcome(error)).inc()
            return reply_for_error(error)
        APPENDS.labels("aborted").inc()
        return None
    except (SessionEnd, StreamError):
        APPENDS.labels("aborted").inc()
        raise
    except Exception:
        log.exception("imap %s: APPEND failed", session.conn.id)
        if await _drain_literal(literal, source):
            APPENDS.labels("error").inc()
            return r.no("Internal error", r.Code.SERVERBUG)
        APPENDS.labels("aborted").inc()
        return None
    if not literal.ended:
        # The receiver reported a bad end of the command after the literal.
        APPENDS.labels("aborted").inc()
        return None
    APPENDS.labels("appended").inc()
    await session.announce(allow_expunge=True)
    return r.ok("Append completed", r.ResponseCode.appenduid(result.uidvalidity, [result.uid]))


class _Literal:
    """APPEND's message as the receiver hands it over, chunk by chunk."""

    def __init__(self, session: ImapSession) -> None:
        self.session = session
        self.ended = False  # AppendEnd arrived: the command ended as it should

    async def chunks(self) -> AsyncIterator[bytes]:
        self.ended = False
        while True:
            event = await self.session.driver.next_event()
            if isinstance(event, LiteralChunk):
                yield event.data
            elif isinstance(event, AppendEnd):
                self.ended = True
                return
            else:
                # The literal broke off (a BAD end, NUL in the message, the peer left).
                await self.session.driver.dispatch(event)
                raise _LiteralAborted


async def _drain_literal(literal: _Literal, source: AsyncIterator[bytes]) -> bool:
    """Read and drop what is left of the literal; True when it ended normally."""
    try:
        async for _ in source:
            pass
    except _LiteralAborted:
        return False
    return literal.ended


def _append_outcome(error: errors.LightMailError) -> str:
    """The ``lightmail_appends_total`` outcome of an APPEND answered NO for ``error``."""
    return "deferred" if isinstance(error, errors.TemporaryFailure) else "refused"


class _LiteralAborted(Exception):
    """APPEND's literal did not complete; the receiver's event was already answered."""
