"""The Redis client that the per-user caps (:mod:`.caps`) and the login
throttling (:mod:`.throttle`) share, and the outage rule they follow: a
decision that needs Redis while it is unreachable is made on this node's own
counts instead (never refusing everyone), the outage is logged once, and the
gauge ``lightmail_cluster_shared`` is 0 until Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError

from lightmail.config import NotifySettings
from lightmail.metrics import CLUSTER_FALLBACKS, CLUSTER_SHARED

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_TIMEOUT = 2.0  # seconds one Redis command may take before it counts as an outage
_BACKOFF = 1.0  # seconds after a failure during which decisions skip Redis at once
_FAILURES = (RedisError, OSError)  # TimeoutError and ConnectionError are OSErrors


class SharedRedis:
    """The Redis the nodes share; :meth:`start` begins renewing what this process
    added (:meth:`renew_with`), :meth:`close` stops.

    Keys begin with ``prefix`` (``lightmail:``); the Redis database number of the
    URL separates clusters sharing one Redis. ``lease`` is ``[notify] lease``.
    """

    def __init__(
        self, settings: NotifySettings, *, prefix: str = "lightmail:", lease: float | None = None
    ) -> None:
        # Imported here: lightmail.notify.redis is the one place that builds clients.
        from lightmail.notify.redis import RedisOutage, redis_client

        self.redis: Redis = redis_client(settings)
        self.prefix = prefix
        self.lease = settings.lease if lease is None else lease
        parts = urlsplit(settings.url)
        self.description = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        self._origin = secrets.token_hex(8)  # this process, in the members it adds
        self._members = itertools.count()
        self._renewers: list[Callable[[], Awaitable[None]]] = []
        self._skip_until = 0.0  # loop time before which Redis is not tried
        self._outage = RedisOutage(CLUSTER_SHARED, log, "cluster", f"Redis at {self.description}")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        CLUSTER_SHARED.set(1)

    def member(self) -> str:
        """A name no other session of the cluster has."""
        return f"{self._origin}:{next(self._members)}"

    def key(self, *parts: str) -> str:
        """``prefix`` and ``parts`` joined by colons; the last part may hold any text
        (a user's id, a throttled key), so nothing before it may."""
        return self.prefix + ":".join(parts)

    def renew_with(self, renew: Callable[[], Awaitable[None]]) -> None:
        """Call ``renew`` every third of the lease (it refreshes what it added)."""
        self._renewers.append(renew)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._renew(), name="cluster-renew")

    async def close(self) -> None:
        """Stop the renewals, waiting at most _TIMEOUT, then close the client. A call
        cancelled inside the Redis client may lose the cancellation (its own timeout
        firing at the same moment turns it into a timeout, which call() takes for an
        outage): the flag ends the renewals all the same, and a node's shutdown
        does not wait for one that never ends (as the notification bus does)."""
        if self._task is not None:
            self._closing = True
            self._task.cancel()
            _, stuck = await asyncio.wait({self._task}, timeout=_TIMEOUT)
            if stuck:
                log.warning(
                    "cluster: %s: the renewals did not stop within %gs; left behind",
                    self.description,
                    _TIMEOUT,
                )
        with contextlib.suppress(*_FAILURES):
            await self.redis.aclose()

    async def decide(self, command: Callable[[Redis], Awaitable[_T]]) -> _T | None:
        """:meth:`call` for a decision (admit a session, throttle a login): when
        Redis is unreachable the caller decides on its own counts, and that is
        counted (``lightmail_cluster_fallbacks_total``)."""
        result = await self.call(command)
        if result is None:
            CLUSTER_FALLBACKS.inc()
        return result

    async def call(self, command: Callable[[Redis], Awaitable[_T]]) -> _T | None:
        """Run ``command`` on Redis; None when Redis is unreachable. ``command``
        returns something else than None."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(_TIMEOUT):
                result = await command(self.redis)
        except _FAILURES as error:
            self._outage.lost(
                error, "connection caps and login throttling count this node only until it is back"
            )
            self._skip_until = loop.time() + _BACKOFF
            return None
        self._outage.up("connection caps and login throttling count the whole cluster")
        return result

    async def _renew(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.lease / 3)
            self._skip_until = 0.0  # a renewal is also how a node finds Redis back
            for renew in self._renewers:
                try:
                    await renew()
                except Exception:  # a bug: keep renewing the rest
                    log.exception("cluster: renewing in Redis failed")
