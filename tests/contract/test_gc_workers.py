"""The garbage collector under load: two workers at once, and a `gc run` killed mid-way.

Both tests make thousands of soft-deleted messages with ``tests.support.gcdata``
(real blobs, bulk-inserted rows), some of whose blobs live messages of another
user share, and check that the collector purges every deleted one exactly once
and never takes a live message's data.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from lightmail.accounts.service import Accounts, User
from lightmail.clock import utcnow
from lightmail.config import GcSettings
from lightmail.errors import NotFound
from lightmail.gc import CLAIM_LEASE, GarbageCollector, GcReport
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import MESSAGE_PREFIX, BlobStore, FileSystemBlobStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.conftest import open_blobs
from tests.support.gcdata import add_messages, create_deleted_messages

DAY = timedelta(days=1)


def gc_settings(batch_size: int) -> GcSettings:
    return GcSettings(
        enabled=True,
        interval=300,
        batch_size=batch_size,
        retention=0,
        orphan_grace=DAY.total_seconds(),
    )


@dataclass
class Store:
    db: Database
    blobs: BlobStore
    store: MailStore
    accounts: Accounts

    @classmethod
    async def open(cls, url: str, blobs: BlobStore) -> Store:
        db = Database(url)
        await db.upgrade()
        store = MailStore(db, blobs, InProcessNotificationBus())
        return cls(db, blobs, store, Accounts(store))

    async def close(self) -> None:
        await self.blobs.close()
        await self.db.close()

    async def users(self, count: int) -> list[User]:
        domain = f"d{uuid.uuid4().hex[:8]}.example"
        await self.accounts.add_domain(domain)
        return [await self.accounts.add_user(f"u{n}@{domain}", "secret") for n in range(count)]

    async def count(self, table: Any, *where: Any) -> int:
        async with self.db.read() as conn:
            query = select(func.count()).select_from(table).where(*where)
            return int((await conn.execute(query)).scalar_one())

    async def blob_keys(self) -> set[str]:
        return {info.key async for page in self.blobs.list(MESSAGE_PREFIX) for info in page}

    async def inbox(self, user: User) -> dict[str, bytes]:
        """The user's live INBOX, read back whole: blob key -> content."""
        infos = await self.store.list_messages(await self.store.get_mailbox(user.id, "INBOX"))

        async def read(key: str) -> bytes:
            return b"".join([chunk async for chunk in self.blobs.get(key)])

        contents = await asyncio.gather(*(read(info.object_key) for info in infos))
        return dict(zip((info.object_key for info in infos), contents, strict=True))

    async def keys_without_messages(self) -> int:
        return await self.count(
            t.object_keys, t.object_keys.c.key.not_in(select(t.messages.c.object_key))
        )


# -- two workers on MariaDB + S3 -----------------------------------------------------


@pytest.fixture
async def mariadb_store(own_storage: tuple[str, dict[str, Any]]) -> AsyncIterator[Store]:
    url, spec = own_storage
    opened = await Store.open(url, open_blobs(spec))
    try:
        yield opened
    finally:
        await opened.close()


def failure(error: BaseException) -> str:
    """The database's own error behind a TemporaryFailure (a deadlock, say)."""
    return repr(error.__cause__ or error)


@pytest.mark.parametrize("backend_name", ["mariadb"])
async def test_two_workers_purge_10000_messages_once_between_them(
    mariadb_store: Store, own_storage: tuple[str, dict[str, Any]]
) -> None:
    env = mariadb_store
    alice, bob = await env.users(2)
    # 4 rows a blob; rows i and i + 2,500 share one, so the workers' batches share blobs.
    data = await create_deleted_messages(
        env.store, alice.id, alice.address, 10_000, blobs=2_500, deleted_at=utcnow()
    )
    shared = list(data.blobs)[::10]  # 250 blobs that live copies in bob's INBOX keep
    await add_messages(env.store, data.template, bob.id, shared, data.blobs)
    url, spec = own_storage
    nodes = [(Database(url), open_blobs(spec)) for _ in range(2)]  # two nodes: own pools
    try:
        a, b = (
            GarbageCollector(db, blobs, gc_settings(batch_size=100), node=name)
            for (db, blobs), name in zip(nodes, "ab", strict=True)
        )
        # Both run to their end, even if one fails, before their pools close.
        results = await asyncio.gather(a.run(), b.run(), return_exceptions=True)
    finally:
        for db, blobs in nodes:
            await blobs.close()
            await db.close()

    first, second = results
    assert isinstance(first, GcReport), failure(first)
    assert isinstance(second, GcReport), failure(second)
    assert (first.error, second.error) == (None, None)
    assert first.messages_purged + second.messages_purged == 10_000
    assert first.messages_purged > 0
    assert second.messages_purged > 0
    # A blob is deleted, and counted, by each worker that checks it once all its rows
    # are claimed: surely the one that claimed the last of them, and maybe the other
    # too, whose batch holds some of its rows. So the sum is at least the number of
    # blobs freed (all but the shared ones), and may be more.
    assert first.blobs_deleted + second.blobs_deleted >= len(data.blobs) - len(shared)
    assert await env.count(t.messages, t.messages.c.deleted_at.is_not(None)) == 0
    assert await env.count(t.messages) == len(shared)
    assert await env.keys_without_messages() == 0
    assert await env.count(t.object_keys) == len(shared)
    assert await env.blob_keys() == set(shared)
    assert await env.inbox(bob) == {key: data.blobs[key] for key in shared}


