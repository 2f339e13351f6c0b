"""Migration tests' parts: a store on a database of the test's own, with one user,
and a round trip down to an older schema revision and up again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from lightmail.accounts.service import Accounts, User
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.db.engine import Database
from tests.conftest import open_blobs


@asynccontextmanager
async def store_with_user(
    own_storage: tuple[str, dict[str, Any]],
) -> AsyncIterator[tuple[MailStore, User]]:
    """A store at the newest schema on ``own_storage``, and a new user of it."""
    url, spec = own_storage
    db = Database(url)
    blobs = open_blobs(spec)
    try:
        await db.upgrade()
        store = MailStore(db, blobs, InProcessNotificationBus())
        accounts = Accounts(store)
        domain = f"d{uuid.uuid4().hex[:8]}.example"
        await accounts.add_domain(domain)
        yield store, await accounts.add_user(f"old@{domain}", "secret")
    finally:
        await blobs.close()
        await db.close()


async def down_and_up(db: Database, revision: str) -> None:
    """Downgrade to ``revision``, then upgrade to the head: the migrations after
    ``revision`` run on the rows stored before."""
    async with db.write() as conn:
        await conn.run_sync(_migrate(revision, down=True))
    assert await db.current_revision() == revision
    async with db.write() as conn:
        await conn.run_sync(_migrate("head"))


def _migrate(revision: str, *, down: bool = False) -> Any:
    def run(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", "lightmail.storage.db:migrations")
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    return run
