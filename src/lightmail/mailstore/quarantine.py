"""Messages kept aside by the virus scanner, in no mailbox, until released or deleted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail import clock
from lightmail.clock import local_now
from lightmail.errors import (
    NotFound,
)
from lightmail.mailstore import names
from lightmail.mailstore.core import StoreCore
from lightmail.mailstore.mime.scanner import MimeScanner
from lightmail.mailstore.rows import (
    LineEndings,
    aware,
    mailbox_from_row,
)
from lightmail.mailstore.types import (
    DeliveryOutcome,
    Flags,
    QuarantinedMessage,
    Recipient,
    StoredMessage,
)
from lightmail.storage.blobs import PutResult
from lightmail.storage.db import tables as t


class Quarantine(StoreCore):
    async def quarantine(
        self,
        stored: StoredMessage,
        sender: str,
        recipients: Sequence[Recipient],
        virus: str,
    ) -> int:
        """Keep a stored message aside, in no mailbox; return its quarantine id."""
        listed = [[r.address, r.user_id] for r in recipients]

        async def write(conn: AsyncConnection) -> int | None:
            await self._insert_object_key(conn, stored)
            result = await conn.execute(
                insert(t.quarantine).values(
                    object_key=stored.key,
                    sender=sender,
                    recipients=json.dumps(listed),
                    virus=virus,
                    created_at=clock.utcnow(),
                )
            )
            (item_id,) = result.inserted_primary_key or (None,)
            return None if item_id is None else int(item_id)

        async def committed(conn: AsyncConnection) -> int | None:
            return (
                await conn.execute(
                    select(t.quarantine.c.id).where(t.quarantine.c.object_key == stored.key)
                )
            ).scalar_one_or_none()

        item_id = await self._commit_new_blob([stored.key], write, committed)
        if item_id is None:
            raise RuntimeError("the database returned no id for the quarantined message")
        return item_id

    async def list_quarantine(self) -> list[QuarantinedMessage]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(t.quarantine, t.object_keys.c.size)
                .select_from(t.quarantine.join(t.object_keys))
                .order_by(t.quarantine.c.id)
            )
            return [
                QuarantinedMessage(
                    id=row.id,
                    sender=row.sender,
                    recipients=tuple(address for address, _ in json.loads(row.recipients)),
                    virus=row.virus,
                    size=row.size,
                    created_at=aware(row.created_at),
                )
                for row in rows
            ]

    async def release_quarantine(self, item_id: int) -> list[DeliveryOutcome]:
        """Deliver a quarantined message to its recipients' INBOX and forget the entry.

        Recipients deleted since are skipped. The blob is shared, not copied.
        """
        item = await self._quarantine_row(item_id)
        parser, endings = MimeScanner(), LineEndings()
        async for chunk in self.blobs.get(item.object_key):
            parser.feed(chunk)
            endings.feed(chunk)
        put = PutResult(item.size, item.sha256)
        stored = StoredMessage(item.object_key, put, parser.close(), endings.bare_lf)

        async def write(conn: AsyncConnection) -> list[DeliveryOutcome]:
            outcomes: list[DeliveryOutcome] = []
            now = local_now()
            for address, user_id in json.loads(item.recipients):
                row = await self._mailbox_row(conn, user_id, names.INBOX)
                if row is None:
                    continue
                result = await self._insert_message(
                    conn, mailbox_from_row(row), stored, Flags(), now
                )
                outcomes.append(DeliveryOutcome(Recipient(user_id, address), result=result))
            await conn.execute(delete(t.quarantine).where(t.quarantine.c.id == item_id))
            if not outcomes:
                await conn.execute(delete(t.object_keys).where(t.object_keys.c.key == stored.key))
            return outcomes

        outcomes = await self.db.transact(write)
        if not outcomes:
            await self._discard_blob(stored.key)
        await self._announce_added(outcomes)
        return outcomes

    async def delete_quarantine(self, item_id: int) -> None:
        """Delete a quarantined message and its blob."""
        item = await self._quarantine_row(item_id)

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(delete(t.quarantine).where(t.quarantine.c.id == item_id))
            await conn.execute(delete(t.object_keys).where(t.object_keys.c.key == item.object_key))

        await self.db.transact(write)
        await self._discard_blob(item.object_key)

    async def read_quarantined(self, item_id: int) -> tuple[int, AsyncIterator[bytes]]:
        """The size of a quarantined message and a stream of it, as received."""
        item = await self._quarantine_row(item_id)
        return int(item.size), self.blobs.get(item.object_key)

    async def _quarantine_row(self, item_id: int) -> t.AnyRow:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(t.quarantine, t.object_keys.c.size, t.object_keys.c.sha256)
                    .select_from(t.quarantine.join(t.object_keys))
                    .where(t.quarantine.c.id == item_id)
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"no quarantined message {item_id}")
        return row
