"""Database engines for SQLite (embedded default) and MySQL/MariaDB (production).

Every transaction that may write goes through :meth:`Database.write`. On SQLite
that transaction begins with ``BEGIN IMMEDIATE``, which takes the write lock
up front: a deferred transaction that reads ``uidnext`` and then writes can
interleave with another and hand out the same UID twice. Reads go through
:meth:`Database.read` and do not wait for writers (WAL).

Every transaction is timed, and counted when it fails on a database error
(``lightmail_db_transaction_*`` in :mod:`lightmail.metrics`, kind read or write).

A database that is down is logged once when it goes ("database unavailable
since ...") and once when it is back ("database back after N s"); in between
each failed transaction is one line with its cause, and its traceback is
logged at DEBUG only. A write whose connection fails during COMMIT raises
:class:`~lightmail.errors.CommitOutcomeUnknown`: it may have been committed.

On a MariaDB Galera cluster two nodes that change the same row (a mailbox's
UIDNEXT and HIGHESTMODSEQ) in concurrent transactions cannot both commit:
certification rolls one back with error 1213 (deadlock), at COMMIT or at any
statement before it. :meth:`Database.transact` runs a
transaction body again after such a rollback, a bounded number of times with a
random pause, which is how every mail-changing transaction is written. Each
connection to a Galera node also sets ``wsrep_sync_wait`` (``[database]``), so
that what another node committed before a read began is seen by that read: a
session told of a change over the Redis bus reads the change itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_only

from lightmail.errors import CommitOutcomeUnknown, TemporaryFailure, TransactionConflict
from lightmail.metrics import (
    DB_TRANSACTION_FAILURES,
    DB_TRANSACTION_RETRIES,
    DB_TRANSACTION_SECONDS,
    labelled,
)
from lightmail.storage.db.direct import DirectConnection, sqlite_of
from lightmail.storage.db.group_commit import GroupCommit
from lightmail.storage.db.mysql_direct import MysqlReads, transaction_execute, transaction_rows
from lightmail.storage.db.prepared import (
    DirectForm,
    Params,
    PreparedRead,
    PreparedWrite,
    Rows,
    SqliteReads,
)

log = logging.getLogger(__name__)

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",  # a delivery is acknowledged only once it is durable
    "PRAGMA foreign_keys=ON",
)

# Errors that mean "the database is not reachable or not answering now".
_UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)
# MySQL/MariaDB: ER_LOCK_WAIT_TIMEOUT and ER_LOCK_DEADLOCK, which roll the
# transaction back (the server is fine; another transaction held the rows).
_LOCK_WAIT_TIMEOUT, _DEADLOCK = 1205, 1213
_CONFLICT_CODES = frozenset({_LOCK_WAIT_TIMEOUT, _DEADLOCK})
# The pause before the first retry of a transaction rolled back by a conflict,
# doubled for each further one up to the cap; each pause is a random part of
# that (full jitter), so that writers that collided do not collide again.
_RETRY_PAUSE, _RETRY_PAUSE_CAP = 0.005, 0.25

_T = TypeVar("_T")

_POOL_TIMEOUT = 30.0  # seconds a MySQL read waits for a free connection (SQLAlchemy's default)
_PING_AFTER_IDLE = 1.0  # seconds a pooled MySQL connection rests before it is pinged
_IDLE_SINCE = "lightmail_idle_since"  # in a pooled connection's record.info


def _error_code(error: exc.OperationalError) -> object:
    args: tuple[object, ...] = getattr(error.orig, "args", ())
    return args[0] if args else None


def _cause(error: exc.SQLAlchemyError) -> str:
    """The driver's error in one line, e.g. ``(2013, 'Lost connection ...')``."""
    orig = getattr(error, "orig", None)
    text = str(orig) if orig is not None else str(error).split("\n", 1)[0]
    return f"{type(orig or error).__name__}: {text}"


class _Outage:
    """Whether the database is down now, so an outage is logged as one pair of lines."""

    def __init__(self) -> None:
        self._since: float | None = None  # time.monotonic() of the first failure

    def failed(self, kind: str, error: exc.SQLAlchemyError, *, committing: bool) -> None:
        what = f"{kind} transaction failed{' at COMMIT' if committing else ''}"
        if self._since is None:
            self._since = time.monotonic()
            since = datetime.now(UTC).isoformat(timespec="seconds")
            log.warning("database unavailable since %s: %s: %s", since, what, _cause(error))
        else:
            log.info("database unavailable: %s: %s", what, _cause(error))
        log.debug("database %s", what, exc_info=error)

    def succeeded(self) -> None:
        if self._since is not None:
            log.warning("database back after %.1f s", time.monotonic() - self._since)
            self._since = None


