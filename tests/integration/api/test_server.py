"""The API service in this process on a real socket: settings the shared node
does not have (metrics_auth, a unix socket, GC retention 0) and a database or
blob store that is down.

The server runs on the test's event loop, so these tests use httpx's async client.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from lightmail.accounts.tokens import ApiTokens
from lightmail.api.deps import ApiContext
from lightmail.api.server import ApiServer
from lightmail.config import Settings, TcpAddress, load_settings
from lightmail.gc import GarbageCollector
from lightmail.mailstore.store import MailStore
from lightmail.net.listener import ListenError
from lightmail.storage.blobs.s3 import S3BlobStore
from lightmail.storage.db.engine import Database
from lightmail.storage.health import StorageHealth
from tests.conftest import Backend
from tests.integration.api.conftest import concrete, messages_path, operations, user_path
from tests.support.trickle import trickle

RFC822 = {"Content-Type": "message/rfc822"}
MESSAGE = b"From: a@example.org\r\nSubject: hello\r\n\r\nhello\r\n"


def _settings(tmp_path: Path, **api: str) -> Settings:
    environ = {
        "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
        "LIGHTMAIL_API_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_GC_RETENTION": "0",
        **{f"LIGHTMAIL_API_{key.upper()}": value for key, value in api.items()},
    }
    return load_settings(None, environ)


def _context(backend: Backend, settings: Settings) -> ApiContext:
    return ApiContext(
        settings=settings,
        store=backend.store,
        accounts=backend.accounts,
        gc=GarbageCollector(backend.db, backend.blobs, settings.gc),
        tokens=ApiTokens(backend.db),
        health=StorageHealth(backend.db, backend.blobs),
        scanner=None,
    )


@asynccontextmanager
async def serving(context: ApiContext, token: str = "") -> AsyncIterator[httpx.AsyncClient]:
    server = ApiServer(context)
    await server.start()
    try:
        address = server.bound_addresses[0]
        assert isinstance(address, TcpAddress)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{address.port}", headers=headers, timeout=30
        ) as client:
            yield client
    finally:
        await server.stop()


async def test_metrics_auth_protects_metrics(backend: Backend, tmp_path: Path) -> None:
    context = _context(backend, _settings(tmp_path, metrics_auth="true"))
    _, token = await context.tokens.create(f"metrics-{tmp_path.name[-8:]}")
    async with serving(context) as anonymous:
        refused = await anonymous.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.json()["error"] == "unauthorized"
        assert (await anonymous.get("/health")).status_code == 200
        assert (await anonymous.get("/ready")).status_code == 200
        allowed = await anonymous.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200
        assert "# TYPE" in allowed.text
        document = (await anonymous.get("/openapi.json")).json()
        operation = document["paths"]["/metrics"]["get"]
        assert operation["security"] == [{"token": []}]
        assert "401" in operation["responses"]


async def test_gc_run_purges_deleted_mail(backend: Backend, tmp_path: Path) -> None:
    """With retention 0 a run purges what the API deleted; it can no longer be restored."""
    context = _context(backend, _settings(tmp_path))
    _, token = await context.tokens.create(f"gc-{tmp_path.name[-8:]}")
    user = await backend.new_user()
    async with serving(context, token) as api:
        imported = await api.post(messages_path(user.address), content=MESSAGE, headers=RFC822)
        assert imported.status_code == 201, imported.text
        uid = imported.json()["uid"]
        assert (await api.delete(f"{messages_path(user.address)}/{uid}")).status_code == 204
        deleted = (await api.get(f"{user_path(user.address)}/deleted")).json()["items"]
        assert len(deleted) == 1
        status = (await api.get("/api/v1/gc")).json()
        assert status["due_messages"] >= 1

        dry = (await api.post("/api/v1/gc/run", params={"dry_run": True})).json()
        assert dry["dry_run"] is True
        assert dry["messages_purged"] >= 1
        assert len((await api.get(f"{user_path(user.address)}/deleted")).json()["items"]) == 1

        report = (await api.post("/api/v1/gc/run")).json()
        assert report["dry_run"] is False
        assert report["messages_purged"] >= 1
        assert report["bytes_freed"] >= len(MESSAGE)
        assert report["error"] is None
        assert (await api.get(f"{user_path(user.address)}/deleted")).json()["items"] == []
        restore = await api.post(f"{user_path(user.address)}/deleted/{deleted[0]['id']}/restore")
        assert restore.status_code == 404
        last = (await api.get("/api/v1/gc")).json()["last_run"]
        assert last["messages_purged"] == report["messages_purged"]


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_listens_on_a_unix_socket(backend: Backend, tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    context = _context(backend, _settings(tmp_path, listen=f"unix:{path}"))
    server = ApiServer(context)
    await server.start()
    try:
        assert path.is_socket()
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            assert (await client.get("/api/v1/domains")).status_code == 401
        with pytest.raises(ListenError, match="another server uses it"):
            await ApiServer(context).start()
    finally:
        await server.stop()
    assert not path.exists()


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_a_busy_port_is_a_clear_error(backend: Backend, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        context = _context(backend, _settings(tmp_path, listen=f"127.0.0.1:{port}"))
        with pytest.raises(ListenError, match=rf"api: cannot listen on 127\.0\.0\.1:{port}"):
            await ApiServer(context).start()


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_database_down_gives_503(backend: Backend, tmp_path: Path) -> None:
    """A database that does not answer: 503 with Retry-After, never 500 nor 401."""
    down = Database("mysql+asyncmy://root@127.0.0.1:1/lightmail", connect_timeout=1)
    context = dataclasses.replace(
        _context(backend, _settings(tmp_path)),
        health=StorageHealth(down, backend.blobs),
        tokens=ApiTokens(down),
    )
    try:
        async with serving(context, "lm_" + "x" * 43) as api:
            document = (await api.get("/openapi.json")).json()
            checked = 0
            for method, path, _ in operations(document):
                response = await api.request(method, concrete(path))
                if path in ("/health", "/metrics"):
                    assert response.status_code == 200, path
                    continue
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["Retry-After"] == "5"
                assert response.json()["error"] == "unavailable"
                assert "127.0.0.1:1" not in response.text
                checked += 1
            assert checked >= 30
    finally:
        await down.close()


async def test_blob_store_down_gives_503(backend: Backend, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    context = _context(backend, settings)
    _, token = await context.tokens.create(f"blobs-{tmp_path.name[-8:]}")
    user = await backend.new_user()
    async with serving(context, token) as api:
        imported = await api.post(messages_path(user.address), content=MESSAGE, headers=RFC822)
        uid = imported.json()["uid"]
    dead = S3BlobStore(
        "lightmail",
        endpoint="http://127.0.0.1:1",
        region="us-east-1",
        access_key="key",
        secret_key="secret",
    )
    down = dataclasses.replace(
        context,
        health=StorageHealth(backend.db, dead),
        store=MailStore(backend.db, dead, backend.store.bus),
    )
    try:
        async with serving(down, token) as api:
            raw = await api.get(f"{messages_path(user.address)}/{uid}/raw")
            assert raw.status_code == 503, raw.text
            assert raw.json()["error"] == "unavailable"
            posted = await api.post(messages_path(user.address), content=MESSAGE, headers=RFC822)
            assert posted.status_code == 503, posted.text
            ready = await api.get("/ready")
            assert ready.status_code == 503
            listed = await api.get(messages_path(user.address))
            assert listed.status_code == 200  # metadata needs no blob
    finally:
        await dead.close()


async def test_a_request_head_trickled_a_byte_at_a_time_gets_408_at_the_header_timeout(
    backend: Backend, tmp_path: Path
) -> None:
    """Slowloris: uvicorn restarts no clock while a head arrives a byte every 0.3 s."""
    context = _context(backend, _settings(tmp_path, header_timeout="1s"))
    async with serving(context) as client:
        port = client.base_url.port
        assert port is not None

        def slow_client() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: yes\r\n\r\n"
                slow = trickle(raw, head, every=0.3, budget=5)
            assert slow.closed_after is not None, "the slow client is still connected"
            assert 0.9 < slow.closed_after < 2.5
            assert slow.received.startswith(b"HTTP/1.1 408 ")

        await asyncio.to_thread(slow_client)
        # A connection that sends nothing at all is closed too, without a word.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
        # Requests at a normal pace are not affected.
        assert (await client.get("/health")).status_code == 200


async def test_connections_beyond_max_connections_get_503(backend: Backend, tmp_path: Path) -> None:
    context = _context(backend, _settings(tmp_path, max_connections="2"))
    async with serving(context) as client:
        port = client.base_url.port
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        refused = await client.get("/health")
        assert refused.status_code == 503
        for _, writer in idle:
            writer.close()
            await writer.wait_closed()
        for _ in range(50):  # until the server has seen them go
            if (await client.get("/health")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("still 503 after the idle connections closed")


async def test_proxy_header_from_a_trusted_proxy_comes_before_http(
    backend: Backend, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    server_settings = dataclasses.replace(
        settings.server, proxy_networks=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    server = ApiServer(_context(backend, dataclasses.replace(settings, server=server_settings)))
    await server.start()
    try:
        address = server.bound_addresses[0]
        assert isinstance(address, TcpAddress)
        request = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        reader, writer = await asyncio.open_connection(address.host, address.port)
        writer.write(b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 8080\r\n" + request)
        assert (await reader.read()).startswith(b"HTTP/1.1 200 OK\r\n")
        writer.close()
        # Without the header the request is refused unanswered.
        reader, writer = await asyncio.open_connection(address.host, address.port)
        writer.write(request)
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
        writer.close()
    finally:
        await server.stop()
