"""The ``sweep`` lease on both backends: of the collectors sharing a database, the
one holding it does the orphan and unfinished-upload sweeps; another takes it
over once it has run out (:mod:`lightmail.gc.lease`)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from lightmail.gc import GarbageCollector
from lightmail.gc.lease import SWEEP, GcLease
from lightmail.storage.db import tables as t
from tests.contract.test_gc import DAY, GcEnv, env, message, one_chunk, settings

__all__ = ["env"]  # the fixture


async def holder(env: GcEnv) -> str:
    async with env.db.read() as conn:
        query = select(t.gc_leases.c.holder).where(t.gc_leases.c.name == SWEEP)
        return str((await conn.execute(query)).scalar_one())


async def test_only_the_holder_sweeps_until_its_lease_runs_out(env: GcEnv) -> None:
    first = await env.store.store_message(one_chunk(message(1)))
    env.offset = 2 * DAY
    a, b = (
        GarbageCollector(env.db, env.blobs, settings(), node=name, clock=env.clock)
        for name in ("node-a", "node-b")
    )
    assert (await a.run()).orphans_deleted == 1
    assert await holder(env) == "node-a"

    second = await env.store.store_message(one_chunk(message(2)))
    assert (await b.run()).orphans_deleted == 0  # A holds the lease
    assert (await b.run(dry_run=True)).orphans_deleted == 1  # a dry run looks anyway
    assert (await a.run()).orphans_deleted == 1  # A renews its own
    assert {first.key, second.key}.isdisjoint(await env.blob_keys())

    env.offset += timedelta(seconds=settings().interval + 1)  # A stopped renewing
    third = await env.store.store_message(one_chunk(message(3)))
    env.offset += 2 * DAY
    assert (await b.run()).orphans_deleted == 1
    assert await holder(env) == "node-b"
    assert (await a.run()).orphans_deleted == 0
    assert third.key not in await env.blob_keys()


async def test_two_nodes_claiming_at_once_get_one_lease(env: GcEnv) -> None:
    leases = [
        GcLease(env.db, SWEEP, f"node-{index}", timedelta(minutes=5), env.clock)
        for index in range(6)
    ]
    won = await asyncio.gather(*(lease.claim() for lease in leases))
    assert sum(won) == 1
    assert await holder(env) == f"node-{won.index(True)}"
