"""Two LightMail nodes on a 3-node MariaDB Galera cluster, sharing SeaweedFS and Redis.

Each node here is what ``lightmail serve`` builds, in this process: its own
database pool on a Galera node of its own, its own Redis bus, and IMAP and LMTP
servers on free ports; both share the session's SeaweedFS and the machine's
Redis. The schema is made by ``lightmail db upgrade`` run on one Galera node.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from lightmail.accounts.service import Accounts, User
from lightmail.auth.throttle import InProcessLoginThrottle
from lightmail.cluster import ClusterState
from lightmail.config import AUTH_DEFAULTS, AuthSettings, TcpAddress, load_settings
from lightmail.imap.server import ImapServer
from lightmail.lmtp.server import LmtpServer
from lightmail.mailstore.store import MailStore
from lightmail.notify.redis import RedisNotificationBus
from lightmail.storage.blobs import BlobStore
from lightmail.storage.db.engine import Database
from tests.conftest import open_blobs
from tests.integration.test_notify_redis import notify_settings
from tests.support.galera import GaleraCluster
from tests.support.lines import Client
from tests.support.metrics import Changes
from tests.support.redis import ONE_WORKER, require_shared_redis
from tests.support.s3server import S3Server

pytestmark = ONE_WORKER


PASSWORD = "secret"
_UNTHROTTLED = dataclasses.replace(AUTH_DEFAULTS, failure_delay=0.0, throttle_after=1000)


@pytest.fixture(scope="module")
def galera_database(galera_cluster: GaleraCluster) -> str:
    """A database on the cluster, migrated by ``lightmail db upgrade`` on node 1 only."""
    name = f"lightmail_{uuid.uuid4().hex[:10]}"
    first = galera_cluster.nodes[0]
    first.query(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    environ = {**os.environ, "LIGHTMAIL_DATABASE_URL": first.url(name)}
    environ.pop("LIGHTMAIL_CONFIG", None)
    subprocess.run(
        [sys.executable, "-m", "lightmail", "db", "upgrade"],
        env=environ,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return name


class Node:
    """One LightMail node on one Galera node: IMAP and LMTP servers on free ports."""

    def __init__(
        self,
        url: str,
        blobs: BlobStore,
        bus: RedisNotificationBus,
        data: Path,
        *,
        cluster: ClusterState | None = None,
        auth: AuthSettings = _UNTHROTTLED,
        environ: dict[str, str] | None = None,
    ) -> None:
        """With ``cluster``, the per-user caps and the login throttling are the
        cluster's (``[notify] url``)."""
        self.db = Database(url)
        self.store = MailStore(self.db, blobs, bus)
        throttle = None if cluster is None else cluster.throttle(auth, InProcessLoginThrottle(auth))
        self.accounts = Accounts(self.store, auth, throttle=throttle)
        settings = load_settings(
            None,
            {
                "LIGHTMAIL_SERVER_DATA_DIR": str(data),
                "LIGHTMAIL_SERVER_HOSTNAME": "mx.test.example",
                "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
                "LIGHTMAIL_LMTP_LISTEN": "127.0.0.1:0",
                **(environ or {}),
            },
        )
        self.imap = ImapServer(
            settings, self.store, self.accounts, None, scanner=None, shared=cluster
        )
        self.lmtp = LmtpServer(settings, self.store, self.accounts, scanner=None)

    @staticmethod
    def _port(addresses: object) -> int:
        assert isinstance(addresses, list)
        address = addresses[0]
        assert isinstance(address, TcpAddress)
        return address.port

    @property
    def imap_port(self) -> int:
        return self._port(self.imap.listeners[0].bound_addresses)

    @property
    def lmtp_port(self) -> int:
        return self._port(self.lmtp.listener.bound_addresses)


