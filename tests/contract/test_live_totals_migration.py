"""Migration 0015 gives every mailbox the totals of its live messages, from which
the quota's usage is summed: mail stored before it counts as it did."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lightmail.mailstore.store import StoreMode
from tests.support.migrations import down_and_up, store_with_user

MESSAGE = b"From: a@example.org\r\nSubject: old\r\n\r\nbody\r\n"


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_mail_stored_before_0015_counts_against_the_quota(
    own_storage: tuple[str, dict[str, Any]],
) -> None:
    async with store_with_user(own_storage) as (store, user):
        await store.create_mailbox(user.id, "Keep")
        for name, data in (("INBOX", MESSAGE), ("INBOX", MESSAGE * 2), ("Keep", MESSAGE)):
            await store.append(user.id, name, _one(data))
        inbox = await store.get_mailbox(user.id, "INBOX")
        await store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["\\Deleted"])
        await store.expunge(user.id, inbox)
        await down_and_up(store.db, "0014")  # 0015 and what follows it

        assert await store.usage(user.id) == (3 * len(MESSAGE), 2)
