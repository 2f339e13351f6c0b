"""A CalDAV server on a free loopback port, on each storage backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
    tls_port: int | None = None  # with a certificate: the HTTPS listener

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def new_user(self) -> User:
        return await self.backend.new_user()


@asynccontextmanager
async def running_dav(
    backend: Backend, tmp_path: Path, tls: tuple[Path, Path] | None = None, **dav_settings: str
) -> AsyncIterator[DavTarget]:
    """CalDAV on a free port (and HTTPS on another with ``tls``, a certificate and key
    file); ``dav_settings`` override ``[dav]`` keys (as strings)."""
    environ = {
        "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
        "LIGHTMAIL_DAV_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_DAV_TLS_LISTEN": "127.0.0.1:0",
        **{f"LIGHTMAIL_DAV_{key.upper()}": value for key, value in dav_settings.items()},
    }
    if tls is not None:
        environ |= {"LIGHTMAIL_TLS_CERT": str(tls[0]), "LIGHTMAIL_TLS_KEY": str(tls[1])}
    servers = dav_servers(load_settings(None, environ), backend.accounts)
    assert len(servers) == (1 if tls is None else 2)
    for server in servers:
        await server.start()
    try:
        ports = []
        for server in servers:
            address = server.bound_addresses[0]
            assert isinstance(address, TcpAddress)
            ports.append(address.port)
        yield DavTarget(backend, servers[0], "127.0.0.1", ports[0], ports[1] if tls else None)
    finally:
        for server in servers:
            await server.stop()


@pytest.fixture
async def dav(backend: Backend, tmp_path: Path) -> AsyncIterator[DavTarget]:
    async with running_dav(backend, tmp_path, max_object_size="64K", max_xml_size="64K") as target:
        yield target
