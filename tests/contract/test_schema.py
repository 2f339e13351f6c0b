"""The Alembic migrations build exactly the schema that tables.py declares."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from lightmail.errors import TemporaryFailure
from lightmail.storage.db.engine import Database
from lightmail.storage.db.tables import metadata
from tests.conftest import Backend


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_declared_tables(backend: Backend) -> None:
    assert await backend.db.current_revision() == Database.head_revision()
    async with backend.db.read() as conn:
        assert await conn.run_sync(_differences) == []


async def test_an_unreachable_database_is_a_temporary_failure() -> None:
    db = Database("mysql+asyncmy://root@127.0.0.1:9/test", connect_timeout=2)
    try:
        with pytest.raises(TemporaryFailure, match="database unavailable"):
            await db.check_schema()
    finally:
        await db.close()
