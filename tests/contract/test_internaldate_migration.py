"""Migration 0006 adds the INTERNALDATE zone: rows stored before it get offset 0,
so they keep the instant and render in UTC as they did."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.support.migrations import down_and_up, store_with_user

MESSAGE = b"From: a@example.org\r\nSubject: old\r\n\r\nbody\r\n"


async def test_rows_stored_before_0006_keep_their_instant_in_utc(
    own_storage: tuple[str, dict[str, Any]],
) -> None:
    async with store_with_user(own_storage) as (store, user):

        async def one() -> AsyncIterator[bytes]:
            yield MESSAGE

        given = datetime(1996, 7, 16, 20, 0, tzinfo=timezone(timedelta(hours=-7)))
        await store.append(user.id, "INBOX", one(), internaldate=given)
        await down_and_up(store.db, "0005")  # 0006 and what follows it

        (info,) = await store.list_messages(await store.get_mailbox(user.id, "INBOX"))
        assert info.internaldate == given
        assert info.internaldate.utcoffset() == timedelta(0)
        assert info.internaldate == datetime(1996, 7, 17, 3, 0, tzinfo=UTC)
