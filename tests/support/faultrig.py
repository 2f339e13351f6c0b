"""LightMail's store, LMTP and IMAP servers on a given database and S3 server,
with raw LMTP and IMAP clients: what the fault tests and ``bench/faults.py`` drive."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from lightmail.accounts.service import Accounts, User
from lightmail.antivirus.policy import scanner_for
from lightmail.config import TcpAddress, load_settings
from lightmail.imap.server import ImapServer
from lightmail.lmtp.server import LmtpServer
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs.base import BlobNotFound
from lightmail.storage.blobs.s3 import S3BlobStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.support.s3server import S3Server

PASSWORD = "secret"
_TIMEOUT = 120.0  # seconds a client waits for one reply (a frozen server answers late)


class LmtpClient:
    """Raw LMTP: send lines, read whole replies; a closed connection is ConnectionError."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def reply(self) -> tuple[int, list[str]]:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), _TIMEOUT)
            if not line.endswith(b"\r\n"):
                raise ConnectionResetError("the LMTP server closed the connection")
            lines.append(line[4:-2].decode())
            if line[3:4] == b" ":
                return int(line[:3]), lines

    async def command(self, line: str) -> tuple[int, list[str]]:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class ImapClient:
    """Raw IMAP: one command at a time, literals in replies read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._tag = 0

    async def line(self) -> bytes:
        """One response line, with the literals it announces read into it."""
        line = await asyncio.wait_for(self.reader.readline(), _TIMEOUT)
        if not line.endswith(b"\r\n"):
            raise ConnectionResetError("the IMAP server closed the connection")
        while (literal := re.search(rb"\{(\d+)\}\r\n$", line)) is not None:
            line += await self.reader.readexactly(int(literal.group(1)))
            line += await asyncio.wait_for(self.reader.readline(), _TIMEOUT)
        return line

    async def command(
        self, command: str, literal: bytes | None = None
    ) -> tuple[bytes, list[bytes]]:
        """Send ``command`` (with a LITERAL+ literal after it); return the tagged
        line less its tag, and the untagged ones."""
        self._tag += 1
        tag = f"t{self._tag}".encode()
        data = tag + b" " + command.encode()
        if literal is not None:
            data += b" {" + str(len(literal)).encode() + b"+}\r\n" + literal
        self.writer.write(data + b"\r\n")
        await self.writer.drain()
        untagged: list[bytes] = []
        while True:
            line = await self.line()
            if line.startswith(tag + b" "):
                return line[len(tag) + 1 :].rstrip(b"\r\n"), untagged
            untagged.append(line)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Rig:
    """One LightMail node: store, LMTP and IMAP servers on loopback ports."""

    db: Database
    blobs: S3BlobStore
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
        if code != 220:
            raise ConnectionResetError(f"LMTP greeting {code}")
        code, _ = await client.command("LHLO mta.example.org")
        if code != 250:
            raise ConnectionResetError(f"LHLO answered {code}")
        return client

    async def imap_client(self, user: User) -> ImapClient:
        """A client logged in as ``user``; a refused login is a ConnectionError."""
        address = self.imap.listeners[0].bound_addresses[0]
        assert isinstance(address, TcpAddress)
        reader, writer = await asyncio.open_connection(address.host, address.port)
        client = ImapClient(reader, writer)
        if not (await client.line()).startswith(b"* OK"):
            raise ConnectionResetError("no IMAP greeting")
        status, _ = await client.command(f'LOGIN {user.address} "{PASSWORD}"')
        if not status.startswith(b"OK"):
            await client.close()
            raise ConnectionRefusedError(f"LOGIN answered {status!r}")
        return client

    async def stored_messages(self) -> list[tuple[int, int, str, str]]:
        """(user id, UID, Message-ID, blob key) of every live message in the database."""
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

    async def close(self) -> None:
        await self.imap.stop()
        await self.lmtp.stop()
        await self.blobs.close()
        await self.db.close()


async def start_rig(
    database_url: str, s3: S3Server, data_dir: Path, environ: dict[str, str] | None = None
) -> Rig:
    """Start a node on ``database_url`` (migrated) and a fresh prefix of ``s3.bucket``;
    ``environ`` overrides settings as ``LIGHTMAIL_<SECTION>_<KEY>`` would."""
    settings = load_settings(
        None,
        {
            "LIGHTMAIL_SERVER_DATA_DIR": str(data_dir),
            "LIGHTMAIL_SERVER_HOSTNAME": "mx.test.example",
            "LIGHTMAIL_LMTP_LISTEN": "127.0.0.1:0",
            "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
            "LIGHTMAIL_IMAP_MAX_CONNECTIONS_PER_USER": "1000",
            "LIGHTMAIL_DATABASE_URL": database_url,
            "LIGHTMAIL_DATABASE_CONNECT_TIMEOUT": "3s",
            **(environ or {}),
        },
    )
    db = Database(
        settings.database.url,
        pool_size=settings.database.pool_size,
        connect_timeout=settings.database.connect_timeout,
        commit_check_timeout=settings.database.commit_check_timeout,
    )
    blobs = s3.blob_store(f"f-{uuid.uuid4().hex[:12]}")
    store = MailStore(db, blobs, InProcessNotificationBus())
    accounts = Accounts(store)
    domain = f"d{uuid.uuid4().hex[:8]}.example"
    await accounts.add_domain(domain)
    scanner = scanner_for(settings.antivirus)  # one client, as the runtime builds it
    lmtp = LmtpServer(settings, store, accounts, scanner=scanner)
    imap = ImapServer(settings, store, accounts, None, scanner=scanner)
    await lmtp.start()
    await imap.start()
    return Rig(db, blobs, store, accounts, domain, lmtp, imap)
