"""SELECT and FETCH of metadata read SQL only, in a fixed number of batched queries.

The IMAP issue asks that selecting a big mailbox and fetching ``1:* (UID FLAGS)``
neither loads message bodies nor issues a query per message. Timings belong
in bench/; this test counts queries and blob reads, which do not depend on the
machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from lightmail.mailstore.store import MailStore
from tests.integration.imap.conftest import ImapTarget

MESSAGE = b"From: a@example.org\r\nSubject: shape\r\n\r\nbody\r\n"


@contextmanager
def counting_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def test_select_and_fetch_flags_of_many_messages(
    imap: ImapTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await imap.new_user()
    store = imap.backend.store

    async def one() -> AsyncIterator[bytes]:
        yield MESSAGE

    await store.append(user.id, "INBOX", one())
    inbox = await store.get_mailbox(user.id, "INBOX")
    for _ in range(10):  # doubling: 1024 messages sharing one blob
        messages = await store.list_messages(inbox)
        await store.copy(user.id, inbox, [m.uid for m in messages], "INBOX")
    count = len(await store.list_messages(inbox))
    assert count == 1024

    blob_reads: list[str] = []
    real_read = MailStore.read_message

    def counting_read(self: MailStore, info: Any, *args: Any) -> Any:
        blob_reads.append(info.object_key)
        return real_read(self, info, *args)

    monkeypatch.setattr(MailStore, "read_message", counting_read)

    def conversation() -> tuple[int, int]:
        with imap.client(user) as client, counting_queries() as queries:
            assert client.select("INBOX") == ("OK", [str(count).encode()])
            select_queries = len(queries)
            typ, data = client.fetch("1:*", "(UID FLAGS)")
            assert typ == "OK"
            assert len(data) == count
            typ, data = client.fetch("1:*", "(UID RFC822.SIZE INTERNALDATE)")
            assert typ == "OK"
            return select_queries, len(queries) - select_queries

    select_queries, fetch_queries = await asyncio.to_thread(conversation)
    assert select_queries <= 10  # BEGINs included; a query per message would be 1000+
    assert fetch_queries <= 4 + 2 * (count // 500 + 1)  # sizes and dates: batched
    assert blob_reads == []

    def headers() -> int:
        with imap.client(user) as client, counting_queries() as queries:
            client.select("INBOX")
            before = len(queries)
            typ, _data = client.fetch("1:*", "(ENVELOPE BODY.PEEK[HEADER])")
            assert typ == "OK"
            return len(queries) - before

    # The cached parse serves ENVELOPE and the header: batched queries, no blob read.
    assert await asyncio.to_thread(headers) <= 4 + 2 * (count // 500 + 1)
    assert blob_reads == []
