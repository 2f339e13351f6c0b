"""``lightmail serve`` nodes killed without warning (SIGKILL). Two nodes on one
database and blob store with one Redis (``[notify] url``): the per-user cap is
the cluster's, and a killed node gives its sessions' places back one
``[notify] lease`` later. A node killed during an APPEND: all or nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lightmail.clock import utcnow
from lightmail.config import load_settings
from lightmail.gc import GarbageCollector
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.conftest import open_blobs
from tests.integration.test_workers import imap_login, new_user
from tests.support.redis import ONE_WORKER, private_redis
from tests.support.serving import Served, serving, storage_env

pytestmark = ONE_WORKER

LEASE = 1.5  # seconds


async def test_a_killed_node_frees_its_sessions_after_the_lease(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    with private_redis(tmp_path) as redis:
        env = {
            **storage_env(*storage),
            "LIGHTMAIL_NOTIFY_URL": redis.url,
            "LIGHTMAIL_NOTIFY_LEASE": f"{LEASE}s",
            "LIGHTMAIL_IMAP_MAX_CONNECTIONS_PER_USER": "1",
        }
        address = await new_user(env)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        # A is one process, so that SIGKILL stops it dead (a supervisor killed alone
        # lets its workers end their sessions); B has a supervisor and two workers.
        with (
            serving(tmp_path / "a", env, "--workers", "1") as a,
            serving(tmp_path / "b", env, "--workers", "2") as b,
        ):
            for node in (a, b):
                node.wait_for("lightmail is running")
            on_a, reply = await imap_login(a.port("imap"), address)
            assert reply.startswith(b"a OK"), reply
            on_b, reply = await imap_login(b.port("imap"), address)
            await on_b.close()
            assert reply.startswith(b"a NO [LIMIT]"), reply

            a.process.send_signal(signal.SIGKILL)  # its session is never ended
            killed = time.monotonic()
            a.process.wait(10)
            await on_a.close()
            on_b, reply = await imap_login(b.port("imap"), address)
            await on_b.close()
            assert reply.startswith(b"a NO [LIMIT]"), reply  # A's place is held for now
            while True:
                on_b, reply = await imap_login(b.port("imap"), address)
                if reply.startswith(b"a OK"):
                    break
                await on_b.close()
                assert time.monotonic() - killed < LEASE + 2, reply
                await asyncio.sleep(0.1)
            assert time.monotonic() - killed >= LEASE * 2 / 3  # renewed a third ago at most
            await on_b.command(b"z LOGOUT", b"z OK")
            await on_b.close()
            assert b.stop() == 0, b.log


# -- a node killed during an APPEND ---------------------------------------------------

BODY = b"From: bob@example.org\r\nSubject: killed\r\n\r\n" + b"0123456789abcdef\r\n" * 12_000


async def append_and_kill(port: int, address: str, node: Served, wait: float | None) -> None:
    """APPEND BODY, then SIGKILL the node: with ``wait`` None halfway through the
    literal, else ``wait`` seconds after the whole of it was sent."""
    client, reply = await imap_login(port, address)
    assert reply.startswith(b"a OK"), reply
    client.writer.write(f"b APPEND INBOX {{{len(BODY)}+}}\r\n".encode())
    client.writer.write(BODY if wait is not None else BODY[: len(BODY) // 2])
    if wait is not None:
        client.writer.write(b"\r\n")
    await client.writer.drain()
    await asyncio.sleep(wait or 0.2)
    node.process.send_signal(signal.SIGKILL)
    node.process.wait(10)
    await client.close()


async def test_a_node_killed_during_an_append_leaves_all_or_nothing(
    own_storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Whatever the moment of the kill, the message is there whole or not at all,
    every ``object_keys`` row has its message, and the blobs left behind are
    orphans the sweep removes."""
    url, spec = own_storage
    env = storage_env(url, spec)
    address = await new_user(env)
    for attempt, wait in enumerate([None, 0.0, 0.005, 0.02, 0.05]):
        (tmp_path / str(attempt)).mkdir()
        with serving(tmp_path / str(attempt), env, "--workers", "1") as node:
            node.wait_for("lightmail is running")
            await append_and_kill(node.port("imap"), address, node, wait)
    db, blobs = Database(url), open_blobs(spec)
    try:
        async with db.read() as conn:
            keys = (await conn.execute(select(t.messages.c.object_key))).scalars().all()
            rows = set((await conn.execute(select(t.object_keys.c.key))).scalars())
        assert len(keys) < 5  # not the one killed halfway through its literal
        assert rows == set(keys)  # no row without its message
        for key in keys:
            assert b"".join([chunk async for chunk in blobs.get(key)]) == BODY
        later = utcnow() + timedelta(days=2)
        settings = load_settings(None, {}).gc
        await GarbageCollector(db, blobs, settings, clock=lambda: later).run()
        assert {info.key async for page in blobs.list("eml/") for info in page} == rows
    finally:
        await blobs.close()
        await db.close()
