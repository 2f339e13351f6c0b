"""Builds a node's parts from the settings, runs them, and stops them cleanly.

Every part is built here, once, and handed to what uses it: the parts every
command needs (database, blob store, notification bus, mailstore, accounts,
API tokens, the one clamd client, the storage health check) by
:func:`open_node`; the services and the API's context by :func:`build_services`.
Nothing else imports this module but the CLI and :mod:`lightmail.workers`,
which runs ``serve`` in each of several processes. ``lightmail serve`` adds the
long-running services (protocol listeners, workers): each is an object with
``start()`` and ``stop()``, started in order and stopped in reverse order on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lightmail.accounts.service import Accounts
from lightmail.accounts.tokens import ApiTokens
from lightmail.antivirus.clamd import ClamdClient
from lightmail.antivirus.policy import scanner_for
from lightmail.auth.throttle import InProcessLoginThrottle, LoginThrottle
from lightmail.config import Settings
from lightmail.errors import ConfigError
from lightmail.gc import GarbageCollector, GcWorker
from lightmail.imap.server import ImapServer
from lightmail.lmtp.server import LmtpServer
from lightmail.mailstore.store import KeywordLimits, MailStore
from lightmail.metrics import NOTIFY_CONNECTED
from lightmail.net.tls import server_context
from lightmail.notify.bus import InProcessNotificationBus, NotificationBus
from lightmail.pop3.server import Pop3Server
from lightmail.storage.blobs import BlobStore, CachedBlobStore, open_blob_store
from lightmail.storage.db.engine import Database
from lightmail.storage.health import StorageHealth

if TYPE_CHECKING:
    from lightmail.cluster import ClusterState

log = logging.getLogger("lightmail")


class Supervised(Protocol):
    """A worker process's link to its supervisor (:mod:`lightmail.workers`)."""

    index: int  # 0 to N-1; worker 0 runs the node's GC

    @property
    def bus(self) -> NotificationBus:
        """The bus of this worker: its own subscribers, and the other workers'."""
        ...

    @property
    def throttle(self) -> LoginThrottle:
        """The failed-login counts of the whole node."""
        ...

    def ready(self) -> None:
        """Tell the supervisor that this worker serves."""
        ...

    async def run(self) -> None:
        """Serve the supervisor's messages; return once it has gone away."""
        ...


class Service(Protocol):
    """A long-running part of a node: a protocol listener or a worker."""

    name: str

    async def start(self) -> None:
        """Start serving; return once listening (log where)."""
        ...

    async def stop(self) -> None:
        """Stop accepting, let current work finish or time out, release resources."""
        ...


@dataclass(frozen=True, slots=True)
class Node:
    settings: Settings
    db: Database
    blobs: BlobStore
    bus: NotificationBus
    store: MailStore
    accounts: Accounts
    tokens: ApiTokens
    gc: GarbageCollector
    scanner: ClamdClient | None  # the one clamd client; None when [antivirus] mode = off
    health: StorageHealth
    cluster: ClusterState | None = None  # with [notify] url: caps and throttling in Redis


@asynccontextmanager
async def open_node(
    settings: Settings, supervisor: Supervised | None = None
) -> AsyncIterator[Node]:
    """Build the shared parts; the schema must be current (SQLite upgrades itself).

    An embedded SQLite database is created and upgraded automatically; a
    MySQL/MariaDB one is upgraded only by ``lightmail db upgrade``, so that an
    operator chooses when a shared production schema changes. In a worker
    process the notification bus and the login throttle are the
    ``supervisor``'s, shared by the node's workers; else this process's own.
    """
    db = Database(
        settings.database.url,
        pool_size=settings.database.pool_size,
        connect_timeout=settings.database.connect_timeout,
        commit_check_timeout=settings.database.commit_check_timeout,
        max_retries=settings.database.max_retries,
        wsrep_sync_wait=settings.database.wsrep_sync_wait,
    )
    try:
        if db.dialect == "sqlite":
            settings.server.data_dir.mkdir(parents=True, exist_ok=True)
            await db.upgrade()
        else:
            await db.check_schema()
        try:
            blobs = open_blob_store(
                settings.blobs.url,
                endpoint=settings.blobs.endpoint,
                region=settings.blobs.region,
                access_key=settings.blobs.access_key,
                secret_key=settings.blobs.secret_key,
            )
        except ValueError as error:
            raise ConfigError(
                "blobs", "url", settings.blobs.url, f"file:PATH or s3://BUCKET/PREFIX ({error})"
            ) from None
        if settings.blobs.cache_folder is not None:
            blobs = CachedBlobStore(blobs, settings.blobs.cache_folder, settings.blobs.cache_size)
        bus = await _open_bus(settings, supervisor)
        limits = KeywordLimits(
            per_mailbox=settings.imap.max_keywords_per_mailbox,
            per_message=settings.imap.max_keywords_per_message,
        )
        store = MailStore(db, blobs, bus, limits)
        cluster = await _open_cluster(settings)
        try:
            throttle: LoginThrottle | None = supervisor.throttle if supervisor else None
            if cluster is not None:
                local = throttle or InProcessLoginThrottle(settings.auth)
                throttle = cluster.throttle(settings.auth, local)
            gc = GarbageCollector(db, blobs, settings.gc)
            yield Node(
                settings,
                db,
                blobs,
                bus,
                store,
                Accounts(store, settings.auth, throttle=throttle),
                ApiTokens(db),
                gc,
                scanner_for(settings.antivirus),
                StorageHealth(db, blobs),
                cluster,
            )
        finally:
            if cluster is not None:
                await cluster.close()
            await bus.close()
            await blobs.close()
    finally:
        await db.close()


