"""Database.query and PreparedRead: the hot reads that skip SQLAlchemy's per-call
work on SQLite answer what SQLAlchemy answers, in one snapshot, and an
unreachable database is a temporary failure as for every other transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select

from lightmail.errors import TemporaryFailure
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from lightmail.storage.db.prepared import PreparedRead, Rows
from tests.conftest import Backend
from tests.contract.test_mailstore import chunks
from tests.support.metrics import Changes

_MESSAGE = b"From: a@example.org\r\nSubject: prepared\r\n\r\nbody\r\n"

# A DATETIME (a result processor on SQLite), a literal of the statement's own
# (coalesce's 0), an expanding IN list and a plain bind, in one statement.
_LISTED = (
    select(
        t.messages.c.uid,
        t.messages.c.internaldate,
        t.messages.c.deleted_at,
        func.coalesce(t.messages.c.sent_date, t.messages.c.internaldate),
        func.coalesce(t.messages.c.size_crlf, 0),
        t.messages.c.keywords,
    )
    .where(
        t.messages.c.mailbox_id == bindparam("mailbox_id"),
        t.messages.c.uid.in_(bindparam("uids", expanding=True)),
    )
    .order_by(t.messages.c.uid)
)
_PREPARED = PreparedRead(_LISTED)
_USER = PreparedRead(
    select(t.users.c.address, t.users.c.enabled).where(t.users.c.id == bindparam("id"))
)


async def _mailbox_with_messages(backend: Backend, count: int) -> tuple[int, list[int]]:
    user = await backend.new_user()
    uids = []
    for _ in range(count):
        result = await backend.store.append(user.id, "INBOX", chunks(_MESSAGE), flags=["$Label"])
        uids.append(result.uid)
    mailbox = await backend.store.get_mailbox(user.id, "INBOX")
    return mailbox.id, uids


async def test_a_prepared_read_answers_what_sqlalchemy_answers(backend: Backend) -> None:
    mailbox_id, uids = await _mailbox_with_messages(backend, 3)
    for chosen in ([uids[1]], uids, [*uids, 999]):
        params: dict[str, Any] = {"mailbox_id": mailbox_id, "uids": chosen}
        async with backend.db.read() as conn:
            expected = [tuple(row) for row in await conn.execute(_LISTED, params)]
        assert await backend.db.fetch(_PREPARED, params) == expected
        assert [row[0] for row in expected] == sorted(set(chosen) & set(uids))
    # a second run uses the statement's compiled form again: the same answer
    assert await backend.db.fetch(_PREPARED, {"mailbox_id": mailbox_id, "uids": uids}) == expected
    (row,) = await backend.db.fetch(_PREPARED, {"mailbox_id": mailbox_id, "uids": uids[:1]})
    assert row[1].year > 2000  # a datetime, not SQLite's text
    assert row[2] is None
    assert row[5] == "$Label"


async def test_no_row_is_an_empty_list(backend: Backend) -> None:
    assert await backend.db.fetch(_USER, {"id": -1}) == []
    assert await backend.db.fetch(_PREPARED, {"mailbox_id": -1, "uids": [1, 2]}) == []


async def test_an_error_in_a_body_leaves_the_next_read_working(backend: Backend) -> None:
    user = await backend.new_user()

    def broken(rows: Rows) -> None:
        rows(_USER, {"id": user.id})
        raise LookupError("the caller's own bug")

    with pytest.raises(LookupError):
        await backend.db.query(broken)
    assert await backend.db.fetch(_USER, {"id": user.id}) == [(user.address, True)]


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_sqlite_reads_of_one_body_see_one_snapshot(backend: Backend, tmp_path: Path) -> None:
    """A write committed (by another process's connection) between a body's two
    reads is not seen by the second: both read one snapshot."""
    user = await backend.new_user()

    def read_twice(rows: Rows) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        before = rows(_USER, {"id": user.id})
        other = sqlite3.connect(tmp_path / "test.db")
        with other:
            other.execute("UPDATE users SET enabled = 0 WHERE id = ?", (user.id,))
        other.close()
        return before, rows(_USER, {"id": user.id})

    before, after = await backend.db.query(read_twice)
    assert before == after == [(user.address, True)]
    assert await backend.db.fetch(_USER, {"id": user.id}) == [(user.address, False)]


async def test_sqlite_a_database_that_cannot_be_opened_is_a_temporary_failure(
    tmp_path: Path,
) -> None:
    """The file's folder is missing: TemporaryFailure, counted as an unavailable
    read; once it is there the same Database reads it (the connection is reopened)."""
    folder = tmp_path / "later"
    path = folder / "mail.db"
    db = Database(f"sqlite+aiosqlite:///{path}", connect_timeout=0.1)
    changes = Changes()
    try:
        with pytest.raises(TemporaryFailure):
            await db.fetch(_USER, {"id": 1})
        failed = changes(
            "lightmail_db_transaction_failures_total", kind="read", reason="unavailable"
        )
        assert failed == 1
        folder.mkdir()
        await db.upgrade()
        assert await db.fetch(_USER, {"id": 1}) == []
    finally:
        await db.close()
