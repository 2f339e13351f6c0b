"""The Redis notification bus (``[notify] url``): nodes that share one Redis see
each other's changes at once, and while Redis is down their sessions poll.

Each "node" here is a mailstore on a bus of its own, both on one database and
blob store (the ``backend``), as two LightMail nodes share them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trustme
from prometheus_client import REGISTRY

from lightmail.accounts.service import Accounts, User
from lightmail.accounts.tokens import ApiTokens
from lightmail.api.app import create_app
from lightmail.api.deps import ApiContext
from lightmail.config import NotifySettings, TcpAddress, load_settings
from lightmail.gc import GarbageCollector
from lightmail.imap.server import ImapServer
from lightmail.mailstore.store import MailStore, Recipient
from lightmail.notify.bus import ChangeEvent, ChangeKind, Subscription
from lightmail.notify.redis import RedisNotificationBus, channel_name
from lightmail.storage.health import StorageHealth
from tests.conftest import Backend
from tests.support.lines import Client
from tests.support.redis import ONE_WORKER, Tls, cuttable_link, private_redis, require_shared_redis

pytestmark = ONE_WORKER

PASSWORD = "secret"
MESSAGE = b"From: bob@example.org\r\nSubject: across nodes\r\n\r\nHello.\r\n"
POLL = 0.3  # seconds: [notify] poll_interval of the outage tests


def notify_settings(url: str, poll_interval: float = 5.0) -> NotifySettings:
    environ = {"LIGHTMAIL_NOTIFY_URL": url, "LIGHTMAIL_NOTIFY_POLL_INTERVAL": str(poll_interval)}
    return load_settings(None, environ).notify


@asynccontextmanager
async def redis_bus(url: str, poll_interval: float = 5.0) -> AsyncIterator[RedisNotificationBus]:
    bus = RedisNotificationBus(notify_settings(url, poll_interval))
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


class Node:
    """A node of the test: a mailstore on ``bus``, with an IMAP server and the API's
    context (readiness) on it."""

    def __init__(self, backend: Backend, bus: RedisNotificationBus, tmp_path: Path) -> None:
        self.store = MailStore(backend.db, backend.blobs, bus)
        self.accounts = Accounts(self.store, backend.accounts.auth)
        self.settings = load_settings(
            None,
            {
                "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
                "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
            },
        )
        self.imap = ImapServer(self.settings, self.store, self.accounts, None, scanner=None)
        self.api = ApiContext(
            settings=self.settings,
            store=self.store,
            accounts=self.accounts,
            gc=GarbageCollector(backend.db, backend.blobs, self.settings.gc),
            tokens=ApiTokens(backend.db),
            health=StorageHealth(backend.db, backend.blobs),
            scanner=None,
        )

    @property
    def imap_port(self) -> int:
        address = self.imap.listeners[0].bound_addresses[0]
        assert isinstance(address, TcpAddress)
        return address.port

    async def ready(self) -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(self.api))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return await client.get("/ready")

    async def deliver(self, user: User) -> None:
        """An LMTP delivery's path through the mailstore."""

        async def source() -> AsyncIterator[bytes]:
            yield MESSAGE

        await self.store.deliver([Recipient(user.id, user.address)], source())


@asynccontextmanager
async def serving(node: Node) -> AsyncIterator[Node]:
    await node.imap.start()
    try:
        yield node
    finally:
        await node.imap.stop()


async def logged_in(node: Node, user: User) -> Client:
    client = await Client.connect(node.imap_port)
    await client.until(b"* OK")
    reply = await client.command(f'a LOGIN "{user.address}" "{PASSWORD}"'.encode(), b"a ")
    assert reply[-1].startswith(b"a OK"), reply
    await client.command(b"b SELECT INBOX", b"b OK")
    return client


async def idling(node: Node, user: User) -> Client:
    client = await logged_in(node, user)
    await client.command(b"c IDLE", b"+ ")
    return client


