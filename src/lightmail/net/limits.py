"""How many connections a key (a client address, a user) may hold: counted by this
process, by every worker process of the node, or by every node of a cluster.

A listener keeps a :class:`ConnectionLimiter` per client address. A login
service asks :func:`connection_limiter` for its per-user one: of this process,
or, in a worker process (:mod:`lightmail.workers`, which calls
:func:`count_across_node`), one that counts every worker's connections; with
``[notify] url`` a :class:`SharedCounts` (:mod:`lightmail.cluster`) widens it
to the cluster as a :class:`SessionLimiter`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from typing import Protocol


class ConnectionLimiter:
    """Counts open connections per key and caps each key at ``limit``.

    The listener keeps one per client IP; a session can keep one per user.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: Counter[Hashable] = Counter()

    def try_acquire(self, key: Hashable) -> bool:
        """Count one more connection for ``key``, unless that would exceed the limit
        (:meth:`count`, which a node-wide limiter widens to every worker)."""
        if self.count(key) >= self.limit:
            return False
        self._counts[key] += 1
        return True

    def release(self, key: Hashable) -> None:
        """Forget one connection counted by a successful :meth:`try_acquire`."""
        if self._counts[key] <= 1:
            del self._counts[key]
        else:
            self._counts[key] -= 1

    def count(self, key: Hashable) -> int:
        return self._counts.get(key, 0)

    async def admit(self, key: Hashable) -> bool:
        """:class:`SessionLimiter`: :meth:`try_acquire`."""
        return self.try_acquire(key)

    async def leave(self, key: Hashable) -> None:
        """:class:`SessionLimiter`: :meth:`release`."""
        self.release(key)


class SessionLimiter(Protocol):
    """Caps each user's sessions (``max_connections_per_user``): a
    :class:`ConnectionLimiter` of the process or the node, or one that counts
    every node of a cluster (:class:`SharedCounts`)."""

    async def admit(self, key: Hashable) -> bool:
        """Count one more session of ``key``, unless that would exceed the limit."""
        ...

    async def leave(self, key: Hashable) -> None:
        """Forget one session counted by a successful :meth:`admit`."""
        ...


class SharedCounts(Protocol):
    """Makes limiters that count a key's sessions on every node of a cluster
    (:mod:`lightmail.cluster`), on top of this node's own ``local`` count."""

    def limiter(self, name: str, local: ConnectionLimiter) -> SessionLimiter: ...


class NodeCounts(Protocol):
    """Makes limiters that count the connections of every process of a node."""

    def limiter(self, name: str, limit: int, *, lazy: bool = False) -> ConnectionLimiter: ...


_node_counts: list[NodeCounts] = []  # in a worker process: the one count_across_node set


def count_across_node(counts: NodeCounts) -> None:
    """Make the limiters created from now on in this process cap the whole node."""
    _node_counts[:] = [counts]


def connection_limiter(name: str, limit: int, *, lazy: bool = False) -> ConnectionLimiter:
    """The limiter ``name`` (``imap per_user``): of this process, or of the node.

    ``lazy``: the node's other processes may hear a moment late that a
    connection ended (:class:`lightmail.workers.worker.NodeLimiter`), which
    spares the messages when new connections keep taking the places of ended
    ones: right for a client address, wrong for a user who logs out and back in.
    """
    if _node_counts:
        return _node_counts[0].limiter(name, limit, lazy=lazy)
    return ConnectionLimiter(limit)
