"""A CalDAV server on a free loopback port, on each storage backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lightmail.accounts.service import User
from lightmail.config import TcpAddress, load_settings
from lightmail.dav.server import dav_servers
from lightmail.net.http import HttpServer
from tests.conftest import Backend

PASSWORD = "secret"


@dataclass
class DavTarget:
    backend: Backend
    server: HttpServer
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def new_user(self) -> User:
        return await self.backend.new_user()


@pytest.fixture
async def dav(backend: Backend, tmp_path: Path) -> AsyncIterator[DavTarget]:
    settings = load_settings(
        None,
        {
            "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
            "LIGHTMAIL_DAV_LISTEN": "127.0.0.1:0",
            "LIGHTMAIL_DAV_MAX_OBJECT_SIZE": "64K",
            "LIGHTMAIL_DAV_MAX_XML_SIZE": "64K",
        },
    )
    (server,) = dav_servers(settings, backend.accounts)
    await server.start()
    try:
        address = server.bound_addresses[0]
        assert isinstance(address, TcpAddress)
        yield DavTarget(backend, server, address.host, address.port)
    finally:
        await server.stop()
