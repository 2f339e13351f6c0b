"""APPEND (RFC 3501 section 6.3.11), MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469).

Each message literal, or each CATENATE list (:mod:`.catenate`), streams into
the blob store (through the virus scan when ``[antivirus] scan_append`` is on)
as it arrives; one with 8-bit octets in its header is refused unless the
session enabled UTF8=ACCEPT (RFC 9755 section 4; the header as far as the MIME
scanner keeps it, ``max_header_bytes``). Once the command has ended, one
transaction makes all its messages visible, with consecutive UIDs. A command
refused or broken off at any message stores nothing: the blobs of the messages
already received are deleted on the way out.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

from lightmail import errors
from lightmail.antivirus.policy import ingest_scanned
from lightmail.imap.handlers.catenate import Broken, Catenation, Refused, drain
from lightmail.imap.session import ImapSession, flag_names, reply_for_error
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import responses as r
from lightmail.imap.wire.receiver import AppendEnd, LiteralChunk
from lightmail.mailstore.store import Ingest
from lightmail.metrics import APPENDS
from lightmail.net.driver import SessionEnd
from lightmail.net.stream import StreamError

log = logging.getLogger(__name__)

MAX_MESSAGES = 1000
"""Messages in one MULTIAPPEND: each holds a blob until the command ends."""


async def append(session: ImapSession, command: c.AppendCommand) -> r.Completion | None:
    """APPEND with one message or several (RFC 3502): all are appended, or none.
    None: a literal broke off, and the driver answered what broke it off."""
    async with AsyncExitStack() as held:  # the blobs of messages received but not committed
        messages: list[tuple[Ingest, c.AppendCommand | c.AppendMessage]] = []
        head: c.AppendCommand | c.AppendMessage = command
        name = ""
        while True:
            try:
                if head is command:
                    name = session.decode_mailbox(command.mailbox)
                refusal = await _refusal(session, head, name, messages)
            except errors.LightMailError as error:
                if isinstance(error, errors.MailboxNotFound):
                    error = errors.MailboxNotFound(error.name, try_create=True)
                refusal = reply_for_error(error)
                APPENDS.labels(_append_outcome(error)).inc()
            except Exception:
                # The literal is still owed: refuse it, or the receiver stays stuck on it.
                log.exception("imap %s: APPEND failed before a literal", session.conn.id)
                refusal = r.no("Internal error", r.Code.SERVERBUG)
                APPENDS.labels("error").inc()
            if refusal is not None:
                if not head.catenate:
                    session.receiver.reject_literal()
                elif not await drain(session, await session.driver.next_event()):
                    return None
                return refusal
            received = await _receive(session, head, held)
            if not isinstance(received, _Stored):
                return received
            messages.append((received.ingest, head))
            if isinstance(received.end, AppendEnd):
                break
            head = received.end
        taken = [
            ingest.take(flags=flag_names(head.flags), internaldate=head.date_time)
            for ingest, head in messages
        ]
        try:
            results = await session.store.append_stored(session.user_id, name, taken)
        except errors.LightMailError as error:
            APPENDS.labels(_append_outcome(error)).inc()
            return reply_for_error(error)
        except Exception:
            log.exception("imap %s: APPEND failed", session.conn.id)
            APPENDS.labels("error").inc()
            return r.no("Internal error", r.Code.SERVERBUG)
    APPENDS.labels("appended").inc()
    await session.announce(allow_expunge=True)
    uids = [result.uid for result in results]
    return r.ok("Append completed", r.ResponseCode.appenduid(results[0].uidvalidity, uids))


async def _refusal(
    session: ImapSession,
    head: c.AppendCommand | c.AppendMessage,
    name: str,
    messages: list[tuple[Ingest, c.AppendCommand | c.AppendMessage]],
) -> r.Completion | None:
    """The NO for a message before its literal is sent, or None to take it; raises
    the mailstore's errors. A refusal ends the whole command."""
    if head.size > session.settings.max_append_size:
        raise errors.MessageTooLarge(session.settings.max_append_size)
    if head.size == 0 and not head.catenate:  # RFC 3502 6.3.11: how a client cancels
        APPENDS.labels("refused").inc()
        return r.no("Empty message: APPEND cancelled")
    if len(messages) >= MAX_MESSAGES:
        APPENDS.labels("refused").inc()
        return r.no(f"At most {MAX_MESSAGES} messages in one APPEND", r.Code.LIMIT)
    session.store.check_flags(flag_names(head.flags))
    if not messages:
        await session.store.get_mailbox(session.user_id, name)
    else:
        # The commit checks the quota again; this stops a client over its quota
        # from piling up blobs that can only be refused.
        total = sum(ingest.size for ingest, _ in messages)
        await session.store.check_quota(session.user_id, total + head.size)
    return None


