"""The Alembic migrations build exactly the schema that tables.py declares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from lightmail.accounts.service import Accounts
from lightmail.errors import TemporaryFailure
from lightmail.mailstore.store import MailStore, StoreMode
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.db.engine import Database
from lightmail.storage.db.tables import metadata
from tests.conftest import Backend, open_blobs


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_declared_tables(backend: Backend) -> None:
    assert await backend.db.current_revision() == Database.head_revision()
    async with backend.db.read() as conn:
        assert await conn.run_sync(_differences) == []


def _tables_without_primary_key(connection: Connection) -> list[str]:
    inspector = inspect(connection)
    return [
        name
        for name in inspector.get_table_names()
        if not inspector.get_pk_constraint(name)["constrained_columns"]
    ]


async def test_every_migrated_table_has_a_primary_key(backend: Backend) -> None:
    """Galera replicates row changes by primary key: a table without one (Alembic's
    own ``alembic_version`` included) breaks or slows replication on a cluster."""
    async with backend.db.read() as conn:
        assert "alembic_version" in await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert await conn.run_sync(_tables_without_primary_key) == []


async def test_an_unreachable_database_is_a_temporary_failure() -> None:
    db = Database("mysql+asyncmy://root@127.0.0.1:9/test", connect_timeout=2)
    try:
        with pytest.raises(TemporaryFailure, match="database unavailable"):
            await db.check_schema()
    finally:
        await db.close()


def _migrate(connection: Connection, revision: str) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", "lightmail.storage.db:migrations")
    config.attributes["connection"] = connection
    if revision == "head":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


@asynccontextmanager
async def _own_store(
    own_storage: tuple[str, dict[str, Any]],
) -> AsyncIterator[tuple[Database, MailStore]]:
    """A mailstore on a database of the test's own, at the head revision."""
    url, spec = own_storage
    db = Database(url)
    await db.upgrade()
    blobs = open_blobs(spec)
    try:
        yield db, MailStore(db, blobs, InProcessNotificationBus())
    finally:
        await blobs.close()
        await db.close()


async def _message(store: MailStore, user_id: int, mailbox: str, *flags: str) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"Subject: hi\r\n\r\nHi.\r\n"

    await store.append(user_id, mailbox, source(), flags=flags)


async def test_mailbox_keywords_migration_fills_the_set_from_live_messages(
    own_storage: tuple[str, dict[str, Any]],
) -> None:
    async with _own_store(own_storage) as (db, store):
        accounts = Accounts(store)
        await accounts.add_domain("migrate.example")
        user = await accounts.add_user("kw@migrate.example", "secret")
        await _message(store, user.id, "INBOX", "b", "\\Seen", "a")
        await _message(store, user.id, "INBOX", "c", "a")
        await _message(store, user.id, "Archive", "z")
        await _message(store, user.id, "INBOX", "gone")
        inbox = await store.get_mailbox(user.id, "INBOX")
        await store.store_flags(user.id, inbox, [3], StoreMode.ADD, ["\\Deleted"])
        await store.expunge(user.id, inbox)
        # Back to the schema before the keyword sets, and up again.
        async with db.write() as conn:
            await conn.run_sync(_migrate, "0005")
        async with db.write() as conn:
            await conn.run_sync(_migrate, "head")
        assert (await store.get_mailbox(user.id, "INBOX")).keywords == ("a", "b", "c")
        assert (await store.get_mailbox(user.id, "Archive")).keywords == ("z",)
        assert (await store.get_mailbox(user.id, "Trash")).keywords == ()
        async with db.read() as conn:
            assert await conn.run_sync(_differences) == []


async def test_purged_modseq_migration_starts_existing_mailboxes_at_their_highestmodseq(
    own_storage: tuple[str, dict[str, Any]],
) -> None:
    """Rows purged before the upgrade were not counted: a client state from before it
    must not be answered from the rows (RFC 7162 section 3.2.6)."""
    async with _own_store(own_storage) as (db, store):
        accounts = Accounts(store)
        await accounts.add_domain("purged.example")
        user = await accounts.add_user("qr@purged.example", "secret")
        await _message(store, user.id, "INBOX")
        inbox = await store.get_mailbox(user.id, "INBOX")
        assert (await store.expunged_since(inbox, 1)).complete
        async with db.write() as conn:
            await conn.run_sync(_migrate, "0007")
        async with db.write() as conn:
            await conn.run_sync(_migrate, "head")
        assert not (await store.expunged_since(inbox, inbox.highestmodseq - 1)).complete
        assert (await store.expunged_since(inbox, inbox.highestmodseq)).complete
        async with db.read() as conn:
            assert await conn.run_sync(_differences) == []