# -- `lightmail gc run` killed with SIGKILL, on SQLite + filesystem ----------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(
        f"sqlite+aiosqlite:///{tmp_path}/gc.db", FileSystemBlobStore(tmp_path / "blobs")
    )
    try:
        yield opened
    finally:
        await opened.close()


def gc_run_env(tmp_path: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LIGHTMAIL_")}
    env.update(
        {
            "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
            "LIGHTMAIL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gc.db",
            "LIGHTMAIL_BLOBS_URL": f"file:{tmp_path / 'blobs'}",
            "LIGHTMAIL_GC_RETENTION": "0s",
            "LIGHTMAIL_GC_BATCH_SIZE": "50",
        }
    )
    return env


async def deleted_ids(env: Store, user: User, *, claimed: bool) -> set[int]:
    m = t.messages.c
    claim = m.purge_claimed_until.is_not(None) if claimed else m.purge_claimed_until.is_(None)
    async with env.db.read() as conn:
        query = select(m.id).where(m.user_id == user.id, m.deleted_at.is_not(None), claim)
        return set((await conn.execute(query)).scalars())


async def restorable(env: Store, user: User) -> set[int]:
    """Every id ``list_deleted`` offers the user, page by page."""
    found: set[int] = set()
    after = 0
    while page := await env.store.list_deleted(user.id, after_id=after, limit=500):
        found |= {item.id for item in page}
        after = page[-1].id
    return found


async def wait_for_progress(
    env: Store, user: User, before: int, process: asyncio.subprocess.Process
) -> None:
    """Until the run has claimed a batch (or has ended): the kill then lands mid-purge."""
    m = t.messages.c
    unclaimed = (m.user_id == user.id, m.deleted_at.is_not(None), m.purge_claimed_until.is_(None))
    async with asyncio.timeout(60):
        while process.returncode is None:
            if await env.count(t.messages, *unclaimed) < before:
                return
            await asyncio.sleep(0.01)


async def test_gc_run_killed_at_random_moments_loses_nothing_and_leaves_nothing(
    sqlite_store: Store, tmp_path: Path
) -> None:
    env = sqlite_store
    alice, bob = await env.users(2)
    data = await create_deleted_messages(
        env.store, alice.id, alice.address, 3_000, blobs=1_000, deleted_at=utcnow()
    )
    shared = list(data.blobs)[::7]  # 143 blobs that live copies in bob's INBOX keep
    await add_messages(env.store, data.template, bob.id, shared, data.blobs)
    live = await env.inbox(bob)
    assert live == {key: data.blobs[key] for key in shared}
    log = tmp_path / "gc-run.log"
    rng = random.Random(8)
    kills = 0

    for _ in range(5):
        before = len(await deleted_ids(env, alice, claimed=False))
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "lightmail", "gc", "run", "--once"),
                env=gc_run_env(tmp_path),
                cwd=tmp_path,  # no ./config.ini of the caller's
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        await wait_for_progress(env, alice, before, process)
        # A whole run takes well under a second on an idle machine (60 batches of
        # about 10 ms): kill within a few batches, so that at least three kills land.
        await asyncio.sleep(rng.uniform(0.0, 0.1))
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        code = await process.wait()
        assert code in (0, -signal.SIGKILL), log.read_text()
        # Whatever the kill left: every live message is whole, nothing claimed is offered.
        assert await env.inbox(bob) == live
        assert await restorable(env, alice) == await deleted_ids(env, alice, claimed=False)
        if code == 0:
            break
    assert kills >= 3, f"the run ended before 3 kills: {log.read_text()}"

    # A kill that landed between two batches leaves nothing claimed; one inside a
    # batch leaves claimed rows, which are never restorable (test_gc.py checks
    # that at every step deterministically).
    for message_id in sorted(await deleted_ids(env, alice, claimed=True))[:1]:
        with pytest.raises(NotFound):
            await env.store.restore(alice.id, message_id)
    # One not yet claimed can still be restored, and then survives.
    unclaimed = sorted(await deleted_ids(env, alice, claimed=False))
    restored: dict[str, bytes] = {}
    for message_id in unclaimed[:1]:
        await env.store.restore(alice.id, message_id)
        restored = await env.inbox(alice)
    later = utcnow() + CLAIM_LEASE + timedelta(seconds=1)  # the killed runs' claims ran out
    report = await GarbageCollector(
        env.db, env.blobs, gc_settings(batch_size=50), clock=lambda: later
    ).run()

    assert report.error is None
    assert await env.inbox(bob) == live
    assert await env.inbox(alice) == restored
    assert len(restored) == min(len(unclaimed), 1)
    assert all(data.blobs[key] == content for key, content in restored.items())
    assert await env.count(t.messages, t.messages.c.deleted_at.is_not(None)) == 0
    assert await env.blob_keys() == set(live) | set(restored)
    assert await env.keys_without_messages() == 0
    assert await env.count(t.object_keys) == len(set(live) | set(restored))
