"""A worker process's side: the sockets and channel it inherits from its supervisor,
and what goes through that channel so that the node acts as one: change
notifications, connection counts and failed-login counts."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections import Counter, OrderedDict, defaultdict
from collections.abc import AsyncIterator, Hashable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from lightmail import runtime
from lightmail.config import Settings
from lightmail.errors import TemporaryFailure
from lightmail.net.limits import ConnectionLimiter, count_across_node
from lightmail.net.listener import inherit_sockets
from lightmail.notify.bus import ChangeEvent, ChangeKind, InProcessNotificationBus, Subscription
from lightmail.workers.channel import Channel, ChannelError, Message

log = logging.getLogger(__name__)


_PASSED_OVER = 10_000  # users whose last unsent events a worker keeps


class RelayedNotificationBus(InProcessNotificationBus):
    """Delivers an event to this process's subscribers and, when another worker
    watches its user, sends it to the supervisor, which relays it to the workers
    that do: a subscription here makes the supervisor "watch" the user for this
    worker, and its last one ends that (see :mod:`lightmail.workers.hub`).

    An event of a user nobody else watches is not sent, but its user's last
    events (one per mailbox and kind: a session takes each as a hint to look)
    are kept, for up to ``_PASSED_OVER`` users: when another worker starts to
    watch the user, they are sent then. A session there that read its mailbox
    just before this worker heard of the watch hears of a change made meanwhile.
    """

    description = "in-process, relayed between workers by the supervisor"

    def __init__(self, link: SupervisorLink, watched: Iterable[int]) -> None:
        super().__init__()
        self._link = link
        self._watches: dict[int, asyncio.Task[Any]] = {}  # by user: the supervisor's ack
        self._watched = set(watched)  # users another worker watches
        # By user, the least recently passed over first.
        self._passed: OrderedDict[int, dict[tuple[int | None, ChangeKind], ChangeEvent]]
        self._passed = OrderedDict()

    async def publish(self, event: ChangeEvent) -> None:
        await super().publish(event)
        if event.user_id in self._watched:
            self._send(event)
            return
        events = self._passed.pop(event.user_id, None) or {}
        events[(event.mailbox_id, event.kind)] = event
        self._passed[event.user_id] = events
        if len(self._passed) > _PASSED_OVER:
            self._passed.popitem(last=False)

    def watched(self, user_id: int) -> None:
        """Another worker watches ``user_id`` now: send the events kept of it."""
        self._watched.add(user_id)
        for event in self._passed.pop(user_id, {}).values():
            self._send(event)

    def unwatched(self, user_id: int) -> None:
        """No other worker watches ``user_id`` now."""
        self._watched.discard(user_id)

    def _send(self, event: ChangeEvent) -> None:
        self._link.send({"op": "event", "event": event.to_dict()})

    async def relayed(self, event: ChangeEvent) -> None:
        """An event another worker published."""
        await super().publish(event)

    @asynccontextmanager
    async def subscription(self, user_id: int) -> AsyncIterator[Subscription]:
        async with super().subscription(user_id) as subscription:
            try:
                watch = self._watches.get(user_id)
                if watch is None:
                    request = self._link.request({"op": "watch", "user_id": user_id})
                    watch = self._watches[user_id] = asyncio.ensure_future(request)
                    watch.add_done_callback(_retrieved)
                # Once the supervisor has answered, every event it relays after
                # reaches this subscription, so what the session reads next is
                # never older than the events it will be told of.
                await asyncio.shield(watch)
                yield subscription
            finally:
                if len(self._subscribers[user_id]) == 1:  # this one, about to go
                    del self._watches[user_id]
                    self._link.send({"op": "unwatch", "user_id": user_id})


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Mark a watch's failure seen: the subscribers awaiting it have it raised."""
    if not task.cancelled():
        task.exception()


_RELEASE_DELAY = 0.05  # seconds; how late the others hear that a connection ended