@asynccontextmanager
async def two_nodes(
    galera: GaleraCluster,
    database: str,
    s3_server: S3Server,
    data: Path,
    *,
    shared: bool = False,
    auth: AuthSettings = _UNTHROTTLED,
    environ: dict[str, str] | None = None,
    urls: tuple[str, str] | None = None,
) -> AsyncIterator[tuple[Node, Node]]:
    """LightMail node A on Galera node 1 and B on Galera node 2, serving (or A
    and B on the database ``urls``); with ``shared``, their per-user caps and
    login throttling are counted in Redis (under a key prefix of their own)."""
    redis = require_shared_redis()
    blobs = open_blobs({"s3": s3_server, "prefix": f"galera-{uuid.uuid4().hex[:12]}"})
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    async with AsyncExitStack() as stack:
        stack.push_async_callback(blobs.close)
        built = []
        if urls is None:
            urls = (galera.nodes[0].url(database), galera.nodes[1].url(database))
        for name, url in zip("ab", urls, strict=True):
            bus = RedisNotificationBus(notify_settings(redis))
            await bus.start()
            stack.push_async_callback(bus.close)
            cluster = None
            if shared:
                cluster = ClusterState(notify_settings(redis), prefix=prefix)
                await cluster.start()
                stack.push_async_callback(cluster.close)
            node = Node(
                url,
                blobs,
                bus,
                data / name,
                cluster=cluster,
                auth=auth,
                environ=environ,
            )
            stack.push_async_callback(node.db.close)
            for server in (node.imap, node.lmtp):
                await server.start()
                stack.push_async_callback(server.stop)
            built.append(node)
        yield built[0], built[1]


@pytest.fixture
async def nodes(
    galera_cluster: GaleraCluster, galera_database: str, s3_server: S3Server, tmp_path: Path
) -> AsyncIterator[tuple[Node, Node]]:
    """LightMail node A on Galera node 1 and B on Galera node 2, serving."""
    async with two_nodes(galera_cluster, galera_database, s3_server, tmp_path) as built:
        yield built


async def new_user(node: Node) -> User:
    domain = f"d{uuid.uuid4().hex[:10]}.example"
    await node.accounts.add_domain(domain)
    return await node.accounts.add_user(f"u@{domain}", PASSWORD, None)


def message(index: int) -> bytes:
    return (
        f"From: mta@example.org\r\nMessage-ID: <{index}@galera.test>\r\n"
        f"Subject: message {index}\r\n\r\nBody {index}.\r\n"
    ).encode()


def deliver(port: int, user: User, indexes: Iterator[int] | range) -> None:
    """Deliver each message over one LMTP connection (smtplib's client)."""
    with smtplib.LMTP("127.0.0.1", port) as client:
        for index in indexes:
            assert client.sendmail("mta@example.org", [user.address], message(index)) == {}


async def test_the_schema_made_on_one_node_is_on_every_node(
    galera_cluster: GaleraCluster, galera_database: str
) -> None:
    for galera in galera_cluster.nodes:
        db = Database(galera.url(galera_database))
        try:
            assert await db.current_revision() == Database.head_revision()
            async with db.read() as conn:  # Galera replicates InnoDB tables only
                engines = await conn.execute(
                    text(
                        "SELECT DISTINCT ENGINE FROM information_schema.TABLES"
                        " WHERE TABLE_SCHEMA = DATABASE()"
                    )
                )
                assert list(engines.scalars()) == ["InnoDB"]
        finally:
            await db.close()


async def sync_wait(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(text("SELECT @@session.wsrep_sync_wait"))).scalar_one())


async def test_connections_to_a_galera_node_set_wsrep_sync_wait_and_others_do_not(
    galera_cluster: GaleraCluster, galera_database: str, mariadb_schema: str
) -> None:
    """Reads on a Galera node wait for what the cluster committed before them
    (``[database] wsrep_sync_wait``, 1 by default); a plain MariaDB is left alone."""
    url = galera_cluster.nodes[2].url(galera_database)
    for db, expected in (
        (Database(url), 1),
        (Database(url, wsrep_sync_wait=0), 0),
        (Database(mariadb_schema, wsrep_sync_wait=3), 0),
    ):
        try:
            assert await sync_wait(db) == expected
        finally:
            await db.close()


async def test_concurrent_deliveries_through_two_nodes_get_distinct_consecutive_uids(
    nodes: tuple[Node, Node],
) -> None:
    """Deliveries to one mailbox through both nodes at once: Galera rolls back
    the ones that lost the race for the mailbox row, LightMail runs them again,
    and every message is stored once, with UIDs 1 to N."""
    a, b = nodes
    user = await new_user(a)
    changes = Changes()
    per_connection, connections = 10, 4  # per node
    batches = [
        (node.lmtp_port, range(start, start + per_connection))
        for start, node in zip(
            range(0, 2 * connections * per_connection, per_connection),
            [a, b] * connections,
            strict=True,
        )
    ]
    await asyncio.gather(
        *(asyncio.to_thread(deliver, port, user, indexes) for port, indexes in batches)
    )
    total = 2 * connections * per_connection
    assert changes("lightmail_db_transaction_retries_total") > 0
    inbox = await b.store.get_mailbox(user.id, "INBOX")
    infos = await b.store.list_messages(inbox)
    assert [info.uid for info in infos] == list(range(1, total + 1))
    assert inbox.uidnext == total + 1
    metas = await b.store.fetch_meta(inbox, [info.uid for info in infos])
    found = sorted(int(re.findall(rb"<(\d+)@galera", meta.header)[0]) for meta in metas)
    assert found == list(range(total))