async def soon(condition: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - a property of the bus, no event to wait on
            await asyncio.sleep(0.01)


def connected_gauge() -> float | None:
    return REGISTRY.get_sample_value("lightmail_notify_connected")


# -- two nodes on one Redis ---------------------------------------------------------------


async def test_idle_on_one_node_sees_a_delivery_and_an_append_made_on_another_within_a_second(
    backend: Backend, tmp_path: Path
) -> None:
    url = require_shared_redis()
    async with redis_bus(url) as bus_a, redis_bus(url) as bus_b:
        a, b = Node(backend, bus_a, tmp_path / "a"), Node(backend, bus_b, tmp_path / "b")
        async with serving(a), serving(b):
            user = await backend.new_user()
            idle = await idling(b, user)
            delivered = time.monotonic()
            await a.deliver(user)
            assert (await idle.until(b"* 1 EXISTS", within=1))[-1] == b"* 1 EXISTS\r\n"
            assert time.monotonic() - delivered < 1
            appender = await logged_in(a, user)
            literal = b"d APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE
            appended = time.monotonic()
            await appender.command(literal, b"d OK")
            assert (await idle.until(b"* 2 EXISTS", within=1))[-1] == b"* 2 EXISTS\r\n"
            assert time.monotonic() - appended < 1
            await idle.command(b"DONE", b"c OK")
            for client in (idle, appender):
                await client.close()


async def test_each_subscription_gets_each_event_once() -> None:
    """The publishing process delivers its own event at once and skips Redis's echo
    of it; the other process gets it from Redis. Redis keeps the order of the
    publishes, so the marker published after the echo comes next, and nothing between."""
    url = require_shared_redis()
    user_id = secrets.randbelow(1 << 40) + (1 << 40)  # no other test run's user
    async with (
        redis_bus(url) as bus_a,
        redis_bus(url) as bus_b,
        bus_a.subscription(user_id) as on_a,
        bus_b.subscription(user_id) as on_b,
    ):
        event = ChangeEvent(user_id, ChangeKind.MESSAGES_ADDED, 3, 9)
        await bus_a.publish(event)
        assert on_a.drain() == [event]
        async with asyncio.timeout(1):
            assert await next_event(on_b) == event
        marker = ChangeEvent(user_id, ChangeKind.FLAGS_CHANGED, 4, 10)
        await bus_b.publish(marker)
        async with asyncio.timeout(1):
            assert await next_event(on_a) == marker
        assert on_a.drain() == []
        assert on_b.drain() == [marker]


async def next_event(subscription: Subscription) -> ChangeEvent:
    """The first event waiting, or the next one offered; the others stay waiting."""
    while not subscription.pending:
        offered = asyncio.Event()
        subscription.waker = offered.set
        try:
            await offered.wait()
        finally:
            subscription.waker = None
    first, *rest = subscription.drain()
    for event in rest:
        subscription.offer(event)
    return first


def test_the_channel_is_named_after_the_database() -> None:
    """Pub/sub ignores database numbers: clusters on one Redis stay apart by channel."""
    assert channel_name("redis://127.0.0.1:6379/0") == "lightmail:0:changes"
    assert channel_name("rediss://:pw@redis.example:6380/3") == "lightmail:3:changes"
    assert channel_name("redis://127.0.0.1") == "lightmail:0:changes"


# -- Redis down ---------------------------------------------------------------------------


async def test_while_redis_is_down_idle_sees_changes_by_polling_and_live_events_resume(
    backend: Backend, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as redis:
        async with redis_bus(redis.url, POLL) as bus_a, redis_bus(redis.url, POLL) as bus_b:
            a, b = Node(backend, bus_a, tmp_path / "a"), Node(backend, bus_b, tmp_path / "b")
            async with serving(b):
                user = await backend.new_user()
                idle = await idling(b, user)
                assert connected_gauge() == 1
                ready = await b.ready()
                assert (ready.status_code, ready.json()["notifications"]) == (200, "live")

                redis.stop()
                await soon(lambda: not bus_a.live and not bus_b.live, within=2)
                assert connected_gauge() == 0
                ready = await b.ready()
                assert (ready.status_code, ready.json()) == (
                    200,
                    {
                        "status": "degraded",
                        "database": "ok",
                        "blobs": "ok",
                        "notifications": "polling",
                    },
                )
                delivered = time.monotonic()
                async with asyncio.timeout(1):
                    await a.deliver(user)  # committed; the lost event does not fail it
                await idle.until(b"* 1 EXISTS", within=POLL + 0.5)
                assert time.monotonic() - delivered < POLL + 0.5

                redis.start()
                await soon(lambda: bus_a.live and bus_b.live, within=POLL + 2)
                assert connected_gauge() == 1
                ready = await b.ready()
                assert ready.json()["status"] == "ready"
                await a.deliver(user)
                await idle.until(b"* 2 EXISTS", within=1)
                await idle.command(b"DONE", b"c OK")
                await idle.close()


async def test_events_after_a_restart_are_live_again(tmp_path: Path) -> None:
    """After a reconnect the subscription gets one RESYNC hint, then the events
    themselves (not polling hints: Redis carries them again)."""
    with private_redis(tmp_path) as redis:
        async with (
            redis_bus(redis.url, POLL) as bus_a,
            redis_bus(redis.url, POLL) as bus_b,
            bus_b.subscription(1) as on_b,
        ):
            redis.stop()
            await soon(lambda: not bus_a.live and not bus_b.live, within=2)
            async with asyncio.timeout(POLL + 0.5):
                assert await next_event(on_b) == ChangeEvent(1, ChangeKind.RESYNC)
            redis.start()
            await soon(lambda: bus_a.live and bus_b.live, within=POLL + 2)
            on_b.drain()  # the hints of the outage and of the reconnect
            event = ChangeEvent(1, ChangeKind.MESSAGES_EXPUNGED, 5, 6)
            await bus_a.publish(event)
            async with asyncio.timeout(1):
                assert await next_event(on_b) == event


async def test_a_node_starts_without_redis_polls_and_connects_when_it_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outage is logged once, however many events it loses, and so is its end."""
    with private_redis(tmp_path, started=False) as redis:
        started = time.monotonic()
        async with redis_bus(redis.url, POLL) as bus:
            assert time.monotonic() - started < 1  # a refused connection is not waited on
            assert not bus.live
            async with bus.subscription(2) as subscription:
                for _ in range(3):
                    await bus.publish(ChangeEvent(2, ChangeKind.MAILBOXES_CHANGED))  # no error
                assert subscription.drain() == [ChangeEvent(2, ChangeKind.MAILBOXES_CHANGED)] * 3
                async with asyncio.timeout(POLL + 0.5):
                    assert await next_event(subscription) == ChangeEvent(2, ChangeKind.RESYNC)
                redis.start()
                await soon(lambda: bus.live, within=POLL + 2)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("is unreachable" in message for message in messages) == 1, messages
    assert sum("is reachable again" in message for message in messages) == 1, messages


async def test_users_whose_events_were_lost_are_told_everywhere_on_reconnect(
    tmp_path: Path,
) -> None:
    """One node cut off from Redis while another is not: the cut node's changes reach
    the other's sessions when the link is back, as a RESYNC hint per user changed."""
    with private_redis(tmp_path) as redis:
        async with (
            cuttable_link(redis) as link,
            redis_bus(link.url, POLL) as bus_a,
            redis_bus(redis.url, POLL) as bus_b,
            bus_b.subscription(3) as on_b,
            bus_b.subscription(4) as other,
        ):
            link.cut()
            await soon(lambda: not bus_a.live, within=2)
            assert bus_b.live
            await bus_a.publish(ChangeEvent(3, ChangeKind.MESSAGES_ADDED, 1, 2))
            await asyncio.sleep(POLL)
            assert on_b.drain() == []  # B is live: it does not poll
            link.mend()
            await soon(lambda: bus_a.live, within=POLL + 2)
            async with asyncio.timeout(1):
                assert await next_event(on_b) == ChangeEvent(3, ChangeKind.RESYNC)
            assert other.drain() == []


# -- TLS and passwords --------------------------------------------------------------------


async def test_rediss_with_a_ca_file_and_a_password(tmp_path: Path) -> None:
    ca = trustme.CA()
    files = Tls(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem")
    certificate = ca.issue_cert("localhost")
    certificate.cert_chain_pems[0].write_to_path(str(files.cert))
    certificate.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    with private_redis(tmp_path, tls=files, password="hunter2") as redis:
        environ = {
            "LIGHTMAIL_NOTIFY_URL": redis.url,
            "LIGHTMAIL_NOTIFY_PASSWORD": "hunter2",
            "LIGHTMAIL_NOTIFY_CA_FILE": str(files.ca),
        }
        settings = load_settings(None, environ).notify
        for refused in (
            dataclasses.replace(settings, password=""),  # no password
            dataclasses.replace(settings, ca_file=None),  # the system's CAs do not know ours
        ):
            bus = RedisNotificationBus(refused)
            await bus.start()
            assert not bus.live
            await bus.close()
        publisher, listener = RedisNotificationBus(settings), RedisNotificationBus(settings)
        for bus in (publisher, listener):
            await bus.start()
        try:
            assert publisher.live
            assert listener.live
            async with listener.subscription(5) as subscription:
                event = ChangeEvent(5, ChangeKind.MESSAGES_ADDED, 1, 1)
                await publisher.publish(event)
                async with asyncio.timeout(1):
                    assert await next_event(subscription) == event
        finally:
            for bus in (publisher, listener):
                await bus.close()
