"""Per-user session caps for the whole cluster, counted in Redis.

One sorted set per cap and user (``lightmail:conn:imap per_user:<user id>``)
holds one member per session anywhere in the cluster, scored with the time
(Redis's clock, in milliseconds) until which it counts. Admitting a session is
one Lua script, atomic in Redis: drop the members whose time has passed, refuse
at the limit, else add the new one. Each process renews its members every third
of ``[notify] lease``, so the sessions of a node that died stop counting one
lease after its last renewal; a session that ends removes its member at once.

Every session is counted in this node's own limiter too (the node's count,
across its workers), before Redis is asked: that count alone decides while
Redis is unreachable, so each node then admits up to the limit by itself.
The sessions admitted meanwhile are added to Redis by the next renewal once it
is back, so the cluster's count is whole again within a third of a lease.
"""

from __future__ import annotations

from collections.abc import Hashable

from redis.asyncio import Redis

from lightmail.cluster.state import SharedRedis
from lightmail.net.limits import ConnectionLimiter

# KEYS[1]: the set; ARGV: limit, lease in ms, the new member. 1 admitted, 0 refused.
ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# KEYS: sets; ARGV[1]: lease in ms, then for each set its number of members, then
# all the members in the order of their sets. Adds those missing (admitted while
# Redis was unreachable) and pushes every one's time a lease ahead.
RENEW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[1])
local member = 2 + #KEYS
for index, key in ipairs(KEYS) do
  for _ = 1, tonumber(ARGV[1 + index]) do
    redis.call('ZADD', key, now + lease, ARGV[member])
    member = member + 1
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('PEXPIRE', key, lease)
end
return #KEYS
"""

_RENEW_BATCH = 500  # sets per renewal script


class RedisSessionLimiter:
    """:class:`~lightmail.net.listener.SessionLimiter` of the cluster for the cap
    ``name`` (``imap per_user``), whose limit is ``local``'s."""

    def __init__(self, state: SharedRedis, name: str, local: ConnectionLimiter) -> None:
        self.name = name
        self.local = local
        self._state = state
        self._admit = state.redis.register_script(ADMIT)
        self._renew_script = state.redis.register_script(RENEW)
        self._members: dict[str, list[str]] = {}  # set key -> this process's members
        state.renew_with(self.renew)

    @property
    def limit(self) -> int:
        return self.local.limit

    def key(self, user: Hashable) -> str:
        return self._state.key("conn", self.name, str(user))

    async def admit(self, key: Hashable) -> bool:
        if not self.local.try_acquire(key):
            return False
        name, member = self.key(key), self._state.member()
        lease = _ms(self._state.lease)

        async def admit(redis: Redis) -> int:
            return int(await self._admit(keys=[name], args=[self.limit, lease, member]))

        try:
            admitted = await self._state.decide(admit)
        except BaseException:
            self.local.release(key)
            raise
        if admitted == 0:
            self.local.release(key)
            return False
        # Admitted, or Redis is unreachable and this node's count let it in (the
        # next renewal adds it to Redis).
        self._members.setdefault(name, []).append(member)
        return True

    async def leave(self, key: Hashable) -> None:
        self.local.release(key)
        name = self.key(key)
        members = self._members.get(name)
        if not members:
            return
        member = members.pop()
        if not members:
            del self._members[name]

        async def remove(redis: Redis) -> int:
            return int(await redis.zrem(name, member))

        await self._state.call(remove)  # while Redis is unreachable, the lease ends it

    async def renew(self) -> None:
        """Push this process's members a lease ahead (adding those Redis lacks)."""
        held = [(name, list(members)) for name, members in self._members.items() if members]
        lease = _ms(self._state.lease)
        for start in range(0, len(held), _RENEW_BATCH):
            batch = held[start : start + _RENEW_BATCH]
            args: list[str | int] = [lease, *(len(members) for _, members in batch)]
            args += [member for _, members in batch for member in members]
            keys = [name for name, _ in batch]

            async def renew(
                redis: Redis, keys: list[str] = keys, args: list[str | int] = args
            ) -> int:
                return int(await self._renew_script(keys=keys, args=args))

            if await self._state.call(renew) is None:
                return


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