def calendar_object(name: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//galera test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{name}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


async def test_concurrent_calendar_writes_through_two_nodes_all_commit_with_distinct_tokens(
    nodes: tuple[Node, Node],
) -> None:
    """PUTs, then DELETEs, to one calendar through both nodes at once: Galera rolls
    back the ones that lost the race for the calendar row, the calendar store runs
    them again (:meth:`Database.transact`), and every change has a token of its own."""
    a, b = nodes
    user = await new_user(a)
    stores = [a.accounts.calendars, b.accounts.calendars] * 8
    names = [f"e{index}.ics" for index in range(len(stores))]
    before = (await a.accounts.calendars.get_calendar(user.id, "default")).sync_token

    puts = Changes()
    outcomes = await asyncio.gather(
        *(
            store.put_object(user.id, "default", name, calendar_object(name))
            for store, name in zip(stores, names, strict=True)
        )
    )
    put_retries = puts("lightmail_db_transaction_retries_total")
    deletes = Changes()
    await asyncio.gather(
        *(
            store.delete_object(user.id, "default", name)
            for store, name in zip(stores, names, strict=True)
        )
    )
    delete_retries = deletes("lightmail_db_transaction_retries_total")

    assert (put_retries > 0, delete_retries > 0) == (True, True)
    count = len(names)
    tokens = sorted(outcome.object.modseq for outcome in outcomes)
    assert tokens == list(range(before + 1, before + count + 1))
    calendar = await b.accounts.calendars.get_calendar(user.id, "default")
    assert calendar.sync_token == before + 2 * count
    assert await b.accounts.calendars.list_objects(calendar) == []
    assert (await b.accounts.calendars.changes(calendar, before)).removed == sorted(names)


@asynccontextmanager
async def selected(node: Node, user: User) -> AsyncIterator[Client]:
    client = await Client.connect(node.imap_port)
    try:
        await client.until(b"* OK")
        await client.command(f'a LOGIN "{user.address}" "{PASSWORD}"'.encode(), b"a OK")
        await client.command(b"b SELECT INBOX", b"b OK")
        yield client
    finally:
        await client.close()


async def test_idle_on_node_b_sees_a_delivery_to_node_a_and_noop_a_flag_stored_on_a(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    user = await new_user(a)
    async with selected(b, user) as on_b, selected(a, user) as on_a:
        await on_b.command(b"c IDLE", b"+ ")
        delivered = time.monotonic()
        await asyncio.to_thread(deliver, a.lmtp_port, user, range(1))
        await on_b.until(b"* 1 EXISTS", within=1)
        assert time.monotonic() - delivered < 1
        await on_b.command(b"DONE", b"c OK")
        await on_a.command(b"d NOOP", b"d OK")
        await on_a.command(b"e STORE 1 +FLAGS (\\Flagged)", b"e OK")
        reply = await on_b.command(b"f NOOP", b"f OK")
        assert any(line.startswith(b"* 1 FETCH") and b"\\Flagged" in line for line in reply), reply


async def test_a_new_message_is_recent_in_exactly_one_session_of_the_cluster(
    nodes: tuple[Node, Node],
) -> None:
    """Sessions on both nodes SELECT a new message at once: one claims it as
    ``\\Recent`` (RFC 3501 section 2.3.2), and the claims conflict on Galera
    instead of both succeeding."""
    a, b = nodes
    user = await new_user(a)
    await asyncio.to_thread(deliver, a.lmtp_port, user, range(1))
    clients = [await Client.connect(node.imap_port) for node in (a, b, a, b)]
    try:
        for client in clients:
            await client.until(b"* OK")
            await client.command(f'a LOGIN "{user.address}" "{PASSWORD}"'.encode(), b"a OK")
        replies = await asyncio.gather(
            *(client.command(b"b SELECT INBOX", b"b OK") for client in clients)
        )
    finally:
        for client in clients:
            await client.close()
    recent = [[line for line in reply if line.endswith(b" RECENT\r\n")] for reply in replies]
    assert sorted(lines[0] for lines in recent) == [b"* 0 RECENT\r\n"] * 3 + [b"* 1 RECENT\r\n"]
