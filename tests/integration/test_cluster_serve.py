"""Two ``lightmail serve`` nodes on one database and blob store with one Redis
(``[notify] url``): the per-user cap is the cluster's, and a node killed without
warning gives its sessions' places back one ``[notify] lease`` later."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from tests.integration.test_workers import imap_login, new_user
from tests.support.redis import private_redis
from tests.support.serving import serving, storage_env

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
