"""Faults in the cluster of ``tests/integration/test_galera.py``: a Galera node
killed during deliveries through both LightMail nodes, each LightMail node on a
Galera node's own address, or on a database address that fails over (a local
HAProxy in front of all three Galera nodes, the layout docs/cluster.md
recommends).

The killed node is started again before the test ends (it rejoins and waits
until ``Synced``), so that later tests find the session's cluster whole.
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import time
from collections import Counter
from pathlib import Path

import asyncmy

from tests.integration.test_galera import (
    Node,
    galera_database,
    message,
    new_user,
    two_nodes,
)
from tests.support.galera import GaleraCluster, GaleraNode, database_url
from tests.support.haproxy import failover
from tests.support.metrics import Changes
from tests.support.redis import ONE_WORKER
from tests.support.s3server import S3Server

pytestmark = ONE_WORKER

__all__ = ["galera_database"]

_RETRIES = 20  # attempts of the test's MTA at a message that got 4xx
_OUTCOMES = ("committed", "rolled_back", "unknown")  # of lightmail_db_lost_commits_total

log = logging.getLogger(__name__)


def deliver_each(
    port: int, address: str, indexes: range, accepted: dict[int, bool] | None = None
) -> dict[int, bool]:
    """Deliver each message in a transaction of its own, as an MTA does; whether
    each got 250 (else a 4xx, or a connection that failed: the MTA tries again),
    filled into ``accepted`` as they end when one is given."""
    accepted = {} if accepted is None else accepted
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


async def hold_commits(node: GaleraNode) -> asyncmy.Connection:
    """Make COMMITs on ``node`` wait, as mariabackup does (``BACKUP STAGE
    BLOCK_COMMIT``; on Galera it also pauses the node's replication), until one
    has waited for a tenth of a second; the connection returned holds them."""
    conn = await asyncmy.connect(host="127.0.0.1", port=node.port, user="root")
    committing: set[int] = set()
    states: list[str] = []
    try:
        async with conn.cursor() as cursor:
            await cursor.execute("BACKUP STAGE START")
            await cursor.execute("BACKUP STAGE BLOCK_COMMIT")
            for _ in range(100):
                await cursor.execute("SELECT ID, STATE, INFO FROM information_schema.PROCESSLIST")
                rows = await cursor.fetchall()
                states = [f"{state}: {info}" for _, state, info in rows]
                waiting = {id_ for id_, _, info in rows if info == "COMMIT"}
                if waiting & committing:
                    return conn
                committing = waiting
                await asyncio.sleep(0.1)
    except BaseException:
        conn.close()
        raise
    conn.close()
    raise AssertionError(f"no COMMIT waits on node {node.index}: {states}")


async def deliveries_during_a_kill(
    a: Node, b: Node, address: str, victim: GaleraNode, *, at_commit: bool = False
) -> dict[int, tuple[int, bool]]:
    """Deliveries in two streams through each of A and B, Galera node ``victim``
    killed once a tenth of them have ended (``at_commit``: once COMMITs wait on it, so
    that their replies are lost): for each message, the LMTP port it was sent to
    and whether it got 250."""
    per_stream, streams = 40, 2  # per node
    batches = [
        (node.lmtp_port, range(start, start + per_stream))
        for start, node in zip(
            range(0, 2 * streams * per_stream, per_stream), [a, b] * streams, strict=True
        )
    ]
    ended: list[dict[int, bool]] = [{} for _ in batches]
    running = [
        asyncio.create_task(asyncio.to_thread(deliver_each, port, address, indexes, outcomes))
        for (port, indexes), outcomes in zip(batches, ended, strict=True)
    ]
    # Deliveries under way on both nodes: a tenth of them ended, most to come.
    deadline = time.monotonic() + 30
    while sum(map(len, ended)) < len(batches) * per_stream // 10:
        assert time.monotonic() < deadline, "the deliveries did not get under way"
        await asyncio.sleep(0.05)
    holder = await hold_commits(victim) if at_commit else None
    assert victim.process is not None
    victim.process.kill()
    if holder is not None:
        holder.close()
    results: dict[int, tuple[int, bool]] = {}
    for (port, _), outcome in zip(batches, await asyncio.gather(*running), strict=True):
        results.update({index: (port, ok) for index, ok in outcome.items()})
    return results


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
            results = await deliveries_during_a_kill(a, b, user.address, victim)
            acknowledged = {index for index, (_, ok) in results.items() if ok}
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
        galera_cluster.restart(victim)  # rejoins (state transfer) and waits until Synced


async def test_through_a_database_address_that_fails_over_each_message_is_stored_once(
    galera_cluster: GaleraCluster, galera_database: str, s3_server: S3Server, tmp_path: Path
) -> None:
    """A and B each on a database address of its own, a local HAProxy whose
    active server is Galera node 2 (backups: node 1 then 3 for A, node 3 then 1
    for B); node 2 killed during deliveries through both, once a COMMIT waits
    on it, so that the reply to at least one is lost. Each message that got 250
    is there once, and so is each that got 4xx and was sent again through the
    same node, as an MTA does: the lost COMMIT was looked up on a live node,
    which told whether it had committed (``lightmail_db_lost_commits_total``
    has no outcome "unknown")."""
    first, victim, third = galera_cluster.nodes
    routes = {
        "a": [victim.port, first.port, third.port],
        "b": [victim.port, third.port, first.port],
    }
    changes = Changes()
    try:
        async with failover(tmp_path, routes) as fronts:
            urls = (
                database_url(fronts["a"], galera_database),
                database_url(fronts["b"], galera_database),
            )
            async with two_nodes(
                galera_cluster, galera_database, s3_server, tmp_path, urls=urls
            ) as (a, b):
                user = await new_user(a)
                results = await deliveries_during_a_kill(a, b, user.address, victim, at_commit=True)
                failed = sorted(index for index, (_, ok) in results.items() if not ok)
                for index in failed:
                    await asyncio.to_thread(retry, results[index][0], user.address, index)
                # Node 2 is still down: each node delivers at once through its backup.
                after = {
                    port: len(results) + offset
                    for offset, port in enumerate([a.lmtp_port, b.lmtp_port])
                }
                for port, index in after.items():
                    once = range(index, index + 1)
                    assert (await asyncio.to_thread(deliver_each, port, user.address, once))[index]
                counts = await stored(b, user.id)
        lost = {
            outcome: changes("lightmail_db_lost_commits_total", outcome=outcome)
            for outcome in _OUTCOMES
        }
        log.info("4xx: %d of %d; lost commits: %s", len(failed), len(results), lost)
        assert lost["committed"] + lost["rolled_back"] >= 1, lost  # a COMMIT waited at the kill
        assert lost["unknown"] == 0, lost
        assert counts == Counter([*results, *after.values()]), "not each message exactly once"
    finally:
        galera_cluster.restart(victim)  # rejoins (state transfer) and waits until Synced
