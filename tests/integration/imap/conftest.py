"""An IMAP server on a free loopback port, on each storage backend."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from lightmail.accounts.service import User
from lightmail.antivirus.policy import scanner_for
from lightmail.config import Settings, TcpAddress, load_settings
from lightmail.imap.server import ImapServer
from lightmail.net.tls import server_context
from tests.conftest import Backend

PASSWORD = "secret"


@dataclass
class ImapTarget:
    backend: Backend
    server: ImapServer
    host: str
    port: int
    tls_port: int | None
    ca: trustme.CA | None

    async def new_user(self) -> User:
        return await self.backend.new_user()

    @contextmanager
    def client(self, user: User | None = None) -> Iterator[imaplib.IMAP4]:
        """An imaplib client, logged in as ``user`` when given."""
        client = imaplib.IMAP4(self.host, self.port, timeout=30)
        try:
            if user is not None:
                client.login(user.address, PASSWORD)
            yield client
        finally:
            try:
                client.logout()
            except (imaplib.IMAP4.abort, OSError):
                client.shutdown()

    def client_ssl_context(self) -> ssl.SSLContext:
        assert self.ca is not None
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def _settings(
    tmp_path: Path, tls_files: tuple[Path, Path] | None, extra: dict[str, str]
) -> Settings:
    environ = {
        "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
        "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_IMAP_TLS_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_IMAP_MAX_APPEND_SIZE": "16M",
        **extra,
    }
    if tls_files is not None:
        environ["LIGHTMAIL_TLS_CERT"] = str(tls_files[0])
        environ["LIGHTMAIL_TLS_KEY"] = str(tls_files[1])
    return load_settings(None, environ)


ImapFactory = Callable[..., Awaitable[ImapTarget]]


@pytest.fixture
async def imap_factory(backend: Backend, tmp_path: Path) -> AsyncIterator[ImapFactory]:
    servers: list[ImapServer] = []

    async def start(
        *,
        tls: bool = False,
        antivirus: Mapping[str, str] | None = None,
        proxy_networks: str = "",
        **imap_settings: str,
    ) -> ImapTarget:
        """Start a server; ``imap_settings`` override ``[imap]`` keys and ``antivirus``
        ``[antivirus]`` keys (as strings); ``proxy_networks`` is ``[server]``'s."""
        ca = trustme.CA() if tls else None
        files = None
        if ca is not None:
            cert = ca.issue_cert("localhost", "127.0.0.1")
            cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
            cert.cert_chain_pems[0].write_to_path(str(cert_path))
            for blob in cert.cert_chain_pems[1:]:
                blob.write_to_path(str(cert_path), append=True)
            cert.private_key_pem.write_to_path(str(key_path))
            files = (cert_path, key_path)
        extra = {f"LIGHTMAIL_IMAP_{key.upper()}": value for key, value in imap_settings.items()}
        extra.update({f"LIGHTMAIL_ANTIVIRUS_{k.upper()}": v for k, v in (antivirus or {}).items()})
        extra["LIGHTMAIL_SERVER_PROXY_NETWORKS"] = proxy_networks
        settings = _settings(tmp_path, files, extra)
        context = server_context(*files) if files else None
        server = ImapServer(
            settings,
            backend.store,
            backend.accounts,
            context,
            scanner=scanner_for(settings.antivirus),
        )
        await server.start()
        servers.append(server)
        plain = server.listeners[0].bound_addresses[0]
        assert isinstance(plain, TcpAddress)
        tls_port = None
        if len(server.listeners) > 1:
            secure = server.listeners[1].bound_addresses[0]
            assert isinstance(secure, TcpAddress)
            tls_port = secure.port
        return ImapTarget(backend, server, plain.host, plain.port, tls_port, ca)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def imap(imap_factory: ImapFactory) -> ImapTarget:
    return await imap_factory()