class NodeLimiter(ConnectionLimiter):
    """Caps a key's connections on the whole node: this worker's, counted here,
    and the other workers', as the supervisor last told (a connection admitted
    at the same moment by another worker may take a key one over its limit).

    ``lazy`` (a per-IP cap): the end of a connection is told ``_RELEASE_DELAY``
    late, and not at all when a new connection of the same key comes to this
    worker first. Under a stream of short connections (an MTA delivering over
    LMTP, a client polling) the counts then stay as they are and nothing
    crosses the channel; the other workers may still count a connection of
    ours that has just ended, and refuse one a moment early, never admit one
    too many.
    """

    def __init__(
        self, name: str, limit: int, others: Counter[str], channel: Channel, *, lazy: bool
    ) -> None:
        super().__init__(limit)
        self.name = name
        self._others = others
        self._channel = channel
        # Lazy: the ended connections the others still count, by key.
        self._untold: Counter[str] | None = Counter() if lazy else None
        self._telling: asyncio.TimerHandle | None = None

    def try_acquire(self, key: Hashable) -> bool:
        if not super().try_acquire(key):
            return False
        name, untold = str(key), self._untold
        if untold is not None and untold[name]:  # in the place of one the others count
            untold[name] -= 1
            if not untold[name]:
                del untold[name]
        else:
            self._tell(name, 1)
        return True

    def release(self, key: Hashable) -> None:
        super().release(key)
        if self._untold is None:
            self._tell(str(key), -1)
            return
        self._untold[str(key)] += 1
        if self._telling is None:
            loop = asyncio.get_running_loop()
            self._telling = loop.call_later(_RELEASE_DELAY, self._tell_releases)

    def count(self, key: Hashable) -> int:
        return super().count(key) + self._others.get(str(key), 0)

    def _tell_releases(self) -> None:
        self._telling = None
        if self._untold is not None:
            for name, ended in self._untold.items():
                self._tell(name, -ended)
            self._untold.clear()

    def _tell(self, name: str, delta: int) -> None:
        self._channel.send({"op": "count", "limiter": self.name, "key": name, "delta": delta})


class RelayedLoginThrottle:
    """:class:`lightmail.auth.throttle.LoginThrottle` kept by the supervisor for the node."""

    def __init__(self, link: SupervisorLink) -> None:
        self._link = link

    async def retry_after(self, key: str) -> float:
        return float(await self._link.request({"op": "retry_after", "key": key}))

    @asynccontextmanager
    async def checking(self, key: str) -> AsyncIterator[None]:
        token = self._link.token()
        try:
            await self._link.request({"op": "check", "key": key, "token": token})
            yield
        finally:
            self._link.send({"op": "checked", "token": token})

    async def failed(self, key: str) -> None:
        self._link.send({"op": "failed", "key": key})

    async def failures(self, key: str) -> int:
        return int(await self._link.request({"op": "failures", "key": key}))


class SupervisorLink:
    """This worker's channel to its supervisor (:class:`lightmail.runtime.Supervised`)."""

    def __init__(self, index: int, channel: Channel, watched: Iterable[int]) -> None:
        self.index = index
        self.bus = RelayedNotificationBus(self, watched)
        self.throttle = RelayedLoginThrottle(self)
        self._channel = channel
        self._others: defaultdict[str, Counter[str]] = defaultdict(Counter)  # by limiter
        self._tokens = itertools.count()
        self._replies: dict[int, asyncio.Future[Any]] = {}

    def limiter(self, name: str, limit: int, *, lazy: bool = False) -> ConnectionLimiter:
        return NodeLimiter(name, limit, self._others[name], self._channel, lazy=lazy)

    def ready(self) -> None:
        self._channel.send({"op": "ready"})

    def token(self) -> int:
        """A number no other message of this worker carries."""
        return next(self._tokens)

    def send(self, message: Message) -> None:
        self._channel.send(message)

    async def request(self, message: Message) -> Any:
        """Send ``message`` with an ``id`` and return the ``value`` of the reply."""
        token = self.token()
        reply = self._replies[token] = asyncio.get_running_loop().create_future()
        try:
            self._channel.send({**message, "id": token})
            return await reply
        finally:
            del self._replies[token]

    async def run(self) -> None:
        """Serve the supervisor's messages; return once it has gone away."""
        try:
            while (message := await self._channel.receive()) is not None:
                await self._handle(message)
        except ChannelError as error:
            log.error("worker %d: bad message from the supervisor: %s", self.index, error)
        finally:
            for reply in self._replies.values():
                if not reply.done():
                    reply.set_exception(TemporaryFailure("the supervisor is gone"))
            await self._channel.close()

    async def _handle(self, message: Message) -> None:
        op = message["op"]
        if op == "reply":
            reply = self._replies.get(message["id"])
            if reply is not None and not reply.done():
                reply.set_result(message["value"])
        elif op == "event":
            await self.bus.relayed(ChangeEvent.from_dict(message["event"]))
        elif op == "watched":
            self.bus.watched(message["user_id"])
        elif op == "unwatched":
            self.bus.unwatched(message["user_id"])
        elif op == "count":
            counts = self._others[message["limiter"]]
            counts[message["key"]] += message["delta"]
            if counts[message["key"]] <= 0:
                del counts[message["key"]]


async def run_worker(settings: Settings, channel_fd: int) -> None:
    """Serve as the supervisor's worker on the sockets it sends (its first message)."""
    channel = await Channel.open(socket.socket(fileno=channel_fd))
    setup = await channel.receive()
    if setup is None:
        raise ChannelError("the supervisor went away before sending the sockets")
    inherit_sockets(
        {key: [socket.socket(fileno=fd) for fd in fds] for key, fds in setup["sockets"].items()}
    )
    link = SupervisorLink(setup["index"], channel, setup["watched"])
    count_across_node(link)
    await runtime.serve(settings, link)
