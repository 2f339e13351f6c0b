"""SELECT and FETCH of metadata read SQL only, in a fixed number of batched queries.

The IMAP issue asks that selecting a big mailbox and fetching ``1:* (UID FLAGS)``
neither loads message bodies nor issues a query per message. Timings belong
in bench/; this test counts queries and blob reads, which do not depend on the
machine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from lightmail.mailstore.purge import Purge
from lightmail.mailstore.store import MailStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.prepared import DirectForm
from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login

MESSAGE = b"From: a@example.org\r\nSubject: shape\r\n\r\nbody\r\n"


@contextmanager
def counting_queries() -> Iterator[list[str]]:
    """The statements run through SQLAlchemy, and the prepared reads run without it
    (``lightmail.storage.db.prepared``)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    real_converted = DirectForm.converted

    def converted_recorded(form: DirectForm, rows: Any) -> Any:
        statements.append("prepared read")
        return real_converted(form, rows)

    event.listen(Engine, "before_cursor_execute", record)
    setattr(DirectForm, "converted", converted_recorded)  # noqa: B010 (restored below)
    try:
        yield statements
    finally:
        setattr(DirectForm, "converted", real_converted)  # noqa: B010
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


async def test_a_selected_session_reads_only_what_changed(
    imap: ImapTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session that hears of a change reads the messages changed and expunged since
    its view was current, not the whole mailbox; only when the garbage collector has
    purged an expunge it missed does it compare every message."""
    user = await imap.new_user()
    store = imap.backend.store

    async def one() -> AsyncIterator[bytes]:
        yield MESSAGE

    await store.append(user.id, "INBOX", one())
    inbox = await store.get_mailbox(user.id, "INBOX")
    for _ in range(8):  # 256 messages
        await store.copy(user.id, inbox, [m.uid for m in await store.list_messages(inbox)], "INBOX")
    await store.claim_recent(inbox)
    full_reads: list[int] = []
    real_list = MailStore.list_messages

    def counting_list(self: MailStore, mailbox: Any) -> Any:
        full_reads.append(mailbox.id)
        return real_list(self, mailbox)

    monkeypatch.setattr(MailStore, "list_messages", counting_list)

    def step(wire: Wire, line: bytes) -> list[bytes]:
        wire.send(b"T " + line + b"\r\n")
        lines = wire.until(b"T")
        assert lines[-1].startswith(b"T OK"), lines
        return lines[:-1]

    with contextlib.ExitStack() as wires:
        watcher, other = [await asyncio.to_thread(wires.enter_context, connect(imap)) for _ in "ab"]

        def select_both() -> None:
            for wire in (watcher, other):
                login(wire, user)
                step(wire, b"SELECT INBOX")
            full_reads.clear()

        def change(*lines: bytes) -> list[bytes]:
            """What the watcher hears at its NOOP after ``lines`` from the other session."""
            for line in lines:
                step(other, line)
            return step(watcher, b"NOOP")

        await asyncio.to_thread(select_both)
        assert await asyncio.to_thread(change, b"STORE 5 +FLAGS.SILENT (\\Flagged)") == [
            b"* 5 FETCH (UID 5 FLAGS (\\Flagged))"
        ]
        assert await asyncio.to_thread(
            change, b"STORE 7 +FLAGS.SILENT (\\Deleted)", b"EXPUNGE"
        ) == [b"* 7 EXPUNGE"]
        await store.append(user.id, "INBOX", one())
        assert await asyncio.to_thread(change) == [b"* 256 EXISTS", b"* 1 RECENT"]
        assert full_reads == []

        # An expunge the watcher has not heard of loses its row to the GC.
        await asyncio.to_thread(step, other, b"STORE 9 +FLAGS.SILENT (\\Deleted)")
        await asyncio.to_thread(step, other, b"EXPUNGE")
        async with imap.backend.db.read() as conn:
            ids = (
                await conn.execute(
                    select(t.messages.c.id).where(
                        t.messages.c.mailbox_id == inbox.id, t.messages.c.deleted_at.is_not(None)
                    )
                )
            ).scalars()
            purged = list(ids)
        assert await Purge(imap.backend.db).delete_rows(purged, []) == len(purged)
        assert await asyncio.to_thread(change) == [b"* 9 EXPUNGE"]
        assert full_reads == [inbox.id]
