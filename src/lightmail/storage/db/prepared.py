"""Hot statements without SQLAlchemy's per-call work: :meth:`Database.query`,
:meth:`Database.rows` and :meth:`Database.execute`.

A read through :meth:`Database.read` costs a pool checkout, a greenlet per
call, the ``begin`` event, the compiled-cache lookup, ``Row`` objects and the
pool's reset: on SQLite several times what the statement itself takes. The
reads every IMAP command makes (the selected mailbox's row, its listing, the
unclaimed ``\\Recent`` UIDs, STATUS's counts, FETCH's cached parse), the
account a LOGIN reads and the recipient an LMTP RCPT resolves are
:class:`PreparedRead` objects built once at import. On SQLite they are
compiled once (:class:`SqliteReads`) and run with :mod:`sqlite3` on one
read-only connection in the loop's thread, as the readers of
:mod:`lightmail.storage.db.direct` are: a read on a WAL database never waits
for writers. A body of several reads runs synchronously between BEGIN and
COMMIT, so it sees one snapshot and no other task runs in between. On
MySQL/MariaDB the same body runs in a greenlet on a connection of
:mod:`lightmail.storage.db.mysql_direct`, its statements compiled once too.

Either way a read answers plain tuples, with the values SQLAlchemy's result
types would give (its result processors are applied: a SQLite DATETIME comes
back as a ``datetime``).

The statements every delivery and APPEND runs inside its write transaction
(reserve UIDs, insert the message, check the quota) are :class:`PreparedRead`
and :class:`PreparedWrite` objects too: on SQLite they run with :mod:`sqlite3`
on the transaction's own connection (the writer, which holds the write lock
since BEGIN IMMEDIATE, so no statement waits), between SQLAlchemy's BEGIN and
COMMIT; on MySQL/MariaDB with asyncmy on the transaction's connection.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Delete, Insert, Select, Update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Params = Mapping[str, Any]
Processor = Callable[[Any], Any] | None


class _Prepared(ABC):
    """A statement built once (at import) and compiled once per dialect."""

    __slots__ = ("_forms",)

    def __init__(self) -> None:
        self._forms: dict[str, DirectForm] = {}

    def form(self, dialect: Dialect) -> DirectForm:
        form = self._forms.get(dialect.name)
        if form is None:
            form = self._forms[dialect.name] = DirectForm(self._compile(dialect), dialect)
        return form

    @abstractmethod
    def _compile(self, dialect: Dialect) -> SQLCompiler:
        """The statement compiled for ``dialect``."""


class PreparedRead(_Prepared):
    """A SELECT built once (at import), compiled once per dialect."""

    __slots__ = ("statement",)

    def __init__(self, statement: Select[Any]) -> None:
        super().__init__()
        self.statement = statement

    def _compile(self, dialect: Dialect) -> SQLCompiler:
        return self.statement.compile(dialect=dialect)


class PreparedWrite(_Prepared):
    """An INSERT, UPDATE or DELETE built once (at import), compiled once per
    dialect for the parameters ``keys`` (an INSERT's columns).

    Every call passes the same keys. A column that would take a Python-side
    default (``Column(default=...)``) must be among them: the direct path does
    not compute defaults, so compiling one that needs it fails at first use.
    """

    __slots__ = ("keys", "statement")

    def __init__(
        self, statement: Insert | Update | Delete, keys: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        self.statement = statement
        self.keys = keys

    def _compile(self, dialect: Dialect) -> SQLCompiler:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
        missing = [column.key for column in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        if missing:
            raise ValueError(
                f"{self.statement}: give {', '.join(missing)} (defaults are not applied)"
            )
        return compiled


class Rows(Protocol):
    """Runs one :class:`PreparedRead` inside a :meth:`Database.query` body."""

    def __call__(self, read: PreparedRead, params: Params) -> list[tuple[Any, ...]]: ...


class DirectForm:
    """A statement's SQL for the DB-API driver (sqlite3, asyncmy), its parameters'
    order and value processors."""

    __slots__ = ("_compiled", "_converted", "_defaults", "_names", "_sql", "_to_sql")

    def __init__(self, compiled: SQLCompiler, dialect: Dialect) -> None:
        self._compiled = compiled
        # An expanding IN list is rendered per call (construct_expanded_state).
        expands = bool(compiled.post_compile_params or compiled.literal_execute_params)
        self._sql = None if expands else compiled.string
        self._names: Sequence[str] = tuple(compiled.positiontup or ())
        # The values of the statement's own literals (``coalesce(..., 0)``).
        self._defaults = compiled.construct_params(_check=False)
        self._to_sql: Mapping[str, Any] = compiled._bind_processors
        results: list[Processor] = [
            column.type._cached_result_processor(dialect, None)
            for column in compiled._result_columns
        ]
        # The columns whose values SQLAlchemy converts (a DATETIME's text), by position.
        self._converted = [(i, p) for i, p in enumerate(results) if p is not None]

    def run(self, connection: sqlite3.Connection, params: Params) -> list[tuple[Any, ...]]:
        return self.converted(self.execute(connection, params).fetchall())

    def converted(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The driver's rows with the values SQLAlchemy's result types would give."""
        if not self._converted:
            return list(rows)
        out: list[tuple[Any, ...]] = []
        for row in rows:
            converted = list(row)
            for index, process in self._converted:
                converted[index] = process(converted[index])
            out.append(tuple(converted))
        return out

    def execute_many(
        self, connection: sqlite3.Connection, many: Sequence[Params]
    ) -> sqlite3.Cursor:
        """The statement once per parameter set, in one call."""
        return connection.executemany(*self.bound_many(many))

    def bound_many(self, many: Sequence[Params]) -> tuple[str, list[list[Any]]]:
        """The SQL and the positional parameters of each set (no expanding IN list)."""
        if self._sql is None:
            raise ValueError("execute_many of a statement with an expanding parameter")
        return self._sql, [
            _bound(self._names, {**self._defaults, **params}, self._to_sql) for params in many
        ]

    def execute(self, connection: sqlite3.Connection, params: Params) -> sqlite3.Cursor:
        return connection.execute(*self.bound(params))

    def bound(self, params: Params) -> tuple[str, list[Any]]:
        """The SQL for ``params`` (an expanding IN list rendered) and its positional
        parameters, each through its bind processor."""
        if self._sql is not None:
            values = {**self._defaults, **params}
            return self._sql, _bound(self._names, values, self._to_sql)
        state = self._compiled.construct_expanded_state(dict(params), escape_names=False)
        return state.statement, _bound(state.positiontup or (), state.parameters, state.processors)

    @property
    def sql(self) -> str:
        """The statement's SQL, for error messages."""
        return self._compiled.string


def _bound(names: Sequence[str], values: Mapping[str, Any], to_sql: Mapping[str, Any]) -> list[Any]:
    """The positional parameters of a statement, each through its bind processor."""
    return [
        values[name] if (convert := to_sql.get(name)) is None else convert(values[name])
        for name in names
    ]


class SqliteReads:
    """The one read-only sqlite3 connection :meth:`Database.query` uses, opened at
    first use and again after an error."""

    def __init__(self, path: str, dialect: Dialect, *, busy_timeout: float) -> None:
        self._path = path
        self._dialect = dialect
        self._busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None

    def run(self, body: Callable[[Rows], Any]) -> Any:
        """``body`` in one read transaction (one snapshot), synchronously."""
        connection = self._connection
        if connection is None:
            connection = self._open()
        dialect = self._dialect

        def rows(read: PreparedRead, params: Params) -> list[tuple[Any, ...]]:
            return read.form(dialect).run(connection, params)

        try:
            connection.execute("BEGIN")
            try:
                return body(rows)
            finally:
                connection.execute("COMMIT")  # a read: nothing to make durable
        except sqlite3.Error:
            self.close()  # a fresh connection for the next read
            raise

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,  # BEGIN and COMMIT are ours
            check_same_thread=False,
        )
        connection.execute("PRAGMA query_only=ON")
        self._connection = connection
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
