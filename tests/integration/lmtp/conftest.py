"""An LMTP server on a free loopback port and a unix socket, on each storage backend,
and a small LMTP client that reads every reply (smtplib.LMTP reads one after DATA)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from lightmail.accounts.service import User
from lightmail.antivirus.policy import scanner_for
from lightmail.config import TcpAddress, UnixAddress, load_settings
from lightmail.lmtp.server import LmtpServer
from tests.conftest import Backend


class LmtpClient:
    """Raw LMTP over asyncio streams: send lines, read whole (multi-line) replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def reply(self) -> tuple[int, list[str]]:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 30)).decode()
            assert line.endswith("\r\n"), f"reply line without CRLF: {line!r}"
            lines.append(line[4:-2])
            if line[3] == " ":
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
        await self.writer.wait_closed()


@dataclass
class LmtpTarget:
    backend: Backend
    server: LmtpServer
    host: str
    port: int
    socket_path: Path

    async def new_user(self, quota: int | None = None) -> User:
        return await self.backend.new_user(quota)

    async def connect(self, *, unix: bool = False, lhlo: bool = True) -> LmtpClient:
        if unix:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        client = LmtpClient(reader, writer)
        code, _ = await client.reply()
        assert code == 220
        if lhlo:
            code, _ = await client.command("LHLO mta.example.org")
            assert code == 250
        return client


LmtpFactory = Callable[..., Awaitable[LmtpTarget]]


@pytest.fixture
async def lmtp_factory(backend: Backend, tmp_path: Path) -> AsyncIterator[LmtpFactory]:
    servers: list[LmtpServer] = []

    async def start(
        antivirus: Mapping[str, str] | None = None,
        proxy_networks: str = "",
        dav: Mapping[str, str] | None = None,
        **lmtp_settings: str,
    ) -> LmtpTarget:
        """Start a server; keyword arguments override ``[lmtp]`` keys, ``antivirus``
        ``[antivirus]`` keys and ``dav`` ``[dav]`` keys (as strings); ``proxy_networks``
        is ``[server]``'s."""
        socket_path = tmp_path / "lmtp.sock"
        environ = {
            **{f"LIGHTMAIL_ANTIVIRUS_{k.upper()}": v for k, v in (antivirus or {}).items()},
            **{f"LIGHTMAIL_DAV_{k.upper()}": v for k, v in (dav or {}).items()},
            "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
            "LIGHTMAIL_SERVER_HOSTNAME": "mx.test.example",
            "LIGHTMAIL_SERVER_PROXY_NETWORKS": proxy_networks,
            "LIGHTMAIL_LMTP_LISTEN": f"127.0.0.1:0, unix:{socket_path}",
            **{f"LIGHTMAIL_LMTP_{key.upper()}": value for key, value in lmtp_settings.items()},
        }
        settings = load_settings(None, environ)
        server = LmtpServer(
            settings, backend.store, backend.accounts, scanner=scanner_for(settings.antivirus)
        )
        await server.start()
        servers.append(server)
        tcp = next(a for a in server.listener.bound_addresses if isinstance(a, TcpAddress))
        unix = next(a for a in server.listener.bound_addresses if isinstance(a, UnixAddress))
        return LmtpTarget(backend, server, tcp.host, tcp.port, unix.path)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def lmtp(lmtp_factory: LmtpFactory) -> LmtpTarget:
    return await lmtp_factory()
