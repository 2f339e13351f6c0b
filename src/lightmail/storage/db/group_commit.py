"""Group commit: SQLite write transactions that arrive together share one COMMIT.

SQLite has one writer at a time, and every write transaction pays for BEGIN
IMMEDIATE and COMMIT (an fsync, ``PRAGMA synchronous=FULL``), each a trip to
the writer's thread (:mod:`lightmail.storage.db.direct`). :class:`GroupCommit`
runs the write transactions of a process in *batches*: the first to come
begins a database transaction; it and every write transaction that comes while
the batch runs take their turn in it, one after the other: the first on its
own (if it fails, the database transaction is rolled back and the next one
begins a new batch), each later one inside a SAVEPOINT, so that one that fails
rolls back alone. When nobody is waiting (or the batch is full), one COMMIT
makes the whole batch durable.
Each caller leaves its ``async with`` only after that COMMIT succeeded: a
reply is never sent before its own data is on disk. A COMMIT that fails fails
every member of the batch; a BEGIN that fails fails every transaction waiting.

Alone, a write transaction costs what it always did: BEGIN, its statements,
COMMIT. Under load, N of them share one BEGIN and one COMMIT, for a SAVEPOINT
and its RELEASE each but the first. MySQL/MariaDB run concurrent transactions
in parallel and group their commits themselves: this is for SQLite.

The writer's connection stays checked out between batches: taking it from
SQLAlchemy's pool and giving it back (with the pool's reset) cost a fifth of an
empty write transaction. A batch that fails for another reason than its first
member's own error gives it back, and the next batch takes one afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lightmail.storage.db.direct import sqlite_of

_T = TypeVar("_T")

# The most transactions one COMMIT makes durable: a bound on how long the first
# of a batch waits for its reply while the others run.
MAX_BATCH = 32


def _future() -> asyncio.Future[_T]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class _Turn:
    """One write transaction's place in the queue."""

    # The batch's connection when it is this transaction's turn, and whether it
    # comes after others in the batch (and so runs inside a SAVEPOINT).
    start: asyncio.Future[tuple[AsyncConnection, bool]] = field(default_factory=_future)
    # Set by the transaction when its statements are done: True if they succeeded.
    done: asyncio.Future[bool] = field(default_factory=_future)
    # Set by the batch once its COMMIT returned (or failed).
    committed: asyncio.Future[None] = field(default_factory=_future)

    def took_turn(self) -> bool:
        """Whether the batch handed this transaction the connection."""
        return self.start.done() and not self.start.cancelled() and not self.start.exception()


class _FirstFailed(Exception):
    """The first transaction of a batch failed: the batch is rolled back whole."""


@contextmanager
def _savepoint(conn: AsyncConnection) -> Iterator[None]:
    """A SAVEPOINT on the batch's sqlite3 connection itself: SQLAlchemy's
    ``begin_nested`` costs more CPU than the statements of a delivery."""
    sqlite = sqlite_of(conn)
    sqlite.execute("SAVEPOINT member")
    try:
        yield
    except BaseException:
        sqlite.execute("ROLLBACK TO member")
        sqlite.execute("RELEASE member")
        raise
    sqlite.execute("RELEASE member")


class GroupCommit:
    """The write transactions of one SQLite database in this process."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: deque[_Turn] = deque()
        self._runner: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None  # the writer's, kept between batches

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: commits (with its batch) on success, rolls back on error."""
        turn = _Turn()
        self._queue.append(turn)
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())
        try:
            conn, after_others = await turn.start
        except BaseException:
            if turn.took_turn():  # cancelled just as its turn came: give it back
                turn.done.set_result(False)
            raise
        succeeded = False
        try:
            if after_others:
                with _savepoint(conn):
                    yield conn
            else:
                yield conn
            succeeded = True
        finally:
            turn.done.set_result(succeeded)
        # The COMMIT goes on for the whole batch if this caller is cancelled.
        await asyncio.shield(turn.committed)

    async def close(self) -> None:
        """Wait for the batch that is running, if any; give the connection back."""
        if self._runner is not None:
            await asyncio.shield(self._runner)
        await self._release()

    async def _connection(self) -> AsyncConnection:
        """The writer's connection: the one kept, unless a cancelled batch left it
        in a transaction; else a new one from the pool."""
        if self._conn is not None and self._conn.in_transaction():
            await self._release()
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    async def _release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _run(self) -> None:
        try:
            while self._queue:
                try:
                    await self._batch()
                except _FirstFailed:  # rolled back; the others begin a batch of their own
                    continue
        finally:
            self._runner = None
            for turn in self._queue:  # only when the loop is shutting down
                turn.start.cancel()
            self._queue.clear()

    async def _batch(self) -> None:
        members: list[_Turn] = []
        begun = False
        try:
            conn = await self._connection()
            async with conn.begin():  # BEGIN IMMEDIATE ... COMMIT
                begun = True
                while self._queue and len(members) < self._max_batch:
                    turn = self._queue.popleft()
                    if turn.start.done():  # its caller was cancelled while it waited
                        continue
                    turn.start.set_result((conn, bool(members)))
                    members.append(turn)
                    if not await turn.done:
                        members.pop()
                        if not members:  # the first: no savepoint to roll back to
                            raise _FirstFailed
        except _FirstFailed:
            raise
        except asyncio.CancelledError:  # the loop is stopping
            for turn in members:
                turn.committed.cancel()
            raise
        except Exception as error:
            with contextlib.suppress(Exception):  # it failed already: what it says now is noise
                await self._release()
            # Awaiting one future in several tasks raises the same error in each.
            if begun:  # the COMMIT failed
                for turn in members:
                    turn.committed.set_exception(error)
            else:  # BEGIN failed: as it would have for each of those waiting
                while self._queue:
                    turn = self._queue.popleft()
                    if not turn.start.done():
                        turn.start.set_exception(error)
        else:
            for turn in members:
                turn.committed.set_result(None)