async def _open_bus(settings: Settings, supervisor: Supervised | None) -> NotificationBus:
    """Redis when ``[notify] url`` is set: every process (each worker too) is a
    subscriber of its own, and the supervisor relays no events. Else in-process,
    relayed between a node's workers by the supervisor."""
    if settings.notify.url:
        # Imported here: a node without Redis does not load its client at start-up.
        from lightmail.notify.redis import RedisNotificationBus

        bus = RedisNotificationBus(settings.notify)
        await bus.start()
        return bus
    NOTIFY_CONNECTED.set(1)  # nothing to lose touch with
    return InProcessNotificationBus() if supervisor is None else supervisor.bus


async def _open_cluster(settings: Settings) -> ClusterState | None:
    """With ``[notify] url``, the per-user caps and login throttling the nodes share
    in that Redis (each process its own client); else None: this node's counts."""
    if not settings.notify.url:
        return None
    from lightmail.cluster import ClusterState

    cluster = ClusterState(settings.notify)
    await cluster.start()
    return cluster


def build_services(node: Node, worker: int = 0) -> list[Service]:
    """The listeners and workers this node runs, from its settings; only the
    first of several worker processes runs the GC (one would do the others' work)."""
    settings = node.settings
    tls = None
    if settings.tls.cert is not None and settings.tls.key is not None:
        tls = server_context(settings.tls.cert, settings.tls.key)
    services: list[Service] = []
    if settings.lmtp.listen:
        services.append(LmtpServer(settings, node.store, node.accounts, scanner=node.scanner))
    if settings.imap.listen or settings.imap.tls_listen:
        services.append(
            ImapServer(
                settings, node.store, node.accounts, tls, scanner=node.scanner, shared=node.cluster
            )
        )
    if settings.pop3.listen or settings.pop3.tls_listen:
        services.append(Pop3Server(settings, node.store, node.accounts, tls, shared=node.cluster))
    if settings.gc.enabled and worker == 0:
        services.append(GcWorker(node.gc, settings.gc.interval))
    if settings.api.listen:
        # Imported here: the other commands need neither FastAPI nor uvicorn.
        from lightmail.api.deps import ApiContext
        from lightmail.api.server import ApiServer

        context = ApiContext(
            settings=settings,
            store=node.store,
            accounts=node.accounts,
            gc=node.gc,
            tokens=node.tokens,
            health=node.health,
            scanner=node.scanner if settings.antivirus.scan_append else None,
        )
        services.append(ApiServer(context))
    if settings.dav.listen or settings.dav.tls_listen:
        from lightmail.dav.server import dav_servers

        services.extend(dav_servers(settings, node.accounts))
    return services


async def serve(settings: Settings, supervisor: Supervised | None = None) -> None:
    """Run a node until SIGTERM or SIGINT (or until the ``supervisor`` of this
    worker process goes away), then stop everything cleanly."""
    with stop_signals() as stop:
        if supervisor is None:
            await _serve(settings, stop)
            return
        link = asyncio.create_task(supervisor.run(), name="supervisor")
        link.add_done_callback(lambda _: stop.set())
        try:
            await _serve(settings, stop, supervisor)
        finally:
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link


async def _serve(
    settings: Settings, stop: asyncio.Event, supervisor: Supervised | None = None
) -> None:
    log.info("config: %s", settings.config_file or "no file (built-in defaults and environment)")
    async with open_node(settings, supervisor) as node:
        log.info("database: %s", node.db.description)
        log.info("blobs: %s", node.blobs.description)
        log.info("notifications: %s", node.bus.description)
        antivirus = settings.antivirus
        log.info(
            "antivirus: %s",
            f"{antivirus.mode} with clamd {antivirus.clamd}" if antivirus.enabled else "off",
        )
        started: list[Service] = []
        try:
            for service in build_services(node, supervisor.index if supervisor else 0):
                await service.start()
                started.append(service)
            if supervisor is not None:
                supervisor.ready()  # the supervisor says when the node is running
            else:
                await hint_first_steps(node)
                log.info(
                    "lightmail is running (data in %s); stop with Ctrl-C or SIGTERM",
                    settings.server.data_dir,
                )
            await stop.wait()
            log.info("stopping")
        finally:
            for service in reversed(started):
                try:
                    await service.stop()
                except Exception:
                    log.exception("%s did not stop cleanly", service.name)
    log.info("stopped")


async def hint_first_steps(node: Node) -> None:
    """Log how to begin when the node has no domain yet."""
    if not await node.accounts.list_domains():
        log.info(
            "no domains yet: add one with `lightmail domain add example.org`, "
            "then a user with `lightmail user add alice@example.org`"
        )


@contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGTERM or SIGINT while the block runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
