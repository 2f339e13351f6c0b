"""Every test here runs on the default asyncio loop and on uvloop (what the server runs on)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop

from lightmail.config import ListenAddress, TcpAddress
from lightmail.net import Handler, Listener, server_context

LOOPBACK = (TcpAddress("127.0.0.1", 0),)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@asynccontextmanager
async def serving(
    handler: Handler, addresses: tuple[ListenAddress, ...] = LOOPBACK, **options: Any
) -> AsyncIterator[Listener]:
    """A started listener, stopped (with a short grace) when the block ends."""
    listener = Listener("test", addresses, handler, **options)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop(grace=1)


async def connect(
    listener: Listener, *, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = listener.bound_addresses[0]
    assert isinstance(address, TcpAddress)
    return await asyncio.open_connection(
        address.host, address.port, ssl=tls, server_hostname="localhost" if tls else None
    )


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def cert_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    issued = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


@pytest.fixture(scope="session")
def server_tls(cert_files: tuple[Path, Path]) -> ssl.SSLContext:
    return server_context(*cert_files)


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(autouse=True)
def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A handler's failed assertion only shows in the log: fail the test on any error.

    Tests that expect an error check it and then call ``caplog.clear()``.
    """
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "\n".join(r.getMessage() + "\n" + (r.exc_text or "") for r in errors)
