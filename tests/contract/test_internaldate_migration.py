"""Migration 0006 adds the INTERNALDATE zone: rows stored before it get offset 0,
so they keep the instant and render in UTC as they did."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from lightmail.accounts.service import Accounts
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.db.engine import Database
from tests.conftest import open_blobs

MESSAGE = b"From: a@example.org\r\nSubject: old\r\n\r\nbody\r\n"


def _migrate(revision: str, *, down: bool = False) -> Any:
    def run(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", "lightmail.storage.db:migrations")
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    return run


async def test_rows_stored_before_0006_keep_their_instant_in_utc(
    own_storage: tuple[str, dict[str, Any]],
) -> None:
    url, spec = own_storage
    db = Database(url)
    blobs = open_blobs(spec)
    try:
        await db.upgrade()
        store = MailStore(db, blobs, InProcessNotificationBus())
        accounts = Accounts(store)
        domain = f"d{uuid.uuid4().hex[:8]}.example"
        await accounts.add_domain(domain)
        user = await accounts.add_user(f"old@{domain}", "secret")

        async def one() -> AsyncIterator[bytes]:
            yield MESSAGE

        given = datetime(1996, 7, 16, 20, 0, tzinfo=timezone(timedelta(hours=-7)))
        await store.append(user.id, "INBOX", one(), internaldate=given)
        async with db.write() as conn:
            await conn.run_sync(_migrate("0005", down=True))
        assert await db.current_revision() == "0005"
        async with db.write() as conn:
            await conn.run_sync(_migrate("head"))  # 0006 and what follows it

        (info,) = await store.list_messages(await store.get_mailbox(user.id, "INBOX"))
        assert info.internaldate == given
        assert info.internaldate.utcoffset() == timedelta(0)
        assert info.internaldate == datetime(1996, 7, 17, 3, 0, tzinfo=UTC)
    finally:
        await blobs.close()
        await db.close()
