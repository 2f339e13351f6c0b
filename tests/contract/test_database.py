"""How the database layer reports trouble that is not an outage."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import bindparam, event, exc, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Update

from lightmail.errors import CommitOutcomeUnknown, TemporaryFailure, TransactionConflict
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from lightmail.storage.db.prepared import PreparedRead, PreparedWrite
from tests.conftest import Backend
from tests.support.metrics import Changes


@asynccontextmanager
async def _database(url: str, *, pool_size: int) -> AsyncIterator[Database]:
    """A Database of the test's own on ``url``, closed at the end."""
    db = Database(url, pool_size=pool_size)
    try:
        yield db
    finally:
        await db.close()


async def _deadlock(
    backend: Backend, url: str, *, transact: bool, max_retries: int = 0
) -> tuple[list[object], list[int]]:
    """Two transactions, on two pools, lock two users' rows in opposite orders,
    each waiting (on its first run) until the other holds its first row: MariaDB
    rolls one back. Their results (the first user's id, or the exception), and
    the first user of each run of a body."""
    first, second = await backend.new_user(), await backend.new_user()
    other = Database(url, max_retries=max_retries)
    backend.db.max_retries = max_retries
    both_hold_one = asyncio.Barrier(2)
    runs: list[int] = []

    async def lock(db: Database, a: int, b: int) -> int:
        async def body(conn: AsyncConnection) -> int:
            runs.append(a)
            for user_id in (a, b):
                await conn.execute(_enabling(user_id, False))
                if user_id == a and runs.count(a) == 1:
                    await both_hold_one.wait()
            return a

        if transact:
            return await db.transact(body)
        async with db.write() as conn:
            return await body(conn)

    try:
        results = await asyncio.gather(
            lock(backend.db, first.id, second.id),
            lock(other, second.id, first.id),
            return_exceptions=True,
        )
    finally:
        await other.close()
    return list(results), runs


@pytest.mark.parametrize("backend_name", ["mariadb"])
async def test_a_deadlock_is_a_transaction_conflict_not_an_outage(
    backend: Backend, mariadb_schema: str
) -> None:
    """Two transactions lock two rows in opposite orders: MariaDB rolls one back."""
    results, _ = await _deadlock(backend, mariadb_schema, transact=False)
    conflicts = [r for r in results if isinstance(r, TransactionConflict)]
    assert len(conflicts) == 1, results
    assert "1213" in str(conflicts[0])
    assert conflicts[0].retryable
    assert sum(isinstance(r, int) for r in results) == 1


@pytest.mark.parametrize("backend_name", ["mariadb"])
@pytest.mark.parametrize("max_retries", [0, 1])
async def test_transact_runs_a_body_again_after_a_deadlock(
    backend: Backend, mariadb_schema: str, max_retries: int
) -> None:
    """The same deadlock through Database.transact: the body rolled back runs again,
    after a pause, and both commit; with no retries allowed the conflict stands."""
    changes = Changes()
    results, runs = await _deadlock(backend, mariadb_schema, transact=True, max_retries=max_retries)
    retried = changes("lightmail_db_transaction_retries_total")
    users = sorted(set(runs))
    if max_retries:
        assert sorted(r for r in results if isinstance(r, int)) == users
        assert len(runs) == 3
        assert retried == 1
        assert await _enabled(backend.db, *users) == {user: False for user in users}
    else:
        assert [type(r) for r in results].count(TransactionConflict) == 1, results
        assert len(runs) == 2
        assert retried == 0


