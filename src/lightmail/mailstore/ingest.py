"""One new message on its way in: stored first, committed or discarded once decided.

LMTP, IMAP APPEND and the API import stream a message into a blob before they
know what becomes of it (the virus scanner's verdict, the size, the target
mailbox). :meth:`Intake.ingest` (``MailStore.ingest``) holds that blob for
them: whatever happens inside the ``async with``, the blob is deleted on the
way out unless an operation took it over. An operation that
commits the blob (append, deliver, quarantine) decides itself whether it may
delete it after a failure: never when a committed row could refer to it (a
COMMIT whose reply was lost), so the orphan sweep gets it instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from lightmail.mailstore.delivery import Delivery
from lightmail.mailstore.quarantine import Quarantine
from lightmail.mailstore.types import (
    AppendResult,
    DeliveryOutcome,
    NewMessage,
    Recipient,
    StoredMessage,
)


class Ingest:
    """A stored message not yet visible anywhere; at most one operation commits it."""

    def __init__(self, store: Intake, stored: StoredMessage) -> None:
        self._store = store
        self.stored = stored
        self._taken = False  # an operation took the blob over: it is no longer ours to delete

    @property
    def size(self) -> int:
        return self.stored.put.size

    async def prepend(self, header: bytes) -> None:
        """Replace the message by a copy with ``header`` on top (antivirus tag mode);
        the original blob is deleted."""
        self._check_open()
        original = self.stored

        async def tagged() -> AsyncIterator[bytes]:
            yield header
            async for chunk in self._store.read_stored(original):
                yield chunk

        self.stored = await self._store.store_message(tagged())
        await self._store.discard(original)

    async def append(
        self,
        user_id: int,
        mailbox_name: str,
        *,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> AppendResult:
        """APPEND the message (see :meth:`MailStore.append`)."""
        message = self.take(flags=flags, internaldate=internaldate)
        return (await self._store.append_stored(user_id, mailbox_name, [message]))[0]

    def take(
        self, *, flags: Iterable[str] = (), internaldate: datetime | None = None
    ) -> NewMessage:
        """Hand the message over to :meth:`MailStore.append_stored
        <lightmail.mailstore.delivery.Delivery.append_stored>`, which commits it, or
        deletes its blob if it cannot; a MULTIAPPEND takes each of its messages so."""
        self._take()
        return NewMessage(self.stored, tuple(flags), internaldate)

    async def deliver(self, recipients: Sequence[Recipient]) -> list[DeliveryOutcome]:
        """Deliver the message (see :meth:`MailStore.deliver`)."""
        self._take()
        return await self._store.deliver_stored(recipients, self.stored)

    async def quarantine(self, sender: str, recipients: Sequence[Recipient], virus: str) -> int:
        """Keep the message aside for ``recipients``; return its quarantine id."""
        self._take()
        return await self._store.quarantine(self.stored, sender, recipients, virus)

    def _check_open(self) -> None:
        if self._taken:
            raise RuntimeError("this message was already committed")

    def _take(self) -> None:
        self._check_open()
        self._taken = True

    async def _close(self) -> None:
        if not self._taken:
            await self._store.discard(self.stored)


class Intake(Delivery, Quarantine):
    """New mail: APPEND and delivery, quarantine, and the blob held in between."""

    @asynccontextmanager
    async def ingest(self, source: AsyncIterable[bytes]) -> AsyncIterator[Ingest]:
        """Stream ``source`` into a new blob, held for the ``async with`` block.

        Inside, the caller decides (a virus verdict, a size check) and commits
        the message with :class:`Ingest`'s ``append``, ``deliver`` or
        ``quarantine``; otherwise the blob is deleted when the block ends.
        """
        ingest = Ingest(self, await self.store_message(source))
        try:
            yield ingest
        finally:
            await ingest._close()
