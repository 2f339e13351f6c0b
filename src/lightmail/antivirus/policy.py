"""Scanning one message while it streams, and what the verdict means for it.

Shared by LMTP delivery and IMAP APPEND: the message is stored (not yet
visible) while its bytes also go to clamd; once the last byte is in, the
verdict and ``[antivirus]`` settings decide: deliver, refuse, retry later,
tag, or quarantine. Every verdict is logged.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from lightmail.antivirus.clamd import ClamdClient, ClamdScan
from lightmail.config import AntivirusMode, AntivirusSettings, ScanErrorPolicy
from lightmail.errors import MessageRejected, TemporaryFailure
from lightmail.mailstore.store import Ingest, MailStore
from lightmail.metrics import ANTIVIRUS_VERDICTS

log = logging.getLogger(__name__)


class Action(enum.Enum):
    DELIVER = "deliver"
    REFUSE = "refuse"  # LMTP 554 5.7.1, IMAP NO
    RETRY = "retry"  # clamd unavailable under on_error = tempfail: LMTP 451, IMAP NO [UNAVAILABLE]
    TAG = "tag"  # deliver a copy with X-Virus headers on top
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    virus: str | None = None


def scanner_for(settings: AntivirusSettings) -> ClamdClient | None:
    """The clamd client the settings ask for, or None when scanning is off."""
    if not settings.enabled:
        return None
    return ClamdClient(
        settings.clamd,
        connect_timeout=min(settings.timeout, 10.0),
        read_timeout=settings.timeout,
        stream_max_length=settings.stream_max_length,
    )


class MessageScan:
    """One message's scan; use as ``async with``, wrap the source, then ``decide``."""

    def __init__(self, client: ClamdClient | None, settings: AntivirusSettings, what: str) -> None:
        self._client = client
        self._settings = settings
        self._what = what  # for log lines: "lmtp <session id> from <sender>"
        self._session: ClamdScan | None = None
        self._error: Exception | None = None
        self._resources = AsyncExitStack()

    async def __aenter__(self) -> MessageScan:
        if self._client is not None:
            try:
                self._session = await self._resources.enter_async_context(self._client.scan())
            except TemporaryFailure as error:
                self._error = error  # the data is still read and stored; on_error decides
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._resources.aclose()

    async def wrap(self, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The message chunks, also sent to clamd for as long as it answers."""
        async for chunk in source:
            if self._session is not None and self._error is None:
                try:
                    await self._session.feed(chunk)
                except TemporaryFailure as error:
                    self._error = error
            yield chunk

    async def decide(self) -> Decision:
        if self._client is None:
            return Decision(Action.DELIVER)
        verdict = None
        if self._session is not None and self._error is None:
            try:
                verdict = await self._session.finish()
            except TemporaryFailure as error:
                self._error = error
        if verdict is None:
            ANTIVIRUS_VERDICTS.labels("error").inc()
            policy = self._settings.on_error
            log.warning("%s: virus scan failed (%s); on_error=%s", self._what, self._error, policy)
            return Decision(
                {
                    ScanErrorPolicy.TEMPFAIL: Action.RETRY,
                    ScanErrorPolicy.ACCEPT: Action.DELIVER,
                    ScanErrorPolicy.REJECT: Action.REFUSE,
                }[policy]
            )
        ANTIVIRUS_VERDICTS.labels("infected" if verdict.infected else "clean").inc()
        if not verdict.infected:
            log.info("%s: virus scan clean (%d octets scanned)", self._what, verdict.scanned)
            return Decision(Action.DELIVER)
        mode = self._settings.mode
        virus = verdict.virus or "unknown"
        log.warning("%s: virus %s found; mode=%s", self._what, virus, mode)
        action = {
            AntivirusMode.TAG: Action.TAG,
            AntivirusMode.QUARANTINE: Action.QUARANTINE,
        }.get(mode, Action.REFUSE)
        return Decision(action, virus)


@asynccontextmanager
async def ingest_scanned(
    store: MailStore,
    client: ClamdClient | None,
    settings: AntivirusSettings,
    source: AsyncIterator[bytes],
    what: str,
) -> AsyncIterator[Ingest]:
    """Store an upload (IMAP APPEND, an API import) through the virus scan, for the block.

    Gives the stored message, tagged in tag mode; not committed in the block,
    it is deleted after. An infected message is dropped (an upload has no
    recipients to quarantine it for) with :class:`MessageRejected`, as is one
    the scanner could not check under ``on_error = reject``; under
    ``tempfail`` that is a :class:`TemporaryFailure`.
    """
    async with AsyncExitStack() as held:
        async with MessageScan(client, settings, what) as scan:
            ingest = await held.enter_async_context(store.ingest(scan.wrap(source)))
            decision = await scan.decide()
        if decision.action is Action.TAG:
            await ingest.prepend(tag_header(decision.virus or "unknown"))
        elif decision.action is Action.RETRY:
            raise TemporaryFailure("the virus scanner is unavailable")
        elif decision.action is not Action.DELIVER:
            raise MessageRejected(f"the message was refused by content policy ({decision.virus})")
        yield ingest


def tag_header(virus: str) -> bytes:
    """The X-Virus headers tag mode puts on top of an infected message."""
    name = "".join(ch if 0x20 < ord(ch) < 0x7F else "?" for ch in virus)
    return f"X-Virus-Status: Infected\r\nX-Virus-Name: {name}\r\n".encode()