class _PoolNoise(logging.Filter):
    """SQLAlchemy's pool logs every connection it could not reset or close as an
    ERROR with a traceback. When the cause is a database that went away, the
    transaction's own failure was logged already: this becomes one DEBUG line."""

    def __init__(self) -> None:
        super().__init__()
        self.causes: tuple[type[BaseException], ...] = (OSError,)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None or not isinstance(error, self.causes):
            return True
        log.debug("connection pool: %s: %r", record.getMessage(), error, exc_info=record.exc_info)
        return False


_POOL_NOISE = _PoolNoise()
for _pool in ("AsyncAdaptedQueuePool", "QueuePool", "NullPool", "StaticPool"):
    logging.getLogger(f"sqlalchemy.pool.impl.{_pool}").addFilter(_POOL_NOISE)


class SchemaOutdated(Exception):
    """The database schema is not the one this version of LightMail needs."""


def describe_url(url: str) -> str:
    """The database URL with any password masked, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", "lightmail.storage.db:migrations")
    return config


class Database:
    """The connection pools of one database, for reading and for writing.

    ``busy_timeout`` (SQLite, seconds): how long a write transaction waits for
    the write lock while another process (another worker, the CLI) holds it.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 10.0,
        commit_check_timeout: float = 30.0,
        max_retries: int = 8,
        wsrep_sync_wait: int = 1,
        busy_timeout: float = 30.0,
    ) -> None:
        parsed = make_url(url)
        # How often transact() runs a body again after a conflict rolled it back.
        self.max_retries = max_retries
        # After a COMMIT's reply was lost: how long the mailstore keeps trying
        # to read whether it was committed before it gives up ([database]).
        self.commit_check_timeout = commit_check_timeout
        self.dialect = "sqlite" if parsed.get_backend_name() == "sqlite" else "mysql"
        self.description = describe_url(url)
        self._outage = _Outage()
        if self.dialect == "sqlite":
            path = parsed.database or ""

            async def reader() -> DirectConnection:
                return DirectConnection.open(path, busy_timeout=busy_timeout, writer=False)

            async def writer() -> DirectConnection:
                return DirectConnection.open(path, busy_timeout=busy_timeout, writer=True)

            # sqlite3 called from the loop, a writer's waits on a thread of its own
            # (lightmail.storage.db.direct).
            self._reader = create_async_engine(
                parsed, pool_size=pool_size, max_overflow=0, async_creator=reader
            )
            # One writer connection per process, which the group commit keeps
            # checked out: every write transaction goes through it (write()).
            self._writer = create_async_engine(
                parsed, pool_size=1, max_overflow=0, pool_timeout=60, async_creator=writer
            )
            for engine, begin in ((self._reader, "BEGIN"), (self._writer, "BEGIN IMMEDIATE")):
                _configure_sqlite(engine, begin)
            # Write transactions that come together share one COMMIT (its fsync).
            self._group: GroupCommit | None = GroupCommit(self._writer)
            # Database.query's reads, without SQLAlchemy per call.
            self._reads: SqliteReads | MysqlReads = SqliteReads(
                path, self._reader.dialect, busy_timeout=connect_timeout
            )
        else:
            query = dict(parsed.query)
            query.setdefault("charset", "utf8mb4")
            self._reader = create_async_engine(
                parsed.set(query=query),
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_recycle=3600,
                pool_reset_on_return=None,  # _reset_open_transactions does it
                isolation_level="READ COMMITTED",
                connect_args={"connect_timeout": int(connect_timeout)},
            )
            self._writer = self._reader
            self._group = None  # the server groups concurrent commits itself
            self._reads = MysqlReads(
                parsed.set(query=query),
                self._reader.dialect,
                pool_size=pool_size,
                connect_timeout=connect_timeout,
                pool_timeout=_POOL_TIMEOUT,
                wsrep_sync_wait=wsrep_sync_wait,
            )
            _configure_galera(self._reader, wsrep_sync_wait)
            _ping_when_idle(self._reader)
            _reset_open_transactions(self._reader)
        dbapi_error = self._reader.dialect.loaded_dbapi.Error
        if not issubclass(dbapi_error, _POOL_NOISE.causes):
            _POOL_NOISE.causes += (dbapi_error,)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that may write; commits on success, rolls back on error.

        On SQLite it may share its COMMIT with others (:mod:`.group_commit`); it
        returns only once its own changes are committed either way.
        """
        begin = self._writer.begin if self._group is None else self._group.transaction
        async with self._transaction(begin, "write") as conn:
            yield conn

    async def transact(self, body: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``body`` in a :meth:`write` transaction and return what it returns.

        When a deadlock rolls the transaction back (error 1213: on a Galera
        cluster, another node committed a change to the same rows first), the
        body runs again in a new transaction, after a random pause, up to
        ``max_retries`` times; then the conflict is raised, a temporary
        failure. ``body`` must therefore do nothing but SQL on ``conn``, and
        build its result afresh on each run: a blob is written before and an
        event published after. A lock wait timeout (1205) is not retried: it
        has already kept the client waiting for ``innodb_lock_wait_timeout``.
        """
        retries = 0
        while True:
            try:
                async with self.write() as conn:
                    return await body(conn)
            except TransactionConflict as error:
                if not error.retryable or retries >= self.max_retries:
                    raise
            retries += 1
            DB_TRANSACTION_RETRIES.inc()
            ceiling = min(_RETRY_PAUSE * 2 ** (retries - 1), _RETRY_PAUSE_CAP)
            await asyncio.sleep(random.uniform(0, ceiling))  # noqa: S311 (not for security)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reading: it never waits for writers.

        On SQLite (WAL) it reads one snapshot; on MySQL/MariaDB (READ
        COMMITTED) each statement sees what was committed when it ran.
        """
        async with self._transaction(self._reader.begin, "read") as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(
        self, begin: Callable[[], AbstractAsyncContextManager[AsyncConnection]], kind: str
    ) -> AsyncIterator[AsyncConnection]:
        start = time.perf_counter()
        committing = False  # the body is done: leaving the block commits
        try:
            async with begin() as conn:
                yield conn
                committing = True
        except _UNAVAILABLE as error:
            raise self._unavailable(error, kind, committing=committing) from error
        except exc.SQLAlchemyError:
            labelled(DB_TRANSACTION_FAILURES, kind, "error").inc()
            raise
        else:
            self._outage.succeeded()
        finally:
            labelled(DB_TRANSACTION_SECONDS, kind).observe(time.perf_counter() - start)

    def _unavailable(self, error: exc.SQLAlchemyError, kind: str, *, committing: bool) -> Exception:
        """What a transaction that failed on an unreachable database raises."""
        code = _error_code(error) if isinstance(error, exc.OperationalError) else None
        if isinstance(error, exc.OperationalError) and code in _CONFLICT_CODES:
            labelled(DB_TRANSACTION_FAILURES, kind, "conflict").inc()
            log.info("database transaction conflict, rolled back: %s", error.orig)
            return TransactionConflict(
                f"database transaction conflict: {error.orig}", retryable=code == _DEADLOCK
            )
        labelled(DB_TRANSACTION_FAILURES, kind, "unavailable").inc()
        self._outage.failed(kind, error, committing=committing)
        if committing and kind == "write":
            return CommitOutcomeUnknown(
                f"database connection lost during COMMIT ({self.description})"
            )
        return TemporaryFailure(f"database unavailable ({self.description})")

    async def query(self, body: Callable[[Rows], _T]) -> _T:
        """``body`` in a read transaction: it runs :class:`PreparedRead` statements
        with the :class:`Rows` it is given and gets plain tuples
        (:mod:`lightmail.storage.db.prepared`). It must not block or await; on
        SQLite it runs in the loop's thread, on MySQL/MariaDB in a greenlet on a
        connection of :mod:`lightmail.storage.db.mysql_direct`, neither through
        SQLAlchemy."""
        start = time.perf_counter()
        try:
            reads = self._reads
            if isinstance(reads, MysqlReads):
                result: _T = await reads.run(body)
            else:
                result = reads.run(body)
        except sqlite3.OperationalError as error:
            wrapped = exc.OperationalError("query", None, error)
            raise self._unavailable(wrapped, "read", committing=False) from error
        except _UNAVAILABLE as error:
            raise self._unavailable(error, "read", committing=False) from error
        except (sqlite3.Error, exc.SQLAlchemyError):
            labelled(DB_TRANSACTION_FAILURES, "read", "error").inc()
            raise
        else:
            self._outage.succeeded()
        finally:
            labelled(DB_TRANSACTION_SECONDS, "read").observe(time.perf_counter() - start)
        return result

    async def fetch(self, read: PreparedRead, params: Params) -> list[tuple[Any, ...]]:
        """The rows of one :class:`PreparedRead` (see :meth:`query`)."""
        return await self.query(lambda rows: rows(read, params))

    async def rows(
        self, conn: AsyncConnection, read: PreparedRead, params: Params
    ) -> list[tuple[Any, ...]]:
        """The rows of ``read`` in ``conn``'s transaction (a :meth:`write`), as plain
        tuples, straight through the driver on the transaction's connection."""
        form = read.form(self._writer.dialect)
        if self.dialect == "mysql":
            return await transaction_rows(conn, form, params)
        return self._direct(conn, form, params, lambda sqlite: form.run(sqlite, params))

    async def execute(
        self, conn: AsyncConnection, write: PreparedWrite, params: Params | Sequence[Params]
    ) -> int:
        """Run ``write`` in ``conn``'s transaction (a :meth:`write`), once or once per
        parameter set; the rows it changed (on MySQL/MariaDB: the rows it matched).
        Straight through the driver on the transaction's connection."""
        form = write.form(self._writer.dialect)
        if self.dialect == "mysql":
            return await transaction_execute(conn, form, params)
        if isinstance(params, Mapping):
            one = params
            return self._direct(conn, form, one, lambda sqlite: form.execute(sqlite, one).rowcount)
        return self._direct(
            conn, form, {}, lambda sqlite: form.execute_many(sqlite, params).rowcount
        )

    @staticmethod
    def _direct(
        conn: AsyncConnection,
        form: DirectForm,
        params: Params,
        call: Callable[[sqlite3.Connection], _T],
    ) -> _T:
        """``call`` on the sqlite3 connection under ``conn``; its errors as SQLAlchemy's."""
        try:
            return call(sqlite_of(conn))
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(
                form.sql, dict(params), error, sqlite3.Error, hide_parameters=True
            ) from error

    async def upgrade(self) -> str:
        """Bring the schema to the newest revision; return that revision."""
        async with self.write() as conn:
            await conn.run_sync(_upgrade)
        return self.head_revision()

    async def current_revision(self) -> str | None:
        async with self._transaction(self._reader.begin, "read") as conn:
            return await conn.run_sync(_current_revision)

    @staticmethod
    def head_revision() -> str:
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        if head is None:
            raise RuntimeError("the migrations folder has no revisions")
        return head

    async def check_schema(self) -> None:
        """Raise :class:`SchemaOutdated` unless the schema is at the newest revision."""
        current, head = await self.current_revision(), self.head_revision()
        if current != head:
            raise SchemaOutdated(
                f"the database schema is at revision {current or 'none'} but this version "
                f"of LightMail needs {head}: run `lightmail db upgrade`"
            )

    async def close(self) -> None:
        if isinstance(self._reads, MysqlReads):
            await self._reads.close()
        else:
            self._reads.close()
        if self._group is not None:
            await self._group.close()
        await self._reader.dispose()
        if self._writer is not self._reader:
            await self._writer.dispose()


