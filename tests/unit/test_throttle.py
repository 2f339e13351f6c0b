"""Login throttling: the delay grows and caps, counts expire, bursts are held back."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress

import pytest

from lightmail.auth.throttle import InProcessLoginThrottle, client_key, penalty
from lightmail.config import AUTH_DEFAULTS, AuthSettings

SETTINGS = dataclasses.replace(
    AUTH_DEFAULTS,
    throttle_after=3,
    throttle_delay=1.0,
    throttle_max_delay=60.0,
    throttle_reset=900.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_penalty_starts_after_the_free_failures_doubles_and_caps() -> None:
    delays = [penalty(n, SETTINGS) for n in range(12)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert penalty(10**6, SETTINGS) == 60  # no overflow however long an attack goes on
    assert penalty(0, dataclasses.replace(SETTINGS, throttle_after=0)) == 1


async def test_the_delay_is_counted_from_the_last_failure_and_grows() -> None:
    clock = Clock()
    throttle = InProcessLoginThrottle(SETTINGS, clock)
    key = "client:192.0.2.1"
    for _ in range(2):
        await throttle.failed(key)
        assert await throttle.retry_after(key) == 0
    for expected in (1, 2, 4, 8, 16, 32, 60, 60):
        await throttle.failed(key)
        assert await throttle.retry_after(key) == expected
        clock.now += expected - 0.5
        assert await throttle.retry_after(key) == 0.5
        clock.now += 0.5
        assert await throttle.retry_after(key) == 0
    assert await throttle.failures(key) == 10
    assert await throttle.retry_after("client:192.0.2.2") == 0  # keys are separate


async def test_counts_are_forgotten_after_throttle_reset() -> None:
    clock = Clock()
    throttle = InProcessLoginThrottle(SETTINGS, clock)
    for _ in range(5):
        await throttle.failed("account:a@example.org")
    clock.now += 899
    assert await throttle.failures("account:a@example.org") == 5
    await throttle.failed("account:b@example.org")
    clock.now += 1
    assert await throttle.failures("account:a@example.org") == 0
    assert await throttle.retry_after("account:a@example.org") == 0
    await throttle.failed("account:a@example.org")  # counts from one again
    assert await throttle.failures("account:a@example.org") == 1
    assert await throttle.failures("account:b@example.org") == 1


async def test_a_burst_gets_only_the_free_checks_at_once() -> None:
    """Attempts that arrive together may not all reach the hasher before the
    first of them fails: only ``throttle_after`` run, the others wait."""
    clock = Clock()
    throttle = InProcessLoginThrottle(SETTINGS, clock)
    key = "client:192.0.2.9"
    running: list[int] = []
    now_running = 0
    release = asyncio.Event()

    async def attempt() -> float:
        nonlocal now_running
        async with throttle.checking(key):
            wait = await throttle.retry_after(key)
            if wait:
                return wait  # throttled: no check
            now_running += 1
            running.append(now_running)
            await release.wait()
            await throttle.failed(key)
            now_running -= 1
            return 0.0

    tasks = [asyncio.create_task(attempt()) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert max(running) == 3  # the other seven are waiting
    release.set()
    waits = await asyncio.gather(*tasks)
    assert len(running) == 3  # three checks in all: the rest saw the failures
    assert waits.count(0.0) == 3
    assert set(waits) == {0.0, 1.0}
    assert await throttle.failures(key) == 3


async def test_after_failures_one_check_at_a_time() -> None:
    throttle = InProcessLoginThrottle(SETTINGS, Clock())
    key = "account:x@example.org"
    for _ in range(2):
        await throttle.failed(key)
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with throttle.checking(key):
            inside.set()
            await leave.wait()

    first = asyncio.create_task(holder())
    await inside.wait()
    second = asyncio.create_task(holder())
    inside.clear()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not inside.is_set()  # waiting for the first
    leave.set()
    await asyncio.gather(first, second)
    assert inside.is_set()


def test_client_keys() -> None:
    assert client_key(ipaddress.ip_address("192.0.2.7")) == "client:192.0.2.7"
    assert client_key(ipaddress.ip_address("::ffff:192.0.2.7")) == "client:192.0.2.7"
    # One IPv6 host usually holds a whole /64: it is one client.
    assert client_key(ipaddress.ip_address("2001:db8:1:2::1")) == client_key(
        ipaddress.ip_address("2001:db8:1:2:ffff::9")
    )
    assert client_key(ipaddress.ip_address("2001:db8:1:2::1")) == "client:2001:db8:1:2::/64"
    assert client_key(ipaddress.ip_address("2001:db8:1:3::1")) != "client:2001:db8:1:2::/64"
    assert client_key(None) == "client:local"


@pytest.mark.parametrize("after", [0, 1])
async def test_with_few_free_failures_one_check_still_runs(after: int) -> None:
    settings: AuthSettings = dataclasses.replace(SETTINGS, throttle_after=after)
    throttle = InProcessLoginThrottle(settings, Clock())
    async with throttle.checking("client:local"):
        pass
    async with throttle.checking("client:local"):
        pass
