"""The supervisor's hub: relays between workers, tells each which users the
others watch, adds up their connection counts, keeps the login throttle, and
forgets a worker that leaves; and what a worker sends it (its limiters' counts,
the events of users watched elsewhere)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from lightmail.config import AUTH_DEFAULTS
from lightmail.notify.bus import ChangeEvent, ChangeKind
from lightmail.workers.channel import Channel, Message
from lightmail.workers.hub import Hub
from lightmail.workers.worker import NodeLimiter, SupervisorLink


@pytest.fixture
async def pairs() -> AsyncIterator[list[tuple[Channel, Channel]]]:
    """Three channels: the supervisor's end and the worker's end of each."""
    made = []
    for _ in range(3):
        one, other = socket.socketpair()
        made.append((await Channel.open(one), await Channel.open(other)))
    yield made
    for ours, theirs in made:
        await ours.close()
        await theirs.close()


async def received(channel: Channel) -> Message:
    async with asyncio.timeout(5):
        message = await channel.receive()
    assert message is not None
    return message


def count(key: str, delta: int, limiter: str = "imap per_user") -> Message:
    return {"op": "count", "limiter": limiter, "key": key, "delta": delta}


def joined(pairs: list[tuple[Channel, Channel]], workers: int) -> Hub:
    """A hub that workers 0 to ``workers - 1`` have joined, on the first ``pairs``."""
    hub = Hub(AUTH_DEFAULTS)
    for index, (ours, _) in enumerate(pairs[:workers]):
        hub.join(index, ours)
    return hub


async def watch(hub: Hub, index: int, end: Channel, user_id: int, told: list[Channel]) -> None:
    """Worker ``index`` (whose end of the channel is ``end``) watches ``user_id``;
    the workers of the ends ``told`` learn that it is watched elsewhere now."""
    await hub.handle(index, {"op": "watch", "user_id": user_id, "id": 1})
    assert await received(end) == {"op": "reply", "id": 1, "value": None}
    for other in told:
        assert await received(other) == {"op": "watched", "user_id": user_id}


async def test_counts_reach_the_other_workers_and_leave_with_their_worker(
    pairs: list[tuple[Channel, Channel]],
) -> None:
    (first, first_end), (_, second_end), (third, third_end) = pairs
    hub = joined(pairs, 2)
    await watch(hub, 1, second_end, 7, [first_end])
    await hub.handle(0, count("7", 1))
    await hub.handle(0, {"op": "event", "event": {"user_id": 7}})
    assert await received(second_end) == count("7", 1)
    assert await received(second_end) == {"op": "event", "event": {"user_id": 7}}
    assert hub.watched_elsewhere(2) == [7]  # what its setup message tells a new worker
    hub.join(2, third)  # learns what the others hold
    assert await received(third_end) == count("7", 1)
    hub.leave(0)
    assert await received(second_end) == count("7", -1)
    assert await received(third_end) == count("7", -1)
    first.send({"op": "probe"})  # nothing was sent to worker 0 itself before it
    assert await received(first_end) == {"op": "probe"}


async def test_events_reach_only_the_workers_watching_their_user(
    pairs: list[tuple[Channel, Channel]],
) -> None:
    (first, first_end), (second, second_end), (third, third_end) = pairs
    hub = joined(pairs, 3)
    await watch(hub, 1, second_end, 7, [first_end, third_end])
    await watch(hub, 2, third_end, 8, [first_end, second_end])
    await hub.handle(0, {"op": "event", "event": {"user_id": 7}})
    await hub.handle(0, {"op": "event", "event": {"user_id": 8}})
    await hub.handle(0, {"op": "event", "event": {"user_id": 9}})  # nobody's
    await hub.handle(1, {"op": "event", "event": {"user_id": 7}})  # not back to itself
    await hub.handle(1, {"op": "unwatch", "user_id": 7})
    await hub.handle(0, {"op": "event", "event": {"user_id": 7}})
    for ours in (first, second, third):
        ours.send({"op": "probe"})  # behind whatever the hub sent that worker
    unwatched = {"op": "unwatched", "user_id": 7}  # nobody else watches 7 now
    assert await received(first_end) == unwatched
    assert await received(first_end) == {"op": "probe"}
    assert await received(second_end) == {"op": "event", "event": {"user_id": 7}}
    assert await received(second_end) == {"op": "probe"}
    assert await received(third_end) == {"op": "event", "event": {"user_id": 8}}
    assert await received(third_end) == unwatched
    assert await received(third_end) == {"op": "probe"}


async def test_a_worker_hears_only_when_a_user_gets_a_first_or_loses_a_last_watcher(
    pairs: list[tuple[Channel, Channel]],
) -> None:
    """Elsewhere: a second watcher, or the end of one of two, changes nothing for it;
    the end of a worker ends its watches."""
    (first, first_end), (second, second_end), (_, third_end) = pairs
    hub = joined(pairs, 3)
    await watch(hub, 1, second_end, 7, [first_end, third_end])
    await watch(hub, 2, third_end, 7, [second_end])  # worker 0 knew already
    await hub.handle(1, {"op": "unwatch", "user_id": 7})  # worker 2 still watches
    assert await received(third_end) == {"op": "unwatched", "user_id": 7}
    hub.leave(2)  # and with it the last watch of 7
    assert await received(second_end) == {"op": "unwatched", "user_id": 7}
    for ours in (first, second):
        ours.send({"op": "probe"})
    assert await received(first_end) == {"op": "unwatched", "user_id": 7}
    assert await received(first_end) == {"op": "probe"}
    assert await received(second_end) == {"op": "probe"}


async def test_a_worker_sends_the_events_of_a_user_once_watched_elsewhere(
    pairs: list[tuple[Channel, Channel]],
) -> None:
    """Before that, it keeps the last of each mailbox and kind, and sends them when it
    hears of the watch: a session elsewhere may have read its mailbox before."""
    (ours, supervisor_end), _, _ = pairs
    link = SupervisorLink(0, ours, [7])
    await link.bus.publish(ChangeEvent(8, ChangeKind.MESSAGES_ADDED, 1, modseq=2))
    await link.bus.publish(ChangeEvent(8, ChangeKind.MESSAGES_ADDED, 1, modseq=3))
    await link.bus.publish(ChangeEvent(8, ChangeKind.FLAGS_CHANGED, 1, modseq=4))
    await link.bus.publish(ChangeEvent(7, ChangeKind.MESSAGES_ADDED, 5))
    assert (await received(supervisor_end))["event"]["user_id"] == 7
    await link._handle({"op": "watched", "user_id": 8})
    kept = [(await received(supervisor_end))["event"] for _ in range(2)]
    assert [(event["kind"], event["modseq"]) for event in kept] == [("added", 3), ("flags", 4)]
    await link.bus.publish(ChangeEvent(8, ChangeKind.MESSAGES_EXPUNGED, 1, modseq=6))
    assert (await received(supervisor_end))["event"]["modseq"] == 6
    await link._handle({"op": "unwatched", "user_id": 7})
    await link.bus.publish(ChangeEvent(7, ChangeKind.MESSAGES_ADDED, 5))  # kept, not sent
    ours.send({"op": "probe"})
    assert await received(supervisor_end) == {"op": "probe"}


async def test_the_throttle_is_one_for_every_worker(
    pairs: list[tuple[Channel, Channel]],
) -> None:
    hub = Hub(dataclasses.replace(AUTH_DEFAULTS, throttle_after=1))
    (first, first_end), (second, second_end), _ = pairs
    hub.join(0, first)
    hub.join(1, second)
    await hub.handle(0, {"op": "failed", "key": "account:a@example.org"})
    await hub.handle(1, {"op": "failures", "key": "account:a@example.org", "id": 3})
    assert await received(second_end) == {"op": "reply", "id": 3, "value": 1}
    await hub.handle(1, {"op": "retry_after", "key": "account:a@example.org", "id": 4})
    reply = await received(second_end)
    assert reply["id"] == 4
    assert reply["value"] > 0
    # A password check held by worker 0 ends when it leaves, so worker 1 gets its turn.
    await hub.handle(0, {"op": "check", "key": "client:192.0.2.1", "token": 1, "id": 5})
    assert await received(first_end) == {"op": "reply", "id": 5, "value": None}
    await hub.handle(1, {"op": "check", "key": "client:192.0.2.1", "token": 1, "id": 6})
    hub.leave(0)
    assert await received(second_end) == {"op": "reply", "id": 6, "value": None}
    await hub.handle(1, {"op": "checked", "token": 1})


async def test_a_limiter_tells_an_ended_connection_late_or_not_at_all(
    pairs: list[tuple[Channel, Channel]],
) -> None:
    """A release is told after a moment, unless a new connection of the key takes
    its place first: the other workers never count fewer than there are."""
    (ours, supervisor_end), _, _ = pairs
    others: Counter[str] = Counter({"192.0.2.1": 1})
    limiter = NodeLimiter("lmtp per_ip", 2, others, ours, lazy=True)
    assert limiter.try_acquire("192.0.2.1")
    assert not limiter.try_acquire("192.0.2.1")  # one here, one in another worker
    assert await received(supervisor_end) == count("192.0.2.1", 1, "lmtp per_ip")
    limiter.release("192.0.2.1")
    assert limiter.try_acquire("192.0.2.1")  # in its place: nothing to tell
    limiter.release("192.0.2.1")
    assert limiter.try_acquire("192.0.2.2")
    limiter.release("192.0.2.2")
    assert await received(supervisor_end) == count("192.0.2.2", 1, "lmtp per_ip")
    assert await received(supervisor_end) == count("192.0.2.1", -1, "lmtp per_ip")  # a moment later
    assert await received(supervisor_end) == count("192.0.2.2", -1, "lmtp per_ip")
    ours.send({"op": "probe"})
    assert await received(supervisor_end) == {"op": "probe"}  # and nothing else
    assert limiter.count("192.0.2.1") == 1  # the other worker's


async def test_a_per_user_limiter_tells_an_ended_session_at_once(
    pairs: list[tuple[Channel, Channel]],
) -> None:
    """A user who logs out and back in through another worker must not be refused."""
    (ours, supervisor_end), _, _ = pairs
    limiter = NodeLimiter("imap per_user", 1, Counter(), ours, lazy=False)
    assert limiter.try_acquire("7")
    limiter.release("7")
    assert await received(supervisor_end) == count("7", 1)
    assert await received(supervisor_end) == count("7", -1)
