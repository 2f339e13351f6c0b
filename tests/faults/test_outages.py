"""Deliveries and APPENDs under load while the database or the S3 server is frozen
(SIGSTOP) or killed (kill -9) and restarted.

Afterwards every acknowledged delivery exists exactly once and byte for byte,
every message row has its blob, nothing was refused for good, and no session
was dropped. The counts are printed (``-s`` shows them); ``bench/faults.py``
runs the same load longer.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.faults.conftest import RigFactory
from tests.support.faultload import run_load
from tests.support.private_mariadb import PrivateMariaDB
from tests.support.s3server import SeaweedFS


async def test_database_frozen_under_load(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB
) -> None:
    async def freeze() -> None:
        private_mariadb.freeze()
        await asyncio.sleep(2)
        private_mariadb.thaw()

    counts = await run_load(await rig_factory(), [freeze])
    print(f"database frozen 2 s: {counts.summary()}")
    assert counts.clean, counts.summary()
    assert counts.faults == 1


async def test_database_killed_and_restarted_under_load(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB, caplog: pytest.LogCaptureFixture
) -> None:
    async def kill() -> None:
        private_mariadb.kill()
        await asyncio.sleep(1)
        await asyncio.to_thread(private_mariadb.start)

    rig = await rig_factory()
    caplog.set_level(logging.INFO)
    counts = await run_load(rig, [kill])
    print(f"database killed, back after 1 s: {counts.summary()}")
    assert counts.clean, counts.summary()
    assert counts.faults == 1
    assert counts.temporary > 0  # the fault was felt
    # One line per failure, a traceback only at DEBUG, one pair of lines per outage.
    noisy = [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]
    assert not noisy, [r.getMessage() for r in noisy]
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("lightmail")]
    assert sum(m.startswith("database unavailable since ") for m in messages) == 1
    assert sum(m.startswith("database back after ") for m in messages) == 1


async def test_s3_frozen_under_load(rig_factory: RigFactory, private_s3: SeaweedFS) -> None:
    async def freeze() -> None:
        private_s3.freeze()
        await asyncio.sleep(2)
        private_s3.thaw()

    counts = await run_load(await rig_factory(), [freeze])
    print(f"S3 frozen 2 s: {counts.summary()}")
    assert counts.clean, counts.summary()
    assert counts.faults == 1


async def test_s3_killed_and_restarted_under_load(
    rig_factory: RigFactory, private_s3: SeaweedFS
) -> None:
    async def kill() -> None:
        private_s3.kill()
        await asyncio.sleep(1)
        await asyncio.to_thread(private_s3.start)

    counts = await run_load(await rig_factory(), [kill])
    print(f"S3 killed, restarted after 1 s: {counts.summary()}")
    assert counts.clean, counts.summary()
    assert counts.faults == 1
    assert counts.temporary > 0