@dataclass(frozen=True, slots=True)
class _Stored:
    """A message received whole: its blob, and what came after it."""

    ingest: Ingest
    end: AppendEnd | c.AppendMessage


async def _receive(
    session: ImapSession, head: c.AppendCommand | c.AppendMessage, held: AsyncExitStack
) -> _Stored | r.Completion | None:
    """Take one message literal (or CATENATE list) into a blob held by ``held``; its
    ``end`` says whether another message follows. Otherwise the reply to the command
    (the rest of it is drained), or None when the literal broke off and the driver
    answered."""
    literal: _Literal | Catenation
    if head.catenate:
        literal = Catenation(session)
    else:
        if head.synchronizing:
            session.send(r.ContinuationResponse("Ready for literal"))
        session.receiver.accept_literal()
        await session.driver.flush()
        literal = _Literal(session)
    source = literal.chunks()
    what = f"imap {session.conn.id} APPEND by {session.user.address if session.user else '?'}"
    try:
        ingest = await held.enter_async_context(
            ingest_scanned(session.store, session.ctx.scanner, session.ctx.antivirus, source, what)
        )
    except (_LiteralAborted, Broken):
        APPENDS.labels("aborted").inc()
        return None  # the receiver's event (BAD, or the end of the connection) was handled
    except Refused as refused:  # a CATENATE URL or size; nothing of the rest accepted yet
        ended = await drain(session, refused.at or await session.driver.next_event())
        APPENDS.labels("refused" if ended else "aborted").inc()
        return refused.reply if ended else None
    except errors.MessageRejected:
        reply = r.no("Message refused by content policy")
        return await _refuse_rest(literal, source, reply, "refused")
    except errors.LightMailError as error:
        return await _refuse_rest(literal, source, reply_for_error(error), _append_outcome(error))
    except (SessionEnd, StreamError):
        APPENDS.labels("aborted").inc()
        raise
    except Exception:
        log.exception("imap %s: APPEND failed", session.conn.id)
        reply = r.no("Internal error", r.Code.SERVERBUG)
        return await _refuse_rest(literal, source, reply, "error")
    if literal.end is None:
        # The receiver reported a bad end of the command after the literal.
        APPENDS.labels("aborted").inc()
        return None
    if head.catenate and ingest.size == 0:
        return await _refuse_rest(literal, source, r.no("Empty message"), "refused")
    if not session.utf8 and not ingest.stored.parsed.header.isascii():
        # RFC 9755 section 4: 8-bit header fields only from a client that enabled UTF-8.
        reply = r.no("8-bit header fields need ENABLE UTF8=ACCEPT")
        return await _refuse_rest(literal, source, reply, "refused")
    return _Stored(ingest, literal.end)


class _Literal:
    """One APPEND message as the receiver hands it over, chunk by chunk."""

    def __init__(self, session: ImapSession) -> None:
        self.session = session
        # What ended the message as it should: the end of the command, or another message.
        self.end: AppendEnd | c.AppendMessage | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            event = await self.session.driver.next_event()
            if isinstance(event, LiteralChunk):
                yield event.data
            elif isinstance(event, AppendEnd | c.AppendMessage):
                self.end = event
                return
            else:
                # The literal broke off (a BAD end, NUL in the message, the peer left).
                await self.session.driver.dispatch(event)
                raise _LiteralAborted


async def _refuse_rest(
    literal: _Literal | Catenation,
    source: AsyncIterator[bytes],
    reply: r.Completion,
    outcome: str,
) -> r.Completion | None:
    """Drop what is left of the message and refuse the rest of the command; ``reply``
    if the command ended normally, else None (the driver answered what broke it off).
    A CATENATE list's URLs are not read to drop them."""
    session = literal.session
    if isinstance(literal, Catenation):
        ended = await drain(session, literal.end or await session.driver.next_event())
    else:
        try:
            async for _ in source:
                pass
        except _LiteralAborted:
            ended = False
        else:
            ended = literal.end is not None and await drain(session, literal.end)
    APPENDS.labels(outcome if ended else "aborted").inc()
    return reply if ended else None


def _append_outcome(error: errors.LightMailError) -> str:
    """The ``lightmail_appends_total`` outcome of an APPEND answered NO for ``error``."""
    return "deferred" if isinstance(error, errors.TemporaryFailure) else "refused"


class _LiteralAborted(Exception):
    """APPEND's literal did not complete; the receiver's event was already answered."""
