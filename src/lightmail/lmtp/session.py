"""One LMTP connection (RFC 2033): an MTA hands over messages for local users.

The wire format is :mod:`lightmail.lmtp.wire` (sans-I/O). Per-connection
state (LHLO seen) lives on the session; per-transaction state (sender,
recipients) in an :class:`Envelope`, reset by RSET, by a completed DATA and
by a new transaction. After DATA the session answers once per accepted
recipient, in RCPT order, and only after the message is durable and its
metadata committed (invariant 1 of docs/architecture.md). Any failure that a
retry could cure is a 4xx reply (invariant 4): the MTA keeps the message and
tries again.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from lightmail.accounts.service import Accounts
from lightmail.antivirus.clamd import ClamdClient
from lightmail.antivirus.policy import Action, MessageScan, tag_header
from lightmail.calendars.imip import Invitations
from lightmail.config import AntivirusSettings, LmtpSettings
from lightmail.errors import (
    LightMailError,
    MessageTooLarge,
    QuotaExceeded,
    RecipientDisabled,
    TemporaryFailure,
    UnknownRecipient,
)
from lightmail.lmtp.wire import (
    BadCommand,
    DataChunk,
    DataCommand,
    DataEnd,
    Event,
    HeloCommand,
    LhloCommand,
    LmtpReceiver,
    MailCommand,
    NoopCommand,
    QuitCommand,
    RcptCommand,
    Reply,
    RsetCommand,
    VrfyCommand,
)
from lightmail.mailstore.store import DeliveryOutcome, MailStore, Recipient
from lightmail.mailstore.types import StoredMessage
from lightmail.metrics import LMTP_MESSAGE_BYTES, LMTP_RECIPIENTS
from lightmail.net.driver import Allowance, Driver, Goodbye, SessionEnd
from lightmail.net.stream import Connection, StreamError

log = logging.getLogger(__name__)

IMIP_TIMEOUT = 30.0  # seconds an invitation may take after its delivery was answered


def _reply(code: int, enhanced: str | None, *lines: str) -> Reply:
    return Reply(code, enhanced, lines)


# The replies of RFC 2033 / RFC 5321 with RFC 3463 enhanced codes, in one place.
OK = _reply(250, "2.0.0", "OK")
SENDER_OK = _reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = _reply(250, "2.1.5", "Recipient OK")
DELIVERED = _reply(250, "2.1.5", "Delivered")
START_DATA = _reply(354, None, "Start mail input; end with <CRLF>.<CRLF>")
BYE = _reply(221, "2.0.0", "Bye")
CANNOT_VERIFY = _reply(252, "2.5.0", "Cannot verify the user, but will accept the message")
NOT_LMTP = _reply(500, "5.5.1", "This is LMTP: use LHLO (RFC 2033 section 4.1)")
NEED_LHLO = _reply(503, "5.5.1", "Send LHLO first")
NESTED_MAIL = _reply(503, "5.5.1", "Sender already given")
NEED_MAIL = _reply(503, "5.5.1", "Send MAIL first")
NEED_RCPT = _reply(503, "5.5.1", "No valid recipients")
UNKNOWN_USER = _reply(550, "5.1.1", "No such user here")
DISABLED_USER = _reply(550, "5.2.1", "Mailbox disabled")
OVER_QUOTA = _reply(552, "5.2.2", "Mailbox full")
TOO_BIG = _reply(552, "5.3.4", "Message too big")
TOO_MANY_RECIPIENTS = _reply(452, "4.5.3", "Too many recipients")
TEMPORARY = _reply(451, "4.3.0", "Temporary failure, try again later")
REFUSED_CONTENT = _reply(554, "5.7.1", "Message refused by content policy")
KEPT_ASIDE = _reply(250, "2.1.5", "Accepted")
TIMEOUT = _reply(421, "4.4.2", "Timeout, closing connection")
SHUTTING_DOWN = _reply(421, "4.3.2", "Service shutting down, try again later")
TOO_MANY_BAD = _reply(421, "4.7.0", "Too many invalid commands, closing connection")


def reply_for_error(error: Exception) -> Reply:
    """The one mapping from mailstore and accounts errors to LMTP replies.

    Anything unexpected is temporary: a bug must never bounce mail.
    """
    match error:
        case UnknownRecipient():
            return UNKNOWN_USER
        case RecipientDisabled():
            return DISABLED_USER
        case QuotaExceeded():
            return OVER_QUOTA
        case MessageTooLarge():
            return TOO_BIG
        case _:
            return TEMPORARY


# The ``command`` label of the metrics; anything else (BadCommand) is "other".
_VERBS: dict[type[Any], str] = {
    LhloCommand: "lhlo",
    HeloCommand: "helo",
    MailCommand: "mail",
    RcptCommand: "rcpt",
    DataCommand: "data",
    RsetCommand: "rset",
    NoopCommand: "noop",
    VrfyCommand: "vrfy",
    QuitCommand: "quit",
}


@dataclass
class _Accepted:
    """One accepted RCPT: its address and the local users it reaches."""

    address: str
    recipients: tuple[Recipient, ...]


@dataclass
class Envelope:
    """The transaction in progress (RFC 5321 section 3.3)."""

    sender: str
    size: int | None
    accepted: list[_Accepted] = field(default_factory=list)
    refused: int = 0


@dataclass(frozen=True, slots=True)
class LmtpContext:
    settings: LmtpSettings
    store: MailStore
    accounts: Accounts
    hostname: str
    antivirus: AntivirusSettings
    scanner: ClamdClient | None  # None: [antivirus] mode = off
    invitations: Invitations | None = None  # None: [dav] imip = off


class LmtpSession:
    def __init__(self, context: LmtpContext, connection: Connection) -> None:
        self.ctx = context
        self.settings = context.settings
        self.conn = connection
        self.receiver = LmtpReceiver(max_message_size=self.settings.max_message_size)
        self.driver = Driver("lmtp", connection, self.receiver, self)
        self.client: str | None = None  # the LHLO domain
        self.envelope: Envelope | None = None
        self._data_ended = False
        # A delivered message and its recipients, for iMIP once the replies are out.
        self._delivered: tuple[StoredMessage, list[Recipient]] | None = None
        self._bad = Allowance(self.settings.max_bad_commands, TOO_MANY_BAD.to_bytes())
        # When the command or DATA being read must be complete (the loop's clock):
        # [lmtp] timeout for each command, from when the server is ready for it;
        # [lmtp] data_timeout for the whole of DATA. A peer that trickles its
        # bytes gets 421 all the same.
        self._deadline = self._from_now(self.settings.timeout)

    # -- what the driver asks --------------------------------------------------------

    async def run(self) -> None:
        await self.driver.run(
            _reply(220, None, f"{self.ctx.hostname} LightMail LMTP ready").to_bytes()
        )

    def read_limits(self) -> tuple[float, float | None]:
        return self.settings.timeout, self._deadline

    def goodbye(self, reason: Goodbye) -> bytes:
        # Silent, or the deadline passed: the same 421 (RFC 5321 section 4.5.3.2).
        return (SHUTTING_DOWN if reason is Goodbye.SHUTDOWN else TIMEOUT).to_bytes()

    def verb(self, event: Event) -> str:
        return _VERBS.get(type(event), "other")

    async def handle(self, event: Event) -> None:
        try:
            await self._handle(event)
        finally:
            # The next command has this long from when the server is ready for it.
            self._deadline = self._from_now(self.settings.timeout)

    async def _handle(self, event: Event) -> None:
        """Answer one event; QUIT ends the session."""
        match event:
            case BadCommand():
                self._send(event.to_reply())
                self._bad.spend_last()
            case LhloCommand():
                self.client = event.domain
                self.envelope = None
                self._send(
                    _reply(
                        250,
                        None,
                        self.ctx.hostname,
                        "PIPELINING",
                        "ENHANCEDSTATUSCODES",
                        "8BITMIME",
                        f"SIZE {self.settings.max_message_size}",
                    )
                )
            case HeloCommand():
                self._send(NOT_LMTP)
            case MailCommand():
                self._mail(event)
            case RcptCommand():
                await self._rcpt(event)
            case DataCommand():
                await self._data()
            case RsetCommand():
                self.envelope = None
                self._send(OK)
            case NoopCommand():
                self._send(OK)
            case VrfyCommand():
                self._send(CANNOT_VERIFY)
            case QuitCommand():
                raise SessionEnd(BYE.to_bytes())
            case _:
                # DataChunk/DataEnd come only after start_data, inside _data.
                raise AssertionError(f"unexpected event {event!r}")

    # -- the transaction -------------------------------------------------------------

    def _mail(self, command: MailCommand) -> None:
        if self.client is None:
            self._send(NEED_LHLO)
        elif self.envelope is not None:
            self._send(NESTED_MAIL)
        elif command.size is not None and command.size > self.settings.max_message_size:
            self._send(_reply(552, "5.3.4", "Message size exceeds the limit"))
        else:
            self.envelope = Envelope(command.reverse_path, command.size)
            self._send(SENDER_OK)

    async def _rcpt(self, command: RcptCommand) -> None:
        envelope = self.envelope
        if envelope is None:
            self._send(NEED_MAIL)
            return
        if len(envelope.accepted) >= self.settings.max_recipients:
            self._send(TOO_MANY_RECIPIENTS)
            return
        try:
            resolved = await self.ctx.accounts.resolve_recipient(command.forward_path)
            recipients = resolved.recipients
            if not self.settings.detail_mailbox:
                recipients = tuple(Recipient(r.user_id, r.address) for r in recipients)
            size = envelope.size or 0
            fits = []
            for recipient in recipients:
                try:
                    if recipient.user_id in resolved.with_quota:
                        await self.ctx.store.check_quota(recipient.user_id, size)
                    fits.append(recipient)
                except QuotaExceeded:
                    continue
            if not fits:
                raise QuotaExceeded(command.forward_path, 0, 0, size)
        except LightMailError as error:
            envelope.refused += 1
            log.info("lmtp %s: RCPT %s refused: %s", self.conn.id, command.forward_path, error)
            self._send(reply_for_error(error))
            return
        envelope.accepted.append(_Accepted(command.forward_path, tuple(fits)))
        self._send(RECIPIENT_OK)

    async def _data(self) -> None:
        envelope = self.envelope
        if envelope is None:
            self._send(NEED_MAIL)
            return
        if not envelope.accepted:
            self._send(NEED_RCPT)
            return
        self._send(START_DATA)
        await self.driver.flush()
        self.receiver.start_data()
        self.envelope = None
        self._deadline = self._from_now(self.settings.data_timeout)
        replies = await self._deliver(envelope)
        for reply in replies:
            outcome = {2: "delivered", 4: "deferred"}.get(reply.code // 100, "refused")
            LMTP_RECIPIENTS.labels(outcome).inc()
            self._send(reply)
        if self._delivered is not None:
            stored, recipients = self._delivered
            self._delivered = None
            await self.driver.flush()  # the MTA has its answer before calendars are touched
            await self._invitation(stored, recipients)

    async def _invitation(self, stored: StoredMessage, recipients: list[Recipient]) -> None:
        """Apply a delivered message's invitation (iMIP) to the recipients' calendars.
        The message is delivered already: whatever fails here is logged, no more."""
        if self.ctx.invitations is None:
            return
        try:
            async with asyncio.timeout(IMIP_TIMEOUT):
                await self.ctx.invitations.receive(stored, recipients)
        except (TemporaryFailure, TimeoutError) as error:
            log.warning(
                "lmtp %s: the message's invitation was not applied: %r", self.conn.id, error
            )
        except Exception:
            log.exception("lmtp %s: the message's invitation could not be applied", self.conn.id)

    async def _deliver(self, envelope: Envelope) -> list[Reply]:
        """Store the message for every accepted recipient; one reply per RCPT.

        The message streams into the blob store (and to clamd, when scanning)
        as it arrives; it becomes visible only once the verdict allows it.
        """
        # One copy per (user, mailbox), however many RCPTs reach it.
        targets = list(dict.fromkeys(r for a in envelope.accepted for r in a.recipients))
        count = len(envelope.accepted)
        source = self._message(envelope)
        what = f"lmtp {self.conn.id} from <{envelope.sender}>"
        async with AsyncExitStack() as held:  # the message is deleted after, unless committed
            async with MessageScan(self.ctx.scanner, self.ctx.antivirus, what) as scan:
                try:
                    ingest = await held.enter_async_context(
                        self.ctx.store.ingest(scan.wrap(source))
                    )
                except _DataAborted:
                    raise SessionEnd from None
                except MessageTooLarge as error:
                    await self._drain(source)
                    return [reply_for_error(error)] * count
                except TemporaryFailure as error:
                    log.warning("lmtp %s: delivery failed for now: %s", self.conn.id, error)
                    await self._drain(source)
                    return [TEMPORARY] * count
                except (SessionEnd, StreamError):
                    raise
                except Exception:
                    log.exception("lmtp %s: delivery failed", self.conn.id)
                    await self._drain(source)
                    return [TEMPORARY] * count
                decision = await scan.decide()
            try:
                match decision.action:
                    case Action.REFUSE | Action.RETRY:
                        return [
                            REFUSED_CONTENT if decision.action is Action.REFUSE else TEMPORARY
                        ] * count
                    case Action.QUARANTINE:
                        item = await ingest.quarantine(
                            envelope.sender, targets, decision.virus or "unknown"
                        )
                        log.warning("lmtp %s: quarantined as %d", self.conn.id, item)
                        return [KEPT_ASIDE] * count  # a 250: the MTA must not retry
                    case Action.TAG:
                        await ingest.prepend(tag_header(decision.virus or "unknown"))
                outcomes = await ingest.deliver(targets)
                if any(outcome.result is not None for outcome in outcomes):
                    LMTP_MESSAGE_BYTES.observe(ingest.size)
                    reached = [o.recipient for o in outcomes if o.result is not None]
                    self._delivered = (ingest.stored, reached)
            except TemporaryFailure as error:
                log.warning("lmtp %s: delivery failed for now: %s", self.conn.id, error)
                return [TEMPORARY] * count
            except Exception:
                log.exception("lmtp %s: delivery failed", self.conn.id)
                return [TEMPORARY] * count
        return self._replies(envelope, outcomes)

    def _replies(self, envelope: Envelope, outcomes: list[DeliveryOutcome]) -> list[Reply]:
        delivered = {o.recipient for o in outcomes if o.result is not None}
        replies = []
        for accepted in envelope.accepted:
            if any(r in delivered for r in accepted.recipients):
                replies.append(DELIVERED)
            else:
                replies.append(OVER_QUOTA)  # the only per-recipient failure of deliver()
        log.info(
            "lmtp %s: from <%s> delivered to %d of %d recipient(s)",
            self.conn.id,
            envelope.sender,
            sum(r is DELIVERED for r in replies),
            len(replies),
        )
        return replies

    async def _message(self, envelope: Envelope) -> AsyncIterator[bytes]:
        """The message as stored: trace headers, then the data as it arrives.

        The same bytes for every recipient, so they all share one blob: no
        per-recipient header such as Delivered-To.
        """
        self._data_ended = False
        yield self._trace_headers(envelope)
        while True:
            event = await self.driver.next_event()
            if isinstance(event, DataChunk):
                yield event.data
            elif isinstance(event, DataEnd):
                self._data_ended = True
                if event.too_large:
                    raise MessageTooLarge(self.settings.max_message_size)
                return
            else:  # the connection ended inside DATA: the MTA will try again
                raise _DataAborted

    async def _drain(self, source: AsyncIterator[bytes]) -> None:
        """Read and drop the rest of the data, so the session stays in step."""
        if self._data_ended:
            return
        try:
            async for _ in source:
                pass
        except MessageTooLarge:
            pass
        except _DataAborted:
            raise SessionEnd from None

    def _trace_headers(self, envelope: Envelope) -> bytes:
        """Return-Path and Received (RFC 5321 sections 4.4 and 4.1.1.4)."""
        date = email.utils.format_datetime(email.utils.localtime())
        peer = self.conn.peer
        received = (
            f"Received: from {self.client} ({peer})\r\n"
            f"\tby {self.ctx.hostname} (LightMail) with LMTP id {self.conn.id};\r\n"
            f"\t{date}\r\n"
        )
        return f"Return-Path: <{envelope.sender}>\r\n{received}".encode("utf-8", "replace")

    @staticmethod
    def _from_now(seconds: float) -> float:
        return asyncio.get_running_loop().time() + seconds

    def _send(self, reply: Reply) -> None:
        self.driver.send(reply.to_bytes())


class _DataAborted(Exception):
    """The connection ended inside DATA: nothing is delivered."""
