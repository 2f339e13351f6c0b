"""A POP3 server on a free loopback port, on each storage backend."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from lightmail.accounts.service import User
from lightmail.config import TcpAddress, load_settings
from lightmail.net.tls import server_context
from lightmail.pop3.server import Pop3Server
from tests.conftest import Backend
from tests.integration.imap.conftest import imap_factory as imap_factory  # for IMAP checks


@dataclass
class Pop3Target:
    backend: Backend
    server: Pop3Server
    host: str
    port: int
    ca: trustme.CA | None = None  # set when started with tls=True (STLS is offered)

    def client_ssl_context(self) -> ssl.SSLContext:
        assert self.ca is not None
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    async def new_user(self) -> User:
        return await self.backend.new_user()


Pop3Factory = Callable[..., Awaitable[Pop3Target]]


@pytest.fixture
async def pop3_factory(backend: Backend, tmp_path: Path) -> AsyncIterator[Pop3Factory]:
    servers: list[Pop3Server] = []

    async def start(
        *, tls: bool = False, proxy_networks: str = "", **pop3_settings: str
    ) -> Pop3Target:
        """Start a server; keyword arguments override ``[pop3]`` keys (as strings);
        ``tls`` offers STLS with a certificate for localhost/127.0.0.1 from a test CA;
        ``proxy_networks`` is ``[server]``'s."""
        ca = trustme.CA() if tls else None
        context = None
        if ca is not None:
            # A CommonName too: fetchmail 6.4 checks the alternative names only then.
            cert = ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")
            cert_path, key_path = tmp_path / "pop3-cert.pem", tmp_path / "pop3-key.pem"
            cert.cert_chain_pems[0].write_to_path(str(cert_path))
            for blob in cert.cert_chain_pems[1:]:
                blob.write_to_path(str(cert_path), append=True)
            cert.private_key_pem.write_to_path(str(key_path))
            context = server_context(cert_path, key_path)
        environ = {
            "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
            "LIGHTMAIL_POP3_LISTEN": "127.0.0.1:0",
            "LIGHTMAIL_SERVER_PROXY_NETWORKS": proxy_networks,
            **{f"LIGHTMAIL_POP3_{key.upper()}": value for key, value in pop3_settings.items()},
        }
        settings = load_settings(None, environ)
        server = Pop3Server(settings, backend.store, backend.accounts, context)
        await server.start()
        servers.append(server)
        address = server.listeners[0].bound_addresses[0]
        assert isinstance(address, TcpAddress)
        return Pop3Target(backend, server, address.host, address.port, ca)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def pop3(pop3_factory: Pop3Factory) -> Pop3Target:
    return await pop3_factory()
