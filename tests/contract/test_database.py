"""How the database layer reports trouble that is not an outage."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from lightmail.errors import TransactionConflict
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.conftest import Backend


@pytest.mark.parametrize("backend_name", ["mariadb"])
async def test_a_deadlock_is_a_transaction_conflict_not_an_outage(
    backend: Backend, mariadb_schema: str
) -> None:
    """Two transactions lock two rows in opposite orders: MariaDB rolls one back."""
    first, second = await backend.new_user(), await backend.new_user()
    other = Database(mariadb_schema)
    both_hold_one = asyncio.Barrier(2)

    async def lock(db: Database, a: int, b: int) -> None:
        async with db.write() as conn:
            for user_id in (a, b):
                await conn.execute(
                    update(t.users).where(t.users.c.id == user_id).values(enabled=True)
                )
                if user_id == a:
                    await both_hold_one.wait()

    try:
        results = await asyncio.gather(
            lock(backend.db, first.id, second.id),
            lock(other, second.id, first.id),
            return_exceptions=True,
        )
    finally:
        await other.close()
    conflicts = [r for r in results if isinstance(r, TransactionConflict)]
    assert len(conflicts) == 1, results
    assert "1213" in str(conflicts[0])
    assert results.count(None) == 1
