"""Migration 0010 adds the SORT and THREAD keys: rows stored before it get, from
their cached header and ENVELOPE, exactly the keys a delivery computes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lightmail.mailstore.mime.sorting import casemap
from lightmail.mailstore.store import MailStore, MessageSortKeys
from tests.support.migrations import down_and_up, store_with_user

MESSAGES = [
    b"From: Zed <z@example.org>\r\nSubject: Re: [list] plans (fwd)\r\n"
    b'Date: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <"p"@example.org>\r\n'
    b"References: <a@x> <b@x>\r\n\r\nbody\r\n",
    b"From: =?UTF-8?Q?=C3=89mile?= <e@example.org>\r\nTo: Carol <c@example.org>\r\n"
    b"Cc: d@example.org\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n"
    b"In-Reply-To: <p@example.org>\r\n\r\nx\r\n",
    b"Subject: bare\r\n\r\nno fields\r\n",
]


async def _all_keys(store: MailStore, user_id: int) -> dict[tuple[str, int], MessageSortKeys]:
    found: dict[tuple[str, int], MessageSortKeys] = {}
    for name in ("INBOX", "Archive"):
        mailbox = await store.get_mailbox(user_id, name)
        uids = [info.uid for info in await store.list_messages(mailbox)]
        for keys in await store.fetch_sort_keys(mailbox, uids):
            found[name, keys.uid] = keys
    return found


async def test_rows_stored_before_0010_get_the_keys_a_delivery_computes(
    own_storage: tuple[str, dict[str, Any]],
) -> None:
    async with store_with_user(own_storage) as (store, user):
        for message in MESSAGES:

            async def one(message: bytes = message) -> AsyncIterator[bytes]:
                yield message

            await store.append(user.id, "INBOX", one())
        # Copies double the rows until the backfill takes more than one batch (500).
        inbox, archive = "INBOX", "Archive"
        for _ in range(11):
            source = await store.get_mailbox(user.id, inbox)
            uids = [info.uid for info in await store.list_messages(source)]
            await store.copy(user.id, source, uids, archive)
            inbox, archive = archive, inbox
        before = await _all_keys(store, user.id)
        assert len(before) > 500
        assert {keys.keys.subject for keys in before.values()} == {"PLANS", casemap("café"), "BARE"}
        await down_and_up(store.db, "0009")  # 0010 and what follows it
        assert await _all_keys(store, user.id) == before
