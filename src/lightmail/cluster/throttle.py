"""Login throttling for the whole cluster: failed-login counts in Redis.

Each throttled key (``client:192.0.2.7``, ``account:alice@example.org``) is a
hash ``lightmail:login:<key>`` holding the number of failures and the time of
the last one (Redis's clock, in milliseconds), which expires ``throttle_reset``
after that last failure, as :class:`~lightmail.auth.throttle.InProcessLoginThrottle`
forgets it. Counting a failure and reading a key's state are each one Lua
script, so two nodes counting at once both count, and the delay is computed
here from what Redis returns, with the same :func:`~lightmail.auth.throttle.penalty`.

Every failure is also counted in this node's own throttle (``local``), which
answers while Redis is unreachable, and which keeps the limit on password
checks running at once for a key (:meth:`checking`): that limit is per node.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from redis.asyncio import Redis

from lightmail.auth.throttle import LoginThrottle, penalty
from lightmail.cluster.state import SharedRedis
from lightmail.config import AuthSettings

# KEYS[1]: the key's hash; ARGV[1]: throttle_reset in ms.
FAILED = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return count
"""

# KEYS[1]: the key's hash. Returns {failures, last failure, now}, in ms.
STATE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'count', 'last')
return {tonumber(state[1]) or 0, tonumber(state[2]) or 0, now}
"""


class RedisLoginThrottle:
    """:class:`~lightmail.auth.throttle.LoginThrottle` of the cluster."""

    def __init__(self, state: SharedRedis, settings: AuthSettings, local: LoginThrottle) -> None:
        self.settings = settings
        self.local = local
        self._state = state
        self._failed = state.redis.register_script(FAILED)
        self._read = state.redis.register_script(STATE)

    def key(self, key: str) -> str:
        return self._state.key("login", key)

    async def retry_after(self, key: str) -> float:
        state = await self._current(key)
        if state is None:
            return await self.local.retry_after(key)
        failures, last, now = state
        if not failures:
            return 0.0
        due = last + penalty(failures, self.settings) * 1000
        return max(0.0, (due - now) / 1000)

    def checking(self, key: str) -> AbstractAsyncContextManager[None]:
        return self.local.checking(key)

    async def failed(self, key: str) -> None:
        await self.local.failed(key)
        reset = max(1, round(self.settings.throttle_reset * 1000))

        async def failed(redis: Redis) -> int:
            return int(await self._failed(keys=[self.key(key)], args=[reset]))

        await self._state.call(failed)

    async def failures(self, key: str) -> int:
        state = await self._current(key)
        return await self.local.failures(key) if state is None else state[0]

    async def _current(self, key: str) -> tuple[int, int, int] | None:
        async def read(redis: Redis) -> tuple[int, int, int]:
            failures, last, now = await self._read(keys=[self.key(key)])
            return int(failures), int(last), int(now)

        return await self._state.decide(read)
