"""Login throttling: a growing delay after failed logins, per client and per account.

Like Dovecot's auth penalty: once a key (a client address, or an account) has
``throttle_after`` failed logins, its next password check may happen only
``throttle_delay`` after the last failure, doubled for each further failure
up to ``throttle_max_delay``. An attempt that comes sooner is *throttled*: it
is refused without its password being checked, so it costs no hashing. The
counts of a key are forgotten ``throttle_reset`` after its last failure.

A burst of attempts that all arrive before the first of them has failed would
otherwise all reach the hasher, so a key also has a limited number of checks
running at once: ``throttle_after`` less its failures, at least one. Further
attempts wait (holding nothing but their connection) until a check ends, and
then see the failures it added.

The counts live behind :class:`LoginThrottle`, so that a shared store (Redis)
can later give several nodes one view; :class:`InProcessLoginThrottle` serves
one process (the supervisor's, for a node of several worker processes:
:mod:`lightmail.workers`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from lightmail.config import AuthSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAX_KEYS = 100_000  # beyond this, the keys whose last failure is oldest are forgotten first


def client_key(ip: IPAddress | None) -> str:
    """The throttling key of a client: its IPv4 address, its IPv6 /64 (one host
    usually holds a whole /64), or ``local`` for a unix socket."""
    if ip is None:
        return "client:local"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"client:{ip.ipv4_mapped}"
        return f"client:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"client:{ip}"


def account_key(address: str) -> str:
    """The throttling key of an account (a normalized address)."""
    return f"account:{address}"


def penalty(failures: int, settings: AuthSettings) -> float:
    """Seconds a key with ``failures`` failed logins waits after its last failure."""
    excess = failures - settings.throttle_after
    if excess < 0:
        return 0.0
    return min(settings.throttle_max_delay, settings.throttle_delay * 2.0 ** min(excess, 64))


class LoginThrottle(Protocol):
    """Failed-login counts shared by every login path of a node (IMAP, POP3, ...)."""

    async def retry_after(self, key: str) -> float:
        """Seconds before ``key`` may have a password checked; 0 when it may now."""
        ...

    def checking(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold one of the password checks ``key`` may have running at once
        (waiting for one to end when all are taken)."""
        ...

    async def failed(self, key: str) -> None:
        """Count a failed login of ``key`` now."""
        ...

    async def failures(self, key: str) -> int:
        """The failed logins of ``key`` that are not forgotten yet."""
        ...


@dataclass(slots=True)
class _Failures:
    count: int
    last: float  # the clock at the last one


@dataclass(slots=True)
class _Checks:
    holders: int = 0  # attempts running or waiting
    running: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever one ends


class InProcessLoginThrottle:
    """:class:`LoginThrottle` for one process; ``clock`` is monotonic seconds."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        # Ordered by last failure, oldest first, so forgotten keys are swept from the front.
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._checks: dict[str, _Checks] = {}  # only keys with checks under way or waiting

    async def retry_after(self, key: str) -> float:
        failures = self._current(key)
        if failures is None:
            return 0.0
        due = failures.last + penalty(failures.count, self.settings)
        return max(0.0, due - self._clock())

    @asynccontextmanager
    async def checking(self, key: str) -> AsyncIterator[None]:
        checks = self._checks.setdefault(key, _Checks())
        checks.holders += 1  # waiting or running: keeps the entry
        try:
            limit = self.settings.throttle_after
            while checks.running >= max(1, limit - await self.failures(key)):
                checks.ended.clear()
                await checks.ended.wait()
            checks.running += 1
            try:
                yield
            finally:
                checks.running -= 1
                checks.ended.set()
        finally:
            checks.holders -= 1
            if not checks.holders:
                del self._checks[key]

    async def failed(self, key: str) -> None:
        now = self._clock()
        failures = self._current(key)
        if failures is None:
            self._failures[key] = _Failures(1, now)
        else:
            failures.count += 1
            failures.last = now
            self._failures.move_to_end(key)
        while self._failures:  # forget what is old enough, or the oldest beyond _MAX_KEYS
            oldest, first = next(iter(self._failures.items()))
            if len(self._failures) <= _MAX_KEYS and now - first.last < self.settings.throttle_reset:
                break
            del self._failures[oldest]

    async def failures(self, key: str) -> int:
        failures = self._current(key)
        return 0 if failures is None else failures.count

    def _current(self, key: str) -> _Failures | None:
        failures = self._failures.get(key)
        if failures is not None and self._clock() - failures.last >= self.settings.throttle_reset:
            del self._failures[key]
            return None
        return failures
