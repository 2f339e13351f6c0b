"""What holds for the whole cluster, not per node: two LightMail nodes on two
Galera nodes sharing SeaweedFS and Redis (``tests/integration/test_galera.py``'s
layout), with their per-user caps and login throttling counted in Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lightmail.clock import utcnow
from lightmail.config import AUTH_DEFAULTS, GcSettings
from lightmail.gc import GarbageCollector
from tests.integration.test_galera import (
    PASSWORD,
    Node,
    galera_database,
    new_user,
    nodes,
    two_nodes,
)
from tests.support.galera import GaleraCluster
from tests.support.lines import Client
from tests.support.metrics import Changes
from tests.support.redis import ONE_WORKER
from tests.support.s3server import S3Server

pytestmark = ONE_WORKER

# The fixtures: the session's Galera cluster, this module's database on it, plain nodes.
__all__ = ["galera_database", "nodes"]

THROTTLED = dataclasses.replace(
    AUTH_DEFAULTS,
    failure_delay=0.0,
    throttle_after=2,
    throttle_delay=30.0,
    throttle_max_delay=60.0,
    cache_ttl=300.0,
)


@pytest.fixture
async def shared_nodes(
    galera_cluster: GaleraCluster, galera_database: str, s3_server: S3Server, tmp_path: Path
) -> AsyncIterator[tuple[Node, Node]]:
    """Nodes A and B, each user capped at 2 IMAP connections and throttled after 2
    failed logins, for the cluster."""
    async with two_nodes(
        galera_cluster,
        galera_database,
        s3_server,
        tmp_path,
        shared=True,
        auth=THROTTLED,
        environ={"LIGHTMAIL_IMAP_MAX_CONNECTIONS_PER_USER": "2"},
    ) as built:
        yield built


async def login(node: Node, address: str, password: str = PASSWORD) -> tuple[Client, bytes]:
    """A connection to ``node`` after LOGIN, and the LOGIN's tagged reply."""
    client = await Client.connect(node.imap_port)
    await client.until(b"* OK")
    reply = await client.command(f'a LOGIN "{address}" "{password}"'.encode(), b"a ")
    return client, reply[-1]


async def test_the_per_user_cap_holds_across_two_nodes(shared_nodes: tuple[Node, Node]) -> None:
    a, b = shared_nodes
    user = await new_user(a)
    clients = []
    try:
        for node in (a, a):
            client, reply = await login(node, user.address)
            clients.append(client)
            assert reply.startswith(b"a OK"), reply
        client, reply = await login(b, user.address)  # 2 on A + 1 on B
        clients.append(client)
        assert reply.startswith(b"a NO [LIMIT]"), reply
        await clients[0].command(b"z LOGOUT", b"z OK")  # one on A ends: its place is free
        client, reply = await login(b, user.address)
        clients.append(client)
        assert reply.startswith(b"a OK"), reply
    finally:
        for client in clients:
            await client.close()


async def test_failed_logins_on_node_a_throttle_the_client_on_node_b(
    shared_nodes: tuple[Node, Node],
) -> None:
    a, b = shared_nodes
    user = await new_user(a)
    changes = Changes()
    for _ in range(2):
        client, reply = await login(a, user.address, "wrong")
        await client.close()
        assert reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply
    # The right password, on the other node, within the delay: refused unchecked.
    client, reply = await login(b, user.address)
    await client.close()
    assert reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply
    assert changes("lightmail_logins_throttled_total", scope="client") == 1


async def test_an_account_disabled_or_deleted_through_node_a_cannot_log_in_on_b_at_once(
    shared_nodes: tuple[Node, Node],
) -> None:
    """Node B remembers the verified password (``[auth] cache_ttl``), yet checks
    the account's row on each login, which Galera has made current for it."""
    a, b = shared_nodes
    for change in ("disable", "delete"):
        user = await new_user(a)
        client, reply = await login(b, user.address)  # B verifies and remembers
        await client.close()
        assert reply.startswith(b"a OK"), reply
        if change == "disable":
            await a.accounts.set_enabled(user.address, False)
        else:
            await a.accounts.delete_user(user.address)
        client, reply = await login(b, user.address)
        await client.close()
        assert reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), (change, reply)


def gc_settings() -> GcSettings:
    return GcSettings(enabled=True, interval=300, batch_size=100, retention=0, orphan_grace=3600)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def orphans(node: Node, count: int) -> set[str]:
    """Blobs written with no row, as a node that dies before its commit leaves."""
    stored = [
        await node.store.store_message(one_chunk(f"Subject: {uuid.uuid4()}\r\n\r\n.\r\n".encode()))
        for _ in range(count)
    ]
    return {message.key for message in stored}


async def blob_keys(node: Node) -> set[str]:
    return {info.key async for page in node.store.blobs.list("eml/") for info in page}


async def test_the_orphan_sweep_runs_on_one_node_when_both_run_the_gc(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    later = utcnow() + timedelta(days=1)  # past the grace

    def clock() -> datetime:
        return later

    collectors = [
        GarbageCollector(node.db, node.store.blobs, gc_settings(), node=name, clock=clock)
        for node, name in ((a, f"a-{uuid.uuid4()}"), (b, f"b-{uuid.uuid4()}"))
    ]
    first = await orphans(a, 3)
    reports = await asyncio.gather(*(collector.run() for collector in collectors))
    # One of them holds the lease and sweeps; the other skips the sweep this round.
    assert sorted(report.orphans_deleted for report in reports) == [0, 3]
    holder, other = collectors if reports[0].orphans_deleted else collectors[::-1]
    assert not first & await blob_keys(a)

    second = await orphans(b, 2)
    assert (await other.run()).orphans_deleted == 0  # still the holder's
    assert (await holder.run()).orphans_deleted == 2  # the holder renews its lease
    assert not second & await blob_keys(a)

    # The holder stops (dies): once its lease has run out, the other node sweeps.
    third = await orphans(a, 1)
    later += timedelta(seconds=gc_settings().interval + 1)
    assert (await other.run()).orphans_deleted == 1
    assert (await holder.run()).orphans_deleted == 0
    assert not third & await blob_keys(b)
