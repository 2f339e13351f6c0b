"""SQLite connections called directly from the event loop, for reading.

aiosqlite runs every call (BEGIN, cursor, execute, fetch, close, ROLLBACK)
on a thread of its own and wakes the loop for each answer: nine thread hops
for a one-statement transaction, which cost more CPU than the statement. A
read on a WAL database does not wait for writers and is answered from the
page cache in microseconds, so the reader pool calls :mod:`sqlite3` directly
through this object, which has the coroutine interface of an aiosqlite
connection that SQLAlchemy's ``sqlite+aiosqlite`` dialect drives
(``create_async_engine(async_creator=...)``). Writers keep aiosqlite's
thread: they may wait for another process's write lock and they fsync.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any


class DirectCursor:
    """An aiosqlite-like cursor over a :class:`sqlite3.Cursor`."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

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
        self._cursor.execute(sql, parameters)
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

    def __init__(self, connection: sqlite3.Connection) -> None:
        # ``_connection`` is what SQLAlchemy's adapter checks before COMMIT and ROLLBACK.
        self._connection: sqlite3.Connection | None = connection

    @classmethod
    def open(cls, path: str, *, busy_timeout: float) -> DirectConnection:
        # isolation_level None: SQLAlchemy's "begin" event issues BEGIN itself.
        connection = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        return cls(connection)

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> DirectCursor:
        """The cursor itself: SQLAlchemy enters it (``async with``) before use."""
        return DirectCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> DirectCursor:
        return DirectCursor(self._conn.execute(sql, parameters))

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close now (SQLAlchemy's terminate; a second call does nothing)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