def _configure_sqlite(engine: AsyncEngine, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The connection has no isolation level (DirectConnection.open): SQLAlchemy's
        # "begin" event issues BEGIN itself.
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: through exec_driver_sql, a BEGIN cost about an
        # eighth of an empty write transaction's CPU.
        direct = conn.connection.driver_connection
        if not isinstance(direct, DirectConnection):
            raise TypeError(f"not a direct SQLite connection: {direct!r}")
        try:
            await_only(direct.start(begin))
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(begin, {}, error, sqlite3.Error) from error


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only when it has been idle for
    :data:`_PING_AFTER_IDLE` seconds: a dead one is then replaced before a
    client's statement fails on it.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout, a round trip that
    cost a third of the database time of a read (NOOP, STATUS) on MariaDB. A
    connection in steady use needs none: when one does fail (the server
    restarted under load), SQLAlchemy invalidates the whole pool, so only the
    statement that found out fails, with a temporary error.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < _PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool replaces the connection (it tries three times).
            raise exc.DisconnectionError(f"idle connection failed its ping: {error}") from error


def _reset_open_transactions(engine: AsyncEngine) -> None:
    """Roll back a connection given back to the pool only if its transaction is open.

    SQLAlchemy's pool rolls back every connection given back to it, also one
    whose transaction was just committed: a round trip in each write
    transaction (a delivery, an APPEND, a STORE) on MySQL/MariaDB. The server
    says in the status flags of each reply whether a transaction is open, so
    a ROLLBACK is sent only then. (A connection whose statement was cancelled
    mid-way never comes back: asyncmy refuses it from then on, so the
    transaction's own ROLLBACK fails and SQLAlchemy drops it.)"""

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
        if state.terminate_only or not state.asyncio_safe:
            return  # the connection is being closed, or collected outside the loop
        if record.driver_connection.get_transaction_status():
            dbapi_connection.rollback()


def _configure_galera(engine: AsyncEngine, sync_wait: int) -> None:
    """On a Galera node, set ``wsrep_sync_wait`` for each new connection.

    Galera applies other nodes' transactions asynchronously: without it, a read
    just after another node's COMMIT may not see it yet (measured: 7 to 17 reads
    in 500). Other MariaDB and MySQL servers are left alone.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
        row = cursor.fetchone()
        if row is not None and str(row[1]).upper() == "ON":
            cursor.execute(f"SET SESSION wsrep_sync_wait = {int(sync_wait)}")
        cursor.close()


def _upgrade(connection: Connection) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
