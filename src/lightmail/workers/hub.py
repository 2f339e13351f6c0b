"""The supervisor's part in keeping the node one: it relays change notifications
(to the workers with a subscriber for the user), adds up the workers' connection
counts and keeps the failed-login counts.

Each worker is told which users another worker watches (has a subscriber
for), and sends only their events: ``watched`` when a user gets its first
watcher elsewhere, ``unwatched`` when it has none left elsewhere; a worker that
starts gets the list in its setup message (:meth:`Hub.watched_elsewhere`). A
watch is answered at once. A worker may have passed over an event of the user
before it hears of the watch, after the watching session read what it shows:
it keeps the last events it passed over and sends a user's on ``watched``
(:class:`lightmail.workers.worker.RelayedNotificationBus`)."""

from __future__ import annotations

import asyncio
from collections import Counter

from lightmail.auth.throttle import InProcessLoginThrottle
from lightmail.config import AuthSettings
from lightmail.workers.channel import Channel, Message

_CountKey = tuple[str, str]  # limiter name, connection key


class Hub:
    """What the workers share, kept by the supervisor (see :mod:`.worker`)."""

    def __init__(self, auth: AuthSettings) -> None:
        self._channels: dict[int, Channel] = {}
        self._counts: dict[int, Counter[_CountKey]] = {}  # by worker
        self._throttle = InProcessLoginThrottle(auth)
        self._checks: dict[int, dict[int, asyncio.Event]] = {}  # by worker, then token
        self._holders: dict[int, set[asyncio.Task[None]]] = {}  # by worker
        self._watching: dict[int, set[int]] = {}  # by worker: users with a subscriber there

    def watched_elsewhere(self, index: int) -> list[int]:
        """The users a worker other than ``index`` watches."""
        watched = (users for other, users in self._watching.items() if other != index)
        return sorted(set().union(*watched))

    def join(self, index: int, channel: Channel) -> None:
        """Worker ``index`` is up: tell it the other workers' connection counts."""
        totals: Counter[_CountKey] = Counter()
        for counts in self._counts.values():
            totals.update(counts)
        for (limiter, key), count in totals.items():
            channel.send({"op": "count", "limiter": limiter, "key": key, "delta": count})
        self._channels[index] = channel
        self._counts[index] = Counter()
        self._checks[index] = {}
        self._holders[index] = set()
        self._watching[index] = set()

    def leave(self, index: int) -> None:
        """Worker ``index`` is gone: forget its connections and its password checks."""
        del self._channels[index]
        for (limiter, key), count in self._counts.pop(index).items():
            self._others(index, {"op": "count", "limiter": limiter, "key": key, "delta": -count})
        del self._checks[index]
        for user_id in self._watching.pop(index):
            self._tell_others(index, "unwatched", user_id)
        for holder in self._holders.pop(index):
            holder.cancel()

    async def handle(self, index: int, message: Message) -> None:
        """Act on a message from worker ``index``."""
        op = message["op"]
        if op == "event":
            user_id = message["event"]["user_id"]
            for other, channel in self._channels.items():
                if other != index and user_id in self._watching[other]:
                    channel.send(message)
        elif op == "watch":
            self._tell_others(index, "watched", message["user_id"])
            self._watching[index].add(message["user_id"])
            self._reply(index, message, None)
        elif op == "unwatch":
            self._watching[index].discard(message["user_id"])
            self._tell_others(index, "unwatched", message["user_id"])
        elif op == "count":
            counts, key = self._counts[index], (message["limiter"], message["key"])
            counts[key] += message["delta"]
            if not counts[key]:
                del counts[key]
            self._others(index, message)
        elif op == "retry_after":
            self._reply(index, message, await self._throttle.retry_after(message["key"]))
        elif op == "failures":
            self._reply(index, message, await self._throttle.failures(message["key"]))
        elif op == "failed":
            await self._throttle.failed(message["key"])
        elif op == "check":
            done = self._checks[index][message["token"]] = asyncio.Event()
            holder = asyncio.create_task(self._hold(index, message, done))
            self._holders[index].add(holder)
            holder.add_done_callback(self._holders[index].discard)
        elif op == "checked":
            self._checks[index].pop(message["token"]).set()

    async def _hold(self, index: int, message: Message, done: asyncio.Event) -> None:
        """Hold one of the password checks a key may have running, for worker ``index``."""
        async with self._throttle.checking(message["key"]):
            self._reply(index, message, None)
            await done.wait()

    def _watched_but_by(self, index: int, user_id: int) -> bool:
        """Whether a worker other than ``index`` watches ``user_id``."""
        return any(user_id in users for other, users in self._watching.items() if other != index)

    def _tell_others(self, index: int, op: str, user_id: int) -> None:
        """Worker ``index`` starts (``watched``, before it counts) or stops
        (``unwatched``, after) watching ``user_id``: tell each other worker for
        which no worker but itself watches it apart from ``index``, since for
        that one it is the first watcher elsewhere, or the last gone."""
        for other, channel in self._channels.items():
            if other != index and not self._watched_but_by(other, user_id):
                channel.send({"op": op, "user_id": user_id})

    def _reply(self, index: int, message: Message, value: object) -> None:
        self._channels[index].send({"op": "reply", "id": message["id"], "value": value})

    def _others(self, index: int, message: Message) -> None:
        for other, channel in self._channels.items():
            if other != index:
                channel.send(message)