class _Commits:
    """The COMMITs SQLite carries out on a database's writer, counted by SQLAlchemy."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        event.listen(db._writer.sync_engine, "commit", self._commit)

    def _commit(self, _conn: object) -> None:
        self.count += 1


def _enabling(user_id: int, enabled: bool) -> Update:
    """The UPDATE that enables or disables a user: the write of these tests."""
    return update(t.users).where(t.users.c.id == user_id).values(enabled=enabled)


def _outages(failures: Changes, kind: str) -> float:
    """Transactions of ``kind`` counted as failed on an unavailable database since ``failures``."""
    return failures("lightmail_db_transaction_failures_total", kind=kind, reason="unavailable")


async def _enabled(db: Database, *ids: int) -> dict[int, bool]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(t.users.c.id, t.users.c.enabled).where(t.users.c.id.in_(ids))
        )
        return {row.id: row.enabled for row in rows}


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_sqlite_writes_that_come_together_share_one_commit(backend: Backend) -> None:
    """Write transactions queued while one runs join its COMMIT; each returns only
    once its own change is committed, and one that fails rolls back alone."""
    users = [await backend.new_user() for _ in range(4)]
    commits = _Commits(backend.db)
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def disable(user_id: int, *, fail: bool = False, hold: bool = False) -> None:
        async with backend.db.write() as conn:
            await conn.execute(_enabling(user_id, False))
            if hold:
                first_in.set()
                await release_first.wait()
            if fail:
                raise LookupError("this one changes its mind")

    first = asyncio.create_task(disable(users[0].id, hold=True))
    await first_in.wait()  # the others queue behind a running transaction
    others = [
        asyncio.create_task(disable(users[1].id)),
        asyncio.create_task(disable(users[2].id, fail=True)),
        asyncio.create_task(disable(users[3].id)),
    ]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in others), "a member returned before its COMMIT"
    release_first.set()
    results = await asyncio.gather(first, *others, return_exceptions=True)

    assert [type(r) for r in results] == [type(None), type(None), LookupError, type(None)]
    assert commits.count == 1
    enabled = await _enabled(backend.db, *(u.id for u in users))
    assert enabled == {
        users[0].id: False,
        users[1].id: False,
        users[2].id: True,
        users[3].id: False,
    }


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_sqlite_a_writer_waits_for_another_process_write_lock_without_blocking(
    backend: Backend, tmp_path: Path
) -> None:
    """While another process (here another connection) holds the write lock, a write
    transaction waits for it without blocking the loop, and commits once the lock
    is free."""
    user = await backend.new_user()
    other = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def disable() -> None:
        async with backend.db.write() as conn:
            await conn.execute(_enabling(user.id, False))

    ticker = asyncio.create_task(tick())
    writer = asyncio.create_task(disable())
    try:
        await asyncio.sleep(0.3)
        assert not writer.done(), "the write went on while another held the lock"
        assert ticks >= 10, "the loop was blocked while the writer waited"
        other.execute("COMMIT")
        await asyncio.wait_for(writer, 5)
    finally:
        ticker.cancel()
        other.close()
    assert await _enabled(backend.db, user.id) == {user.id: False}
    # The lock is free again: the next write takes it at once.
    async with backend.db.write() as conn:
        await conn.execute(_enabling(user.id, True))
    assert await _enabled(backend.db, user.id) == {user.id: True}


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_sqlite_a_writer_gives_up_on_another_process_write_lock_after_the_busy_timeout(
    backend: Backend, tmp_path: Path
) -> None:
    """Held for longer than ``busy_timeout``, another process's write lock makes a
    write fail with a temporary error (an MTA tries again later) that changed
    nothing; once the lock is free, the next write commits."""
    user = await backend.new_user()
    impatient = Database(f"sqlite+aiosqlite:///{tmp_path}/test.db", busy_timeout=0.2)
    other = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def disable() -> None:
        async with impatient.write() as conn:
            await conn.execute(_enabling(user.id, False))

    try:
        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match="database unavailable") as raised:
            await disable()
        assert time.monotonic() - started >= 0.2, "it gave up before the busy timeout"
        assert "database is locked" in str(raised.value.__cause__)
        assert await _enabled(backend.db, user.id) == {user.id: True}
        other.execute("COMMIT")
        await disable()
    finally:
        other.close()
        await impatient.close()
    assert await _enabled(backend.db, user.id) == {user.id: False}


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_sqlite_a_cancelled_writer_leaves_its_batch_intact(backend: Backend) -> None:
    """One cancelled while it waits its turn, and one cancelled in the middle of its
    statements: neither changes anything, and the others commit."""
    users = [await backend.new_user() for _ in range(3)]
    first_in, release_first, second_in = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def disable(user_id: int, entered: asyncio.Event | None = None) -> None:
        async with backend.db.write() as conn:
            await conn.execute(_enabling(user_id, False))
            if entered is first_in:
                first_in.set()
                await release_first.wait()
            elif entered is not None:
                entered.set()
                await asyncio.Event().wait()  # until cancelled

    first = asyncio.create_task(disable(users[0].id, first_in))
    await first_in.wait()
    waiting = asyncio.create_task(disable(users[1].id))
    stuck = asyncio.create_task(disable(users[2].id, second_in))
    await asyncio.sleep(0)
    waiting.cancel()
    release_first.set()
    await second_in.wait()
    stuck.cancel()
    await first
    for task in (waiting, stuck):
        with pytest.raises(asyncio.CancelledError):
            await task
    enabled = await _enabled(backend.db, *(u.id for u in users))
    assert enabled == {users[0].id: False, users[1].id: True, users[2].id: True}


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_sqlite_a_failed_first_writer_rolls_back_alone(backend: Backend) -> None:
    """The first of a batch runs without a SAVEPOINT (alone, a write costs what it
    always did); when it fails, its changes go and those queued behind it commit."""
    users = [await backend.new_user() for _ in range(3)]
    first_in, release_first = asyncio.Event(), asyncio.Event()

    async def disable(user_id: int, *, fail: bool = False) -> None:
        async with backend.db.write() as conn:
            await conn.execute(_enabling(user_id, False))
            if fail:
                first_in.set()
                await release_first.wait()
                raise LookupError("the first changes its mind")

    first = asyncio.create_task(disable(users[0].id, fail=True))
    await first_in.wait()
    others = [asyncio.create_task(disable(user.id)) for user in users[1:]]
    await asyncio.sleep(0.05)
    release_first.set()
    with pytest.raises(LookupError):
        await first
    await asyncio.gather(*others)
    enabled = await _enabled(backend.db, *(u.id for u in users))
    assert enabled == {users[0].id: True, users[1].id: False, users[2].id: False}


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_sqlite_a_failed_commit_gives_the_writer_back_and_the_next_write_works(
    backend: Backend,
) -> None:
    """The writer's connection is kept between batches; when a COMMIT fails, the
    batch's write fails with it, nothing of it stays, the connection goes back to
    the pool, and the next write takes it again."""
    users = [await backend.new_user() for _ in range(2)]
    pool = backend.db._writer.pool
    assert pool.checkedout() == 1, "the writer was not kept between batches"  # type: ignore[attr-defined]
    failures = [exc.OperationalError("COMMIT", None, sqlite3.OperationalError("disk I/O error"))]

    def commit(_conn: object) -> None:
        if failures:
            raise failures.pop()

    event.listen(backend.db._writer.sync_engine, "commit", commit)
    try:
        with pytest.raises(CommitOutcomeUnknown):
            async with backend.db.write() as conn:
                await conn.execute(_enabling(users[0].id, False))
        assert pool.checkedout() == 0, "the writer whose COMMIT failed was kept"  # type: ignore[attr-defined]
        for user in users:
            async with backend.db.write() as conn:
                await conn.execute(
                    update(t.users).where(t.users.c.id == user.id).values(quota_bytes=1)
                )
    finally:
        event.remove(backend.db._writer.sync_engine, "commit", commit)
    assert pool.checkedout() == 1  # type: ignore[attr-defined]
    enabled = await _enabled(backend.db, *(u.id for u in users))
    assert enabled == {users[0].id: True, users[1].id: True}


@pytest.mark.parametrize("backend_name", ["mariadb"])
async def test_a_pooled_connection_killed_while_idle_is_replaced_before_a_read(
    backend: Backend, mariadb_schema: str
) -> None:
    """The server ends an idle pooled connection (as a restart or wait_timeout
    would): the next read, a second later, runs on a new connection with no
    error, since a connection idle that long is pinged before use."""
    async with _database(mariadb_schema, pool_size=1) as db:
        user = await backend.new_user()
        query = select(t.users.c.address).where(t.users.c.id == user.id)
        async with db.read() as conn:
            first_id = (await conn.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
        async with backend.db.write() as other:
            await other.execute(text(f"KILL CONNECTION {int(first_id)}"))
        await asyncio.sleep(1.2)
        failures = Changes()
        async with db.read() as conn:
            assert (await conn.execute(query)).scalar_one() == user.address
            second_id = (await conn.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
        assert second_id != first_id
        assert _outages(failures, "read") == 0


@pytest.mark.parametrize("backend_name", ["mariadb"])
async def test_a_prepared_read_whose_connection_the_server_kills_runs_again(
    backend: Backend, mariadb_schema: str
) -> None:
    """``Database.query`` on MariaDB reads on connections of its own. The server
    ends one in the middle of a read (as a restart would): the read runs again
    on a new connection and answers, with no error; a read changes nothing."""
    async with _database(mariadb_schema, pool_size=2) as db:
        sleep = PreparedRead(select(func.sleep(1), func.connection_id()))
        ((_, first_id),) = await db.fetch(sleep, {})
        failures = Changes()
        reading = asyncio.create_task(db.fetch(sleep, {}))
        await asyncio.sleep(0.3)  # the read is under way, on the same connection
        async with backend.db.write() as other:
            await other.execute(text(f"KILL CONNECTION {int(first_id)}"))
        ((slept, second_id),) = await reading
        assert (slept, second_id != first_id) == (0, True)
        assert _outages(failures, "read") == 0


@pytest.mark.parametrize("backend_name", ["mariadb"])
async def test_a_connection_given_back_after_a_commit_is_not_rolled_back_again(
    backend: Backend, mariadb_schema: str
) -> None:
    """A write transaction's COMMIT ends it: the pool sends no ROLLBACK when the
    connection comes back (a round trip per transaction). One given back by a
    failed transaction is rolled back, and nothing of it stays."""
    user = await backend.new_user()
    # One connection, so its session counters.
    async with _database(mariadb_schema, pool_size=1) as db:

        async def rollbacks() -> int:
            async with db.write() as conn:
                row = (await conn.execute(text("SHOW SESSION STATUS LIKE 'Com_rollback'"))).one()
                return int(row[1])

        async def fails() -> None:
            async with db.write() as conn:
                await conn.execute(_enabling(user.id, False))
                raise ZeroDivisionError

        before = await rollbacks()
        for enabled in (False, True):
            async with db.write() as conn:
                await conn.execute(_enabling(user.id, enabled))
        assert await rollbacks() == before
        with pytest.raises(ZeroDivisionError):
            await fails()
        assert await rollbacks() == before + 1
        assert await _enabled(db, user.id) == {user.id: True}


@pytest.mark.parametrize("backend_name", ["mariadb"])
async def test_a_write_cancelled_while_its_statement_waits_is_cancelled_not_an_outage(
    backend: Backend, mariadb_schema: str
) -> None:
    """A write transaction's UPDATE waits for a row another transaction holds, and
    the task is cancelled: it ends cancelled (so ``asyncio.timeout`` and shutdown
    work), and is not counted or logged as the database being unavailable; nothing
    of it stays, and the next transaction (on a pool of one) reads what is there."""
    user = await backend.new_user()
    async with _database(mariadb_schema, pool_size=1) as db:
        lock_held, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with backend.db.write() as other:
                await other.execute(
                    select(t.users.c.id).where(t.users.c.id == user.id).with_for_update()
                )
                lock_held.set()
                await release.wait()

        disable_user = PreparedWrite(
            update(t.users).where(t.users.c.id == bindparam("id")).values(enabled=False)
        )

        async def disable() -> None:  # as a delivery writes: straight through the driver
            async with db.write() as conn:
                await db.execute(conn, disable_user, {"id": user.id})

        holding = asyncio.create_task(hold())
        try:
            await lock_held.wait()
            failures = Changes()
            waiting = asyncio.create_task(disable())
            await asyncio.sleep(0.3)  # the UPDATE waits for the row
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert _outages(failures, "write") == 0
            release.set()
            await holding
            assert await _enabled(db, user.id) == {user.id: True}
        finally:
            release.set()
            await holding
