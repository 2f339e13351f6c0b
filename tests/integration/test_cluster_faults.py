"""Faults in the cluster of ``tests/integration/test_galera.py``: a Galera node
killed during deliveries through both LightMail nodes.

The killed node is started again before the test ends (it rejoins and waits
until ``Synced``), so that later tests find the session's cluster whole.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import time
from collections import Counter
from pathlib import Path

from tests.integration.test_galera import (
    Node,
    galera_database,
    message,
    new_user,
    two_nodes,
)
from tests.support.galera import GaleraCluster, galera_cluster
from tests.support.metrics import Changes
from tests.support.redis import ONE_WORKER
from tests.support.s3server import S3Server

pytestmark = ONE_WORKER

__all__ = ["galera_cluster", "galera_database"]

_RETRIES = 20  # attempts of the test's MTA at a message that got 4xx


def deliver_each(port: int, address: str, indexes: range) -> dict[int, bool]:
    """Deliver each message in a transaction of its own, as an MTA does; whether
    each got 250 (else a 4xx, or a connection that failed: the MTA tries again)."""
    accepted: dict[int, bool] = {}
    permanent: list[smtplib.SMTPRecipientsRefused] = []  # never for a database outage
    client: smtplib.LMTP | None = None
    for index in indexes:
        try:
            if client is None:
                client = smtplib.LMTP("127.0.0.1", port, timeout=30)
            refused = client.sendmail("mta@example.org", [address], message(index))
            accepted[index] = refused == {}
        except (smtplib.SMTPException, OSError) as error:
            accepted[index] = False
            if isinstance(error, smtplib.SMTPRecipientsRefused) and any(
                code >= 500 for code, _ in error.recipients.values()
            ):
                permanent.append(error)
            if client is not None:
                try:
                    client.close()
                finally:
                    client = None
    if client is not None:
        client.close()
    assert not permanent, permanent
    return accepted


def retry(port: int, address: str, index: int) -> None:
    """The MTA's retries of one message, until it gets a 250."""
    for _ in range(_RETRIES):
        if deliver_each(port, address, range(index, index + 1))[index]:
            return
        time.sleep(0.5)
    raise AssertionError(f"message {index} never got a 250")


async def stored(node: Node, user_id: int) -> Counter[int]:
    """How many times each message index is in the user's INBOX."""
    inbox = await node.store.get_mailbox(user_id, "INBOX")
    infos = await node.store.list_messages(inbox)
    metas = await node.store.fetch_meta(inbox, [info.uid for info in infos])
    return Counter(int(re.findall(rb"<(\d+)@galera", meta.header)[0]) for meta in metas)


async def test_a_galera_node_killed_during_deliveries_loses_nothing_acknowledged(
    galera_cluster: GaleraCluster, galera_database: str, s3_server: S3Server, tmp_path: Path
) -> None:
    """Deliveries through A (Galera node 1) and B (Galera node 2) while node 2 is
    killed: each message that got 250 is there once; the others are sent again
    through A, as an MTA would (through the balancer), and are there once, or
    twice only if a COMMIT's reply was lost with node 2 and nobody could tell
    whether it had committed (``lightmail_db_lost_commits_total{outcome="unknown"}``,
    which a database address that fails over avoids: docs/cluster.md)."""
    victim = galera_cluster.nodes[1]
    changes = Changes()
    try:
        async with two_nodes(galera_cluster, galera_database, s3_server, tmp_path) as (a, b):
            user = await new_user(a)
            per_stream, streams = 40, 2  # per node
            batches = [
                (node.lmtp_port, range(start, start + per_stream))
                for start, node in zip(
                    range(0, 2 * streams * per_stream, per_stream), [a, b] * streams, strict=True
                )
            ]
            running = [
                asyncio.create_task(asyncio.to_thread(deliver_each, port, user.address, indexes))
                for port, indexes in batches
            ]
            await asyncio.sleep(1.0)  # deliveries under way on both nodes
            assert victim.process is not None
            victim.process.kill()
            results: dict[int, bool] = {}
            for outcome in await asyncio.gather(*running):
                results.update(outcome)
            acknowledged = {index for index, ok in results.items() if ok}
            failed = sorted(set(results) - acknowledged)
            assert failed, "node 2 was killed after every delivery had ended"
            assert acknowledged, "nothing was delivered"
            for index in failed:
                await asyncio.to_thread(retry, a.lmtp_port, user.address, index)

            counts = await stored(a, user.id)
            assert set(counts) == set(results)
            assert {index for index in acknowledged if counts[index] != 1} == set()
            doubled = sum(counts[index] - 1 for index in failed)
            unknown = changes("lightmail_db_lost_commits_total", outcome="unknown")
            assert doubled <= unknown, (doubled, unknown)
    finally:
        victim.stop()
        victim.start()  # rejoins (state transfer) and waits until Synced
