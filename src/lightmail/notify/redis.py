"""The Redis notification bus (``[notify] url``): change events between every
process of every node that shares one Redis.

One channel per Redis database, ``lightmail:<db>:changes``, carries every
user's events, each a JSON object ``{"origin": ..., "event": {...}}`` (or
``{"origin": ..., "resync": true}``: every session must re-read). One channel
rather than one per user: a process subscribes once, when it connects, so a new
session is live as soon as its local :class:`~lightmail.notify.bus.Subscription`
exists, with no SUBSCRIBE round trip per session and no window while one is in
flight; a reconnect restores one subscription, not thousands. The price is that
every process decodes every event, a small JSON object per change, which is
little next to the change itself. Pub/sub ignores Redis's database numbers, so
the number is in the channel's name: clusters on one Redis with different
databases do not hear each other.

A process delivers its own events to its own subscribers at once and skips
them when Redis echoes them back (``origin``), so each session gets each event
once, and a process's own changes reach its sessions even while Redis is down.
The supervisor of several workers relays no events then: every worker is a
Redis subscriber of its own.

While Redis is unreachable, publishing never fails (the change is committed;
only the hint is lost), the outage is logged once, and every subscription gets
a RESYNC hint every ``poll_interval`` (sessions re-read the database). On
reconnect every subscription gets one more, and the users whose events could
not be sent get one cluster-wide, so sessions on nodes that never lost Redis
learn of them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from lightmail.config import NotifySettings
from lightmail.metrics import NOTIFY_CONNECTED
from lightmail.notify.bus import ChangeEvent, ChangeKind, InProcessNotificationBus

log = logging.getLogger(__name__)

_TIMEOUT = 2.0  # seconds for connecting to Redis, and for one PUBLISH
_FIRST_RETRY = 0.1  # seconds before the first reconnect, doubled up to poll_interval
_LISTEN_STEP = 1.0  # seconds a read for events waits before the loop looks around
_MAX_UNSENT = 10_000  # users remembered as unsent; beyond, one resync for everyone

# What a broken or unreachable Redis raises (TimeoutError and ConnectionError are OSErrors).
_FAILURES = (RedisError, OSError)


def redis_client(settings: NotifySettings) -> Redis:
    """A client of the Redis ``[notify]`` names, with its password and CA, that tries
    each command once: a failure is an outage, which its caller handles."""
    options: dict[str, Any] = {}
    if settings.password:
        options["password"] = settings.password
    if settings.ca_file is not None:
        options["ssl_ca_certs"] = str(settings.ca_file)
    return Redis.from_url(
        settings.url,
        socket_connect_timeout=_TIMEOUT,
        socket_timeout=_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


class RedisOutage:
    """Whether Redis answers, shown by ``gauge`` (1 or 0); an outage is logged once
    when it begins and once when it ends, however many failures it holds.

    The log lines are ``<what>: <description> is unreachable (<error>); <fallback>``
    and ``<what>: <description> is reachable again; <recovered>``.
    """

    def __init__(self, gauge: Gauge, logger: logging.Logger, what: str, description: str) -> None:
        self._gauge = gauge
        self._log = logger
        self._prefix = f"{what}: {description}"
        self._logged = False

    def up(self, recovered: str) -> None:
        self._gauge.set(1)
        if self._logged:
            self._logged = False
            self._log.warning("%s is reachable again; %s", self._prefix, recovered)

    def lost(self, error: BaseException, fallback: str) -> None:
        self._gauge.set(0)
        if not self._logged:
            self._logged = True
            self._log.warning(
                "%s is unreachable (%s: %s); %s",
                self._prefix,
                type(error).__name__,
                error,
                fallback,
            )


def channel_name(url: str) -> str:
    """The channel of the Redis database ``url`` names (0 when it names none)."""
    database = urlsplit(url).path.strip("/") or "0"
    return f"lightmail:{int(database)}:changes"


class RedisNotificationBus(InProcessNotificationBus):
    """Delivers events to this process's subscribers and, through Redis, to every
    other process subscribed to the same channel; :meth:`start` connects."""

    def __init__(self, settings: NotifySettings) -> None:
        super().__init__()
        parts = urlsplit(settings.url)
        self.channel = channel_name(settings.url)
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # without the password
        self.description = f"Redis at {where}, channel {self.channel}"
        self._settings = settings
        self._origin = secrets.token_hex(8)
        self._publisher = self._client()
        self._connected = False
        self._connected_once = False  # the current attempt subscribed
        self._outage = RedisOutage(NOTIFY_CONNECTED, log, "notify", self.description)
        self._unsent: set[int] = set()  # users whose events did not reach Redis
        self._unsent_everyone = False  # more of them than _MAX_UNSENT
        self._tried = asyncio.Event()  # the first connection attempt is over
        self._tasks: list[asyncio.Task[None]] = []
        NOTIFY_CONNECTED.set(0)

    @property
    def live(self) -> bool:
        return self._connected

    async def start(self) -> None:
        """Connect and subscribe in the background; return once connected, or once the
        first attempt failed (the node then starts polling and keeps trying)."""
        self._tasks = [
            asyncio.create_task(self._keep_listening(), name="notify-listen"),
            asyncio.create_task(self._poll(), name="notify-poll"),
        ]
        await self._tried.wait()

    async def publish(self, event: ChangeEvent) -> None:
        await super().publish(event)
        if not self._connected:
            self._remember_unsent(event.user_id)
            return
        try:
            async with asyncio.timeout(_TIMEOUT):
                await self._publisher.publish(self.channel, self._message(event=event.to_dict()))
        except Exception as error:  # the change is committed: its caller must not fail
            if not isinstance(error, _FAILURES):
                log.exception("notify: publishing on %s failed", self.description)
            self._remember_unsent(event.user_id)
            self._lost(error)

    async def close(self) -> None:
        """Stop listening and polling, waiting at most _TIMEOUT for each step: a
        listener cancelled inside the Redis client was seen never to end (on a
        loaded machine), and a node's shutdown must not wait for it."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=_TIMEOUT)
            if stuck:
                log.warning(
                    "notify: %s: %d task(s) did not stop within %gs; left behind",
                    self.description,
                    len(stuck),
                    _TIMEOUT,
                )
        try:
            async with asyncio.timeout(_TIMEOUT):
                await self._publisher.aclose()
        except (TimeoutError, *_FAILURES):
            log.warning("notify: %s: the publishing connection did not close", self.description)
        await super().close()

    def _client(self) -> Redis:
        return redis_client(self._settings)

    def _message(self, **content: object) -> str:
        return json.dumps({"origin": self._origin, **content}, separators=(",", ":"))

    async def _keep_listening(self) -> None:
        """Stay subscribed: reconnect after a failure, waiting longer each time (with
        jitter, so that many processes do not knock at once) up to poll_interval."""
        delay = _FIRST_RETRY
        while True:
            try:
                await self._listen()
            except _FAILURES as error:
                self._lost(error)
            except Exception as error:  # a bug: keep the node polling and trying
                log.exception("notify: listening to %s failed", self.description)
                self._lost(error)
            finally:
                self._tried.set()
            if self._connected_once:
                delay = _FIRST_RETRY
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)
            delay = min(delay * 2, self._settings.poll_interval)

    async def _listen(self) -> None:
        """Subscribe, then hand events to subscribers until the connection fails or a
        PUBLISH did (:meth:`_lost`). A connection that stays silent is pinged every
        poll_interval and given up when nothing comes back for two."""
        self._connected_once = False
        client = self._client()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            reply = await pubsub.get_message(timeout=_TIMEOUT)
            if reply is None or reply["type"] != "subscribe":
                raise ConnectionError(f"no confirmation of SUBSCRIBE: {reply!r}")
            await self._up()
            self._connected_once = True
            loop = asyncio.get_running_loop()
            heard = pinged = loop.time()
            while self._connected:
                message = await pubsub.get_message(timeout=_LISTEN_STEP)
                now = loop.time()
                if message is not None:
                    heard = now
                    if message["type"] == "message":
                        await self._receive(message["data"])
                elif now - heard > 2 * self._settings.poll_interval + _TIMEOUT:
                    raise ConnectionError("Redis stopped answering")
                elif now - max(heard, pinged) > self._settings.poll_interval:
                    await pubsub.ping()
                    pinged = now
        finally:
            with contextlib.suppress(*_FAILURES):
                await pubsub.aclose()
            with contextlib.suppress(*_FAILURES):
                await client.aclose()

    async def _receive(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            if message["origin"] == self._origin:
                return  # this process's own: its subscribers have it
            if message.get("resync"):
                self.resync()
            else:
                await super().publish(ChangeEvent.from_dict(message["event"]))
        except (ValueError, KeyError, TypeError) as error:
            log.warning("notify: ignored a message on %s: %r (%s)", self.channel, data, error)

    async def _up(self) -> None:
        """Subscribed: events are live again. Every subscription re-reads once (events
        of the outage are lost), and the users whose events this process could not
        send are told cluster-wide."""
        self._connected = True
        self._tried.set()
        self._outage.up("change events are live")
        self.resync()
        unsent, everyone = self._unsent, self._unsent_everyone
        self._unsent, self._unsent_everyone = set(), False
        if not unsent and not everyone:
            return
        try:
            async with asyncio.timeout(_TIMEOUT), self._publisher.pipeline(False) as pipeline:
                if everyone:
                    pipeline.publish(self.channel, self._message(resync=True))
                for user_id in [] if everyone else sorted(unsent):
                    hint = ChangeEvent(user_id, ChangeKind.RESYNC).to_dict()
                    pipeline.publish(self.channel, self._message(event=hint))
                await pipeline.execute()
        except _FAILURES:
            self._unsent |= unsent
            self._unsent_everyone |= everyone
            raise

    def _lost(self, error: BaseException) -> None:
        """Redis failed: poll until the listener is subscribed again (logged once)."""
        self._connected = False
        every = self._settings.poll_interval
        self._outage.lost(
            error, f"sessions re-read their mailboxes every {every:g}s until it is back"
        )

    def _remember_unsent(self, user_id: int) -> None:
        if self._unsent_everyone:
            return
        self._unsent.add(user_id)
        if len(self._unsent) > _MAX_UNSENT:
            self._unsent.clear()
            self._unsent_everyone = True

    async def _poll(self) -> None:
        """While Redis is unreachable, a RESYNC hint to every subscription each
        poll_interval: the sessions re-read the database, so a change is at most
        that late."""
        while True:
            await asyncio.sleep(self._settings.poll_interval)
            if not self._connected:
                self.resync()
