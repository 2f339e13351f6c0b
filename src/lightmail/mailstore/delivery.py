"""Adding new messages: APPEND and LMTP delivery, each sharing one new blob."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail.clock import local_now
from lightmail.errors import (
    QuotaExceeded,
)
from lightmail.mailstore import names
from lightmail.mailstore.core import Quota, StoreCore
from lightmail.mailstore.types import (
    AppendResult,
    DeliveryOutcome,
    Flags,
    Mailbox,
    NewMessage,
    Recipient,
    StoredMessage,
)
from lightmail.notify.bus import ChangeEvent, ChangeKind
from lightmail.storage.db import tables as t

# Where committed messages landed, read back when a commit's outcome was not
# seen (the connection failed after it): add the columns that tell them apart.
_PLACED = select(t.messages.c.mailbox_id, t.mailboxes.c.uidvalidity, t.messages.c.uid).select_from(
    t.messages.join(t.mailboxes, t.mailboxes.c.id == t.messages.c.mailbox_id)
)


def _placed(row: t.AnyRow) -> AppendResult:
    """The AppendResult of a :data:`_PLACED` row."""
    return AppendResult(row.mailbox_id, row.uidvalidity, row.uid)


class Delivery(StoreCore):
    async def append(
        self,
        user_id: int,
        mailbox_name: str,
        source: AsyncIterable[bytes],
        *,
        flags: Iterable[str] = (),
        internaldate: datetime | None = None,
    ) -> AppendResult:
        """APPEND (RFC 3501 section 6.3.11): stream ``source`` into a new message.

        ``internaldate`` keeps its zone (FETCH INTERNALDATE shows it); without
        one the message gets the current time in the server's local zone.

        The size limit is the caller's to enforce on ``source``: an exception
        raised by the source leaves nothing behind.
        """
        mailbox_name = names.normalize(mailbox_name)
        flags = tuple(flags)
        self.check_flags(flags)
        async with self.db.read() as conn:  # fail fast, before streaming the literal
            await self._find_mailbox(conn, user_id, mailbox_name, try_create=True)
        stored = await self._store_blob(source)
        results = await self.append_stored(
            user_id, mailbox_name, [NewMessage(stored, flags, internaldate)]
        )
        return results[0]

    async def append_stored(
        self, user_id: int, mailbox_name: str, messages: Sequence[NewMessage]
    ) -> list[AppendResult]:
        """:meth:`append` for messages already stored with :meth:`store_message`: all
        of them or none (MULTIAPPEND, RFC 3502), with consecutive UIDs in their order.

        The quota must hold them all. The blobs are deleted if the transaction fails.
        """
        mailbox_name = names.normalize(mailbox_name)
        now = local_now()
        blobs = [message.stored for message in messages]

        async def write(conn: AsyncConnection) -> list[AppendResult]:
            parsed = [Flags.parse(message.flags) for message in messages]
            keywords = frozenset().union(*(flags.keywords for flags in parsed))
            for flags in parsed:
                self._check_keywords(flags.keywords)
            found = await self._mailbox_and_quota(conn, user_id, mailbox_name)
            if found is None:
                raise self._not_found(mailbox_name, try_create=True)
            mailbox, quota = found
            await self._enforce(conn, quota, sum(blob.put.size for blob in blobs))
            await self._define_keywords(conn, mailbox.id, keywords)
            results = []
            for message, flags in zip(messages, parsed, strict=True):
                await self._insert_object_key(conn, message.stored)
                date = message.internaldate or now
                results.append(
                    await self._insert_message(conn, mailbox, message.stored, flags, date)
                )
            return results

        async def committed(conn: AsyncConnection) -> list[AppendResult] | None:
            rows = {
                row.object_key: _placed(row)
                for row in await conn.execute(
                    _PLACED.add_columns(t.messages.c.object_key)
                    .where(t.messages.c.object_key.in_([blob.key for blob in blobs]))
                    .order_by(t.messages.c.id.desc())  # the first row of each key wins
                )
            }
            # All or none were committed: one transaction wrote them.
            return [rows[blob.key] for blob in blobs] if blobs[0].key in rows else None

        results = await self._commit_new_blob([blob.key for blob in blobs], write, committed)
        await self.bus.publish(
            ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, results[0].mailbox_id)
        )
        return results

    async def deliver(
        self, recipients: Sequence[Recipient], source: AsyncIterable[bytes]
    ) -> list[DeliveryOutcome]:
        """Deliver one message to several recipients, all sharing one blob.

        All copies are committed in one transaction. A recipient over quota
        gets its own outcome and the others are still delivered. A missing
        target mailbox falls back to INBOX: delivery never fails for a name.
        """
        return await self.deliver_stored(recipients, await self.store_message(source))

    async def store_message(self, source: AsyncIterable[bytes]) -> StoredMessage:
        """Stream a message into a new blob, durable but not yet visible anywhere.

        Callers that decide after the data is in (LMTP waits for the virus
        scanner's verdict) use :meth:`Intake.ingest
        <lightmail.mailstore.ingest.Intake.ingest>`, which deletes the blob
        unless it was committed. A crash in between leaves an orphan blob,
        which the sweeper removes.
        """
        return await self._store_blob(source)

    async def discard(self, stored: StoredMessage) -> None:
        """Drop a stored message that will not be delivered."""
        await self._discard_blob(stored.key)

    def read_stored(self, stored: StoredMessage) -> AsyncIterator[bytes]:
        return self.blobs.get(stored.key)

    async def deliver_stored(
        self, recipients: Sequence[Recipient], stored: StoredMessage
    ) -> list[DeliveryOutcome]:
        """:meth:`deliver` for a message already stored with :meth:`store_message`."""

        async def write(conn: AsyncConnection) -> list[DeliveryOutcome]:
            outcomes: list[DeliveryOutcome] = []
            targets = [
                (recipient, *await self._delivery_target(conn, recipient))
                for recipient in recipients
            ]
            # Lock mailbox rows in one order so concurrent deliveries cannot deadlock.
            targets.sort(key=lambda target: target[1].id)
            if targets:
                await self._insert_object_key(conn, stored)
            now = local_now()
            for recipient, mailbox, quota in targets:
                try:
                    await self._enforce(conn, quota, stored.put.size)
                except QuotaExceeded as error:
                    outcomes.append(DeliveryOutcome(recipient, error=error))
                    continue
                result = await self._insert_message(conn, mailbox, stored, Flags(), now)
                outcomes.append(DeliveryOutcome(recipient, result=result))
            if not any(outcome.result for outcome in outcomes):
                await conn.execute(delete(t.object_keys).where(t.object_keys.c.key == stored.key))
            return outcomes

        async def committed(conn: AsyncConnection) -> list[DeliveryOutcome] | None:
            return await self._delivered(conn, recipients, stored)

        outcomes = await self._commit_new_blob([stored.key], write, committed)
        if not any(outcome.result for outcome in outcomes):
            await self._discard_blob(stored.key)
        await self._announce_added(outcomes)
        order = {recipient: index for index, recipient in enumerate(recipients)}
        outcomes.sort(key=lambda outcome: order[outcome.recipient])
        return outcomes

    async def _delivery_target(
        self, conn: AsyncConnection, recipient: Recipient
    ) -> tuple[Mailbox, Quota]:
        """The mailbox a recipient's copy goes to (the one it names if that exists, else
        INBOX), and the user's quota."""
        if recipient.mailbox is not None:
            found = await self._mailbox_and_quota(
                conn, recipient.user_id, names.normalize(recipient.mailbox)
            )
            if found is not None:
                return found
        found = await self._mailbox_and_quota(conn, recipient.user_id, names.INBOX)
        if found is None:
            raise self._not_found(names.INBOX)
        return found

    async def _delivered(
        self, conn: AsyncConnection, recipients: Sequence[Recipient], stored: StoredMessage
    ) -> list[DeliveryOutcome] | None:
        """The outcomes of a delivery of ``stored`` that was committed, read back from its
        rows; None if it was not (no ``object_keys`` row: nothing was delivered)."""
        key = (
            await conn.execute(select(t.object_keys.c.key).where(t.object_keys.c.key == stored.key))
        ).first()
        if key is None:
            return None
        rows = list(
            await conn.execute(
                _PLACED.add_columns(t.messages.c.user_id)
                .where(t.messages.c.object_key == stored.key)
                .order_by(t.messages.c.id)
            )
        )
        outcomes = []
        for recipient in recipients:
            mailbox, _ = await self._delivery_target(conn, recipient)
            row = next(
                (r for r in rows if (r.user_id, r.mailbox_id) == (recipient.user_id, mailbox.id)),
                None,
            )
            if row is None:  # over quota: the only recipient a delivery skips
                error = await self._quota_error(conn, recipient.user_id, stored.put.size)
                outcomes.append(DeliveryOutcome(recipient, error=error))
                continue
            rows.remove(row)
            outcomes.append(DeliveryOutcome(recipient, result=_placed(row)))
        return outcomes
