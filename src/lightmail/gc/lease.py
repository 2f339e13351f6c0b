"""A lease on a GC task that one node of the cluster does per round.

The orphan sweep and the sweep of unfinished blob writes list the whole blob
store: with several nodes each doing it, they would all do the same work. The
node that holds the ``sweep`` row of ``gc_leases`` (``holder``) until
``held_until`` does it; the others skip it until the lease has run out.

A node claims the lease with one conditional UPDATE (the row is free, or its
own), so two nodes that claim at once cannot both win: on MySQL/MariaDB the
second waits for the first's row lock and then finds the row taken; on a
Galera cluster, where row locks do not reach the other nodes, certification
rolls one of the two commits back (error 1213), and its retry finds the row
taken. ``GET_LOCK`` would not do: Galera does not replicate it. The holder
renews the lease as its sweep goes on, and keeps it when done, so that the
next node's round does not sweep again right after; a node that dies leaves a
lease that another node takes once it has run out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database

SWEEP = "sweep"  # the orphan sweep and the unfinished-upload sweep


class GcLease:
    """The lease ``name`` as held by ``holder`` (a node's name), for ``duration``."""

    def __init__(
        self,
        db: Database,
        name: str,
        holder: str,
        duration: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.name = name
        self.holder = holder[:255]
        self.duration = duration
        self._clock = clock

    async def claim(self) -> bool:
        """Take the lease, or extend it when it is ours; False while another node holds it."""
        now = self._clock()
        row = t.gc_leases.c

        async def body(conn: AsyncConnection) -> int:
            result = await conn.execute(
                update(t.gc_leases)
                .where(
                    row.name == self.name,
                    or_(row.holder == self.holder, row.held_until <= now),
                )
                .values(holder=self.holder, held_until=now + self.duration)
            )
            return int(result.rowcount)

        return await self.db.transact(body) == 1
