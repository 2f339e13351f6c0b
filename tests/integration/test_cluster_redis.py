"""What the nodes of a cluster count together in Redis: per-user session caps and
failed logins (:mod:`lightmail.cluster`), on a real Redis.

Each "node" is a :class:`ClusterState` of its own (its own client, its own local
count), as each LightMail process has. Tests on the machine's Redis use a key
prefix of their own; the outage tests stop a private Redis and start it again
on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from lightmail.auth.throttle import InProcessLoginThrottle, LoginThrottle
from lightmail.cluster import ClusterState
from lightmail.config import AUTH_DEFAULTS, AuthSettings, NotifySettings, load_settings
from lightmail.net.limits import ConnectionLimiter, SessionLimiter
from tests.support.metrics import Changes
from tests.support.redis import ONE_WORKER, private_redis, require_shared_redis

pytestmark = ONE_WORKER

LEASE = 0.6  # seconds: [notify] lease of these tests (renewed every 0.2 s)
THROTTLE = dataclasses.replace(
    AUTH_DEFAULTS, throttle_after=2, throttle_delay=5.0, throttle_max_delay=60.0
)


def settings(url: str) -> NotifySettings:
    return load_settings(None, {"LIGHTMAIL_NOTIFY_URL": url}).notify


def shared() -> float | None:
    return REGISTRY.get_sample_value("lightmail_cluster_shared")


@asynccontextmanager
async def nodes(
    url: str, count: int = 2, *, prefix: str | None = None
) -> AsyncIterator[list[ClusterState]]:
    """``count`` processes sharing the Redis at ``url``, under one fresh key prefix."""
    prefix = prefix or f"test-{secrets.token_hex(6)}:"
    async with AsyncExitStack() as stack:
        states = []
        for _ in range(count):
            state = ClusterState(settings(url), prefix=prefix, lease=LEASE)
            await state.start()
            stack.push_async_callback(state.close)
            states.append(state)
        yield states


def caps(states: list[ClusterState], limit: int) -> list[SessionLimiter]:
    return [state.limiter("imap per_user", ConnectionLimiter(limit)) for state in states]


async def admitted(limiter: SessionLimiter, key: int, times: int) -> list[bool]:
    return [await limiter.admit(key) for _ in range(times)]


# -- per-user caps ------------------------------------------------------------------


async def test_the_cap_holds_across_nodes_and_a_session_that_ends_frees_its_place() -> None:
    async with nodes(require_shared_redis()) as states:
        a, b = caps(states, 3)
        assert await admitted(a, 7, 2) == [True, True]
        assert await admitted(b, 7, 2) == [True, False]  # 2 on A + 1 on B: the third
        assert await b.admit(8)  # another user counts apart
        await a.leave(7)
        assert await b.admit(7)
        assert not await a.admit(7)


async def test_concurrent_admissions_on_two_nodes_never_exceed_the_cap() -> None:
    async with nodes(require_shared_redis()) as states:
        a, b = caps(states, 5)
        results = await asyncio.gather(*(node.admit(1) for _ in range(20) for node in (a, b)))
        assert sum(results) == 5


async def test_a_node_that_stops_renewing_frees_its_sessions_after_the_lease() -> None:
    async with nodes(require_shared_redis(), 3) as (a_state, b_state, c_state):
        a, b, c = caps([a_state, b_state, c_state], 2)
        assert await a.admit(1)
        assert await c.admit(1)
        await a_state.close()  # A dies: its session is never left, never renewed
        assert not await b.admit(1)
        await asyncio.sleep(LEASE * 2.5)
        # C renewed its session all along; A's ran out.
        assert await b.admit(1)
        assert not await b.admit(1)


async def test_keys_and_members_with_any_characters_stay_apart() -> None:
    async with nodes(require_shared_redis()) as states:
        a, _ = caps(states, 1)
        hostile = ["x y", "x:y", "x_y", "*", "ünï\u0000code", "a" * 5000, "", "[x]"]
        assert [await a.admit(key) for key in hostile] == [True] * len(hostile)
        assert [await a.admit(key) for key in hostile] == [False] * len(hostile)
        for key in hostile:
            await a.leave(key)
        assert [await a.admit(key) for key in hostile] == [True] * len(hostile)


async def test_while_redis_is_down_each_node_caps_its_own_and_the_cluster_cap_returns(
    tmp_path: Path,
) -> None:
    with private_redis(tmp_path) as server:
        async with nodes(server.url) as states:
            a, b = caps(states, 2)
            assert await a.admit(1)
            changes = Changes()
            server.stop()
            # Each node admits up to the limit by itself; nobody is refused for the outage.
            assert await admitted(a, 1, 2) == [True, False]
            assert await admitted(b, 1, 3) == [True, True, False]
            assert shared() == 0
            assert changes("lightmail_cluster_fallbacks_total") == 3  # local refusals ask none
            await asyncio.sleep(LEASE / 2)  # a renewal fails meanwhile: it decides nothing
            assert changes("lightmail_cluster_fallbacks_total") == 3
            server.start()  # empty: it kept nothing
            await asyncio.sleep(LEASE)  # a renewal puts the 4 sessions back
            assert await b.admit(2)  # another user is not held back
            await b.leave(2)
            assert not await a.admit(1)
            assert not await b.admit(1)
            assert shared() == 1
            for limiter in (a, a, b, b):
                await limiter.leave(1)
            assert await b.admit(1)


async def test_an_unreachable_redis_from_the_start_falls_back_at_once(tmp_path: Path) -> None:
    with private_redis(tmp_path, started=False) as server:
        async with nodes(server.url) as states:
            a, _ = caps(states, 1)
            loop = asyncio.get_running_loop()
            began = loop.time()
            assert await admitted(a, 1, 2) == [True, False]
            assert loop.time() - began < 2


# -- login throttling ---------------------------------------------------------------


def throttles(
    states: list[ClusterState], auth: AuthSettings = THROTTLE
) -> tuple[list[LoginThrottle], list[InProcessLoginThrottle]]:
    local = [InProcessLoginThrottle(auth) for _ in states]
    return [s.throttle(auth, own) for s, own in zip(states, local, strict=True)], local


async def test_failures_on_one_node_throttle_the_key_on_the_other() -> None:
    async with nodes(require_shared_redis()) as states:
        (a, b), _ = throttles(states)
        key = "client:192.0.2.7"
        await a.failed(key)
        assert await b.failures(key) == 1
        assert await b.retry_after(key) == 0
        await a.failed(key)
        assert await b.failures(key) == 2
        assert 4.5 < await b.retry_after(key) <= 5.0
        await b.failed(key)
        assert 9.5 < await a.retry_after(key) <= 10.0  # the delay doubles, whoever counts
        assert await a.retry_after("client:192.0.2.8") == 0


async def test_failures_are_forgotten_throttle_reset_after_the_last() -> None:
    auth = dataclasses.replace(THROTTLE, throttle_reset=0.5)
    async with nodes(require_shared_redis()) as states:
        (a, b), _ = throttles(states, auth)
        await a.failed("account:alice@example.org")
        await asyncio.sleep(0.3)
        await b.failed("account:alice@example.org")
        await asyncio.sleep(0.3)
        assert await a.failures("account:alice@example.org") == 2  # counted from the last
        await asyncio.sleep(0.4)
        assert await a.failures("account:alice@example.org") == 0


async def test_concurrent_failures_on_two_nodes_are_all_counted() -> None:
    async with nodes(require_shared_redis()) as states:
        (a, b), _ = throttles(states)
        await asyncio.gather(*(node.failed("client:x") for _ in range(25) for node in (a, b)))
        assert await a.failures("client:x") == 50


async def test_a_garbled_entry_counts_as_no_failures() -> None:
    prefix = f"test-{secrets.token_hex(6)}:"
    async with nodes(require_shared_redis(), 1, prefix=prefix) as states:
        (a,), _ = throttles(states)
        client = Redis.from_url(require_shared_redis())
        try:
            await client.hset(f"{prefix}login:client:x", mapping={"count": "many", "last": "?"})
            await client.expire(f"{prefix}login:client:x", 60)
        finally:
            await client.aclose()
        assert await a.failures("client:x") == 0
        assert await a.retry_after("client:x") == 0


async def test_while_redis_is_down_each_node_throttles_on_its_own_counts(
    tmp_path: Path,
) -> None:
    with private_redis(tmp_path) as server:
        async with nodes(server.url) as states:
            (a, b), (a_local, _) = throttles(states)
            await a.failed("client:x")
            server.stop()
            await a.failed("client:x")
            assert await a.failures("client:x") == 2  # A counted both itself
            assert await a.retry_after("client:x") > 4
            assert await b.failures("client:x") == 0
            assert await b.retry_after("client:x") == 0  # B is not refused for the outage
            server.start()
            await asyncio.sleep(1.1)  # the back-off after a failure
            assert await b.failures("client:x") == 0  # the restarted Redis kept nothing
            await b.failed("client:x")
            assert await a.failures("client:x") == 1
            assert await a_local.failures("client:x") == 2


async def test_close_ends_the_renewals_even_if_a_renewal_swallows_the_cancellation() -> None:
    """A Redis call may turn the cancellation into a timeout (its own timeout firing
    at the same moment), which looks like an outage: closing must still end the
    renewals, or a stopping server waits for them forever."""
    state = ClusterState(settings("redis://127.0.0.1:1"), prefix="test-close:", lease=0.3)
    renewing = asyncio.Event()
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        renewing.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed += 1  # once: what call() does with a cancellation turned into a timeout

    state.renew_with(stubborn)
    await state.start()
    await renewing.wait()
    closing = asyncio.create_task(state.close())
    done, _ = await asyncio.wait({closing}, timeout=5)
    try:
        assert closing in done, "close() still waits for the renewals"
    finally:
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
