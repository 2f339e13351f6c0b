""":meth:`Database.query`, :meth:`Database.rows` and :meth:`Database.execute` on
MySQL/MariaDB without SQLAlchemy's per-call work.

A read through SQLAlchemy's ``AsyncEngine`` on asyncmy cost about 470 us of
CPU (pool checkout, ``begin``, the compiled-cache lookup, ``Row`` objects,
COMMIT and the pool's reset: two round trips) where asyncmy itself needs
about 65 us for the same SELECT (measured on MariaDB 10.11, loopback). The
reads every IMAP command makes are :class:`~.prepared.PreparedRead` objects;
here each is compiled once for the dialect (:class:`~.prepared.DirectForm`,
the result processors SQLAlchemy would apply included) and run on a pool of
asyncmy connections of its own in autocommit mode: one round trip per
statement, and each statement sees what was committed when it ran, as the
READ COMMITTED transactions of :meth:`Database.read` do.

A query body is synchronous (it runs between two awaits on SQLite); here it
runs in a greenlet, as SQLAlchemy's own ``run_sync`` does, and each statement
awaits asyncmy inside it.

Inside a write transaction (:meth:`Database.rows`, :meth:`Database.execute`)
the prepared statements run the same way on the transaction's own asyncmy
connection (:func:`transaction_rows`, :func:`transaction_execute`), between
SQLAlchemy's BEGIN and COMMIT.

A pooled connection the server has closed (a restart, ``wait_timeout``) is
dropped by the pool when it sees the close; one it has not seen yet fails its
statement, and the body runs once more on a new connection: a read changes
nothing, so running it again is safe. On a Galera node each new connection
gets ``wsrep_sync_wait`` first, as :meth:`Database.read`'s do.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncmy
from asyncmy.errors import Error, InterfaceError, OperationalError
from sqlalchemy import exc
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import await_only, greenlet_spawn

from lightmail.storage.db.prepared import DirectForm, Params, PreparedRead, Rows

_T = TypeVar("_T")

# MySQL client errors of a connection that is gone: 2006 server has gone away,
# 2013 lost connection during query, 2055 lost connection (system error).
_GONE = frozenset({2006, 2013, 2055})


class MysqlReads:
    """The connections :meth:`Database.query` uses on MySQL/MariaDB, opened as needed."""

    def __init__(
        self,
        url: URL,
        dialect: Dialect,
        *,
        pool_size: int,
        connect_timeout: float,
        pool_timeout: float,
        wsrep_sync_wait: int,
    ) -> None:
        _, options = dialect.create_connect_args(url)
        self._options = {
            **options,
            "autocommit": True,
            "connect_timeout": connect_timeout,
        }
        self._dialect = dialect
        self._pool_size = pool_size
        self._pool_timeout = pool_timeout
        self._sync_wait = wsrep_sync_wait
        self._pool: Any = None  # asyncmy.Pool, created in the loop at first use
        self._ready: weakref.WeakSet[Any] = weakref.WeakSet()  # connections set up

    async def run(self, body: Callable[[Rows], _T]) -> _T:
        """``body`` with :class:`Rows` on one pooled connection; its errors as
        SQLAlchemy's (an unreachable server is ``exc.OperationalError``)."""
        try:
            return await self._attempt(body)
        except (OperationalError, InterfaceError) as error:
            if not _gone(error):
                raise _wrapped(error) from error
        with contextlib.suppress(Error, OSError):  # closing what is already gone
            await self._pool.clear()  # the others may be as stale as the one that failed
        try:
            return await self._attempt(body)
        except Error as error:
            raise _wrapped(error) from error

    async def _attempt(self, body: Callable[[Rows], _T]) -> _T:
        pool = await self._opened()
        try:
            async with asyncio.timeout(self._pool_timeout):
                connection = await pool.acquire()
        except TimeoutError:
            raise exc.TimeoutError(
                f"no free read connection within {self._pool_timeout:g} s"
            ) from None
        except Error as error:
            raise _wrapped(error) from error
        try:
            if connection not in self._ready:
                await self._set_up(connection)
            dialect = self._dialect

            def rows(read: PreparedRead, params: Params) -> list[tuple[Any, ...]]:
                return await_only(_fetch(connection.cursor(), read.form(dialect), params))

            result: _T = await greenlet_spawn(body, rows)
        except Error as error:
            connection.close()  # the pool drops a closed connection
            if isinstance(error, OperationalError | InterfaceError) and _gone(error):
                raise
            raise _wrapped(error) from error
        except BaseException:
            connection.close()  # cancelled mid-statement: its reply may still come
            raise
        finally:
            pool.release(connection)
        return result

    async def _opened(self) -> Any:
        if self._pool is None:
            self._pool = await asyncmy.create_pool(
                minsize=0, maxsize=self._pool_size, pool_recycle=3600, **self._options
            )
        return self._pool

    async def _set_up(self, connection: Any) -> None:
        """On a Galera node, ``wsrep_sync_wait`` (see ``engine._configure_galera``)."""
        async with connection.cursor() as cursor:
            await cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
            row = await cursor.fetchone()
            if row is not None and str(row[1]).upper() == "ON":
                await cursor.execute(f"SET SESSION wsrep_sync_wait = {int(self._sync_wait)}")
        self._ready.add(connection)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None


