"""SQLite connections called directly from the event loop, but for what may wait.

aiosqlite runs every call (BEGIN, cursor, execute, fetch, close, ROLLBACK)
on a thread of its own and wakes the loop for each answer: nine thread hops
for a one-statement transaction, which cost more CPU than the statement.
:class:`DirectConnection` has the coroutine interface of an aiosqlite
connection that SQLAlchemy's ``sqlite+aiosqlite`` dialect drives
(``create_async_engine(async_creator=...)``) and calls :mod:`sqlite3` in the
loop's thread, as a read on a WAL database never waits for writers and is
answered from the page cache. A writer's connection (``blocking`` given) runs
on that executor's thread only the calls that may wait: COMMIT (the fsync),
PRAGMA; once BEGIN IMMEDIATE holds the write lock, its statements do not wait.

BEGIN runs in the loop's thread with the busy timeout off: when no other
process holds the write lock it takes it at once. When another does (another
worker, the CLI), it is tried again every millisecond until the busy timeout.
SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries: with
two workers delivering, a writer that found the lock taken waited 10-11 ms
on average that way, and 5 ms tried every millisecond.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection

_T = TypeVar("_T")
_BLOCKING = ("BEGIN", "COMMIT", "PRAGMA")  # statements that may wait (case as SQLAlchemy sends)
# Between tries of a BEGIN that found the write lock taken; uvloop's timers count
# whole milliseconds, so a shorter pause would be none.
_BEGIN_RETRY = 0.001


class DirectCursor:
    """An aiosqlite-like cursor over a :class:`sqlite3.Cursor`."""

    def __init__(self, cursor: sqlite3.Cursor, owner: DirectConnection) -> None:
        self._cursor = cursor
        self._owner = owner

    async def __aenter__(self) -> DirectCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> DirectCursor:
        if not self._owner.may_wait(sql):
            self._cursor.execute(sql, parameters)
        elif sql.startswith("BEGIN"):
            await self._owner.begin(self._cursor, sql, parameters)
        else:
            await self._owner.blocking(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> DirectCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class DirectConnection:
    """An aiosqlite-like connection over a :class:`sqlite3.Connection`, no thread."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        busy_timeout: float,
        blocking: ThreadPoolExecutor | None = None,
    ) -> None:
        # ``_connection`` is what SQLAlchemy's adapter checks before COMMIT and ROLLBACK.
        self._connection: sqlite3.Connection | None = connection
        self._busy_timeout = busy_timeout  # seconds, as given to sqlite3.connect
        self._executor = blocking
        self._last: Future[Any] | None = None  # the last call given to the writer's thread

    @classmethod
    def open(cls, path: str, *, busy_timeout: float, writer: bool) -> DirectConnection:
        """A connection; a writer's gets a thread of its own for what may wait."""
        # isolation_level None: SQLAlchemy's "begin" event issues BEGIN itself
        # (pysqlite would otherwise begin deferred transactions behind its back).
        connection = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer") if writer else None
        return cls(connection, busy_timeout, executor)

    def may_wait(self, sql: str) -> bool:
        return self._executor is not None and sql.lstrip().upper().startswith(_BLOCKING)

    async def blocking(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call(*args)`` on the writer's thread (in the loop's for a reader)."""
        if self._executor is None:
            return call(*args)
        future = self._last = self._executor.submit(call, *args)
        return await asyncio.wrap_future(future)

    async def start(self, sql: str) -> None:
        """Run ``sql``, a BEGIN: as :meth:`begin` for a writer, at once for a reader
        (a read transaction waits for no one)."""
        cursor = self._conn.cursor()
        try:
            if self._executor is None:
                cursor.execute(sql)
            else:
                await self.begin(cursor, sql, ())
        finally:
            cursor.close()

    async def begin(self, cursor: sqlite3.Cursor, sql: str, parameters: Sequence[Any]) -> None:
        """Run a BEGIN without blocking the loop (see the module's docstring): at
        once, or tried again every :data:`_BEGIN_RETRY` while another process holds
        the write lock, until the busy timeout; then it fails as SQLite does
        ("database is locked"). While the writer's thread still runs a call (of a
        transaction that was cancelled: the connection is in use there), the
        BEGIN waits its turn on that thread instead."""
        if self._last is not None and not self._last.done():
            await self.blocking(cursor.execute, sql, parameters)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout
        # Polled: the lock is another process's, and nothing tells its release.
        while not self._begun(cursor, sql, parameters, last=loop.time() >= deadline):  # noqa: ASYNC110
            await asyncio.sleep(_BEGIN_RETRY)

    def _begun(
        self, cursor: sqlite3.Cursor, sql: str, parameters: Sequence[Any], *, last: bool
    ) -> bool:
        """Run the BEGIN with the busy timeout off; False if another process holds
        the write lock, unless this is the ``last`` try: then its error."""
        connection = self._conn
        connection.execute("PRAGMA busy_timeout=0")
        try:
            cursor.execute(sql, parameters)
        except sqlite3.OperationalError as error:
            if last or error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            return False
        finally:
            connection.execute(f"PRAGMA busy_timeout={round(self._busy_timeout * 1000)}")
        return True

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection, for statements run without SQLAlchemy inside a
        transaction SQLAlchemy began (:meth:`Database.execute`)."""
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> DirectCursor:
        """The cursor itself: SQLAlchemy enters it (``async with``) before use."""
        return DirectCursor(self._conn.cursor(), self)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> DirectCursor:
        return await self.cursor().execute(sql, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        await self.blocking(self._conn.commit)

    async def rollback(self) -> None:
        # Outside a transaction (after every COMMIT: the pool's reset) this does
        # nothing. Inside one, a writer's thread may still be running a call of
        # a cancelled transaction: the ROLLBACK queues behind it there, as do
        # the closes below, so the loop never waits for the connection's lock.
        if self._conn.in_transaction:
            await self.blocking(self._conn.rollback)

    async def close(self) -> None:
        if self._connection is not None:
            await self.blocking(self._connection.close)
            self._connection = None
        self._release_thread()

    def stop(self) -> None:
        """Close without waiting (SQLAlchemy's terminate); a second call does nothing."""
        if self._connection is not None:
            if self._executor is None:
                self._connection.close()
            else:
                self._executor.submit(self._connection.close)
            self._connection = None
        self._release_thread()

    def _release_thread(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def sqlite_of(conn: AsyncConnection) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLAlchemy connection of a SQLite :class:`Database
    <lightmail.storage.db.engine.Database>`, for statements run inside the
    transaction SQLAlchemy began."""
    if conn.sync_connection is None:
        raise exc.ResourceClosedError("the transaction's connection is closed")
    direct = conn.sync_connection.connection.driver_connection
    if not isinstance(direct, DirectConnection):
        raise TypeError(f"not a direct SQLite connection: {direct!r}")
    return direct.sqlite