async def transaction_rows(
    conn: AsyncConnection, form: DirectForm, params: Params
) -> list[tuple[Any, ...]]:
    """The rows of ``form`` on the asyncmy connection of ``conn``'s transaction."""
    async with _on_transaction(conn) as driver:
        return await _fetch(driver.cursor(), form, params)


async def transaction_execute(
    conn: AsyncConnection, form: DirectForm, params: Params | Sequence[Params]
) -> int:
    """Run ``form`` once, or once per parameter set, on the asyncmy connection of
    ``conn``'s transaction; the rows it matched."""
    async with _on_transaction(conn) as driver:
        cursor = driver.cursor()
        try:
            if isinstance(params, Mapping):
                await cursor.execute(*form.bound(params))
            else:
                await cursor.executemany(*form.bound_many(params))
            return int(cursor.rowcount)
        finally:
            await cursor.close()


@asynccontextmanager
async def _on_transaction(conn: AsyncConnection) -> AsyncIterator[Any]:
    """The asyncmy connection of ``conn``'s transaction; its errors as SQLAlchemy's
    (a deadlock keeps its error code).

    A statement cancelled mid-way invalidates the connection, as SQLAlchemy does
    for a statement of its own: asyncmy refuses such a connection from then on
    (the statement's reply may still come), so the transaction's ROLLBACK would
    fail and the cancellation would end as the database being unavailable."""
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None:
        raise exc.ResourceClosedError("the transaction's connection is closed")
    try:
        yield driver
    except Error as error:
        raise _wrapped(error) from error
    except asyncio.CancelledError:
        await conn.invalidate()
        raise


async def _fetch(cursor: Any, form: DirectForm, params: Params) -> list[tuple[Any, ...]]:
    """``form``'s rows for ``params`` on ``cursor``, which it closes."""
    try:
        await cursor.execute(*form.bound(params))
        return form.converted(await cursor.fetchall())
    finally:
        await cursor.close()


def _gone(error: OperationalError | InterfaceError) -> bool:
    """Whether ``error`` says the connection is gone (not that a statement failed)."""
    code = error.args[0] if error.args and isinstance(error.args[0], int) else None
    return code in _GONE or isinstance(error, InterfaceError)


def _wrapped(error: Exception) -> exc.StatementError:
    """``error`` as the SQLAlchemy exception :meth:`Database.read` would raise."""
    return exc.DBAPIError.instance(None, None, error, Error, hide_parameters=True)
