"""A running ``lightmail serve`` with the HTTP API, once per storage backend.

The node is a real process (API, IMAP and LMTP on free loopback ports),
started once for this folder on each backend; every test works in domains
and users of its own, so tests never see each other's data. Tests talk to it
with httpx, imaplib and LMTP over loopback. When clamd is available the node
scans (``[antivirus] mode = quarantine``, ``scan_append = true``).

At the end the node is stopped with SIGTERM and must exit cleanly, and its log
must hold no traceback: an unexpected error anywhere fails the run.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lightmail.accounts.tokens import ApiTokens
from lightmail.storage.db.engine import Database
from tests.support.clamd import Clamd
from tests.support.s3server import S3Server

PASSWORD = "secret-Passw0rd"
MAX_APPEND = 256 * 1024  # [imap] max_append_size of the node: also the API's import limit
MAX_CALENDAR_IMPORT = 256 * 1024  # [dav] max_import_size: the API's calendar import limit
_START_TIMEOUT = 60.0


@dataclass
class ApiNode:
    backend: str
    base_url: str  # http://127.0.0.1:PORT
    imap_port: int
    lmtp_port: int
    token: str
    env: dict[str, str]  # the node's LIGHTMAIL_* settings, for the CLI
    database_url: str
    log_path: Path
    clamd: Clamd | None
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        """An httpx client for the node; authenticated with ``token`` (default: the
        node's token), or with no Authorization header when ``token`` is ""."""
        token = self.token if token is None else token
        all_headers = dict(headers)
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(base_url=self.base_url, headers=all_headers, timeout=60)
        self._clients.append(client)
        return client

    @property
    def api(self) -> httpx.Client:
        """The authenticated client for ``/api/v1``."""
        return self.client()

    def new_domain(self) -> str:
        domain = f"d{uuid.uuid4().hex[:10]}.example"
        response = self.api.post("/api/v1/domains", json={"name": domain})
        assert response.status_code == 201, response.text
        return domain

    def new_user(self, domain: str | None = None, *, quota: int | None = None) -> str:
        domain = domain or self.new_domain()
        address = f"u{uuid.uuid4().hex[:10]}@{domain}"
        response = self.api.post(
            "/api/v1/users", json={"address": address, "password": PASSWORD, "quota": quota}
        )
        assert response.status_code == 201, response.text
        return address

    def import_message(
        self, address: str, message: bytes, mailbox: str = "INBOX", **params: Any
    ) -> int:
        response = self.api.post(
            messages_path(address, mailbox),
            content=message,
            headers={"Content-Type": "message/rfc822"},
            params=params,
        )
        assert response.status_code == 201, response.text
        uid: int = response.json()["uid"]
        return uid

    @contextmanager
    def imap(self, address: str | None = None, password: str = PASSWORD) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        try:
            if address is not None:
                client.login(address, password)
            yield client
        finally:
            try:
                client.logout()
            except (imaplib.IMAP4.abort, OSError):
                client.shutdown()

    def use_for_cli(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        """Make ``lightmail.cli.main`` in this test work on the node: its settings in
        the environment, no configuration file, ``folder`` the working directory."""
        monkeypatch.chdir(folder)
        monkeypatch.delenv("LIGHTMAIL_CONFIG", raising=False)
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


def user_path(address: str) -> str:
    return f"/api/v1/users/{quote(address, safe='@')}"


def mailbox_path(address: str, mailbox: str) -> str:
    return f"{user_path(address)}/mailboxes/{quote(mailbox, safe='')}"


def messages_path(address: str, mailbox: str = "INBOX") -> str:
    return f"{mailbox_path(address, mailbox)}/messages"


def _storage_env(backend: str, request: pytest.FixtureRequest, data_dir: Path) -> dict[str, str]:
    if backend == "sqlite":
        return {"LIGHTMAIL_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'lightmail.db'}"}
    url = request.getfixturevalue("mariadb_schema")
    s3: S3Server = request.getfixturevalue("s3_server")
    return {
        "LIGHTMAIL_DATABASE_URL": url,
        "LIGHTMAIL_BLOBS_URL": f"s3://{s3.bucket}/api-{uuid.uuid4().hex[:12]}",
        "LIGHTMAIL_BLOBS_ENDPOINT": s3.endpoint,
        "LIGHTMAIL_BLOBS_REGION": s3.region,
        "LIGHTMAIL_BLOBS_ACCESS_KEY": s3.access_key,
        "LIGHTMAIL_BLOBS_SECRET_KEY": s3.secret_key,
    }


def _optional_clamd(request: pytest.FixtureRequest) -> Clamd | None:
    """The session's clamd, or None where it is missing (under CI=true that fails)."""
    try:
        clamd: Clamd = request.getfixturevalue("clamd")
    except pytest.skip.Exception:
        return None
    return clamd


async def _create_token(url: str, name: str) -> str:
    db = Database(url)
    try:
        _, secret = await ApiTokens(db).create(name)
    finally:
        await db.close()
    return secret


def _wait_for_start(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        log = log_path.read_text(errors="replace")
        if "lightmail is running" in log:
            return log
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"lightmail serve did not start:\n{log_path.read_text(errors='replace')}")


def _port(log: str, name: str) -> int:
    match = re.search(rf"{name}: listening on 127\.0\.0\.1:(\d+)", log)
    assert match is not None, log
    return int(match[1])


@pytest.fixture(scope="package", params=["sqlite", "mariadb"])
def api_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiNode]:
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"api-{backend}")
    data_dir = tmp / "data"
    clamd = _optional_clamd(request)
    env = {
        "LIGHTMAIL_SERVER_DATA_DIR": str(data_dir),
        "LIGHTMAIL_LOG_LEVEL": "info",
        "LIGHTMAIL_API_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_IMAP_MAX_APPEND_SIZE": str(MAX_APPEND),
        "LIGHTMAIL_LMTP_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_POP3_LISTEN": "",
        "LIGHTMAIL_DAV_LISTEN": "",
        "LIGHTMAIL_DAV_MAX_IMPORT_SIZE": str(MAX_CALENDAR_IMPORT),
        # The database may be shared with other tests: no purges behind their backs.
        "LIGHTMAIL_GC_ENABLED": "false",
        **_storage_env(backend, request, data_dir),
    }
    if clamd is not None:
        env |= {
            "LIGHTMAIL_ANTIVIRUS_MODE": "quarantine",
            "LIGHTMAIL_ANTIVIRUS_CLAMD": str(clamd.tcp),
            "LIGHTMAIL_ANTIVIRUS_SCAN_APPEND": "true",
        }
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTMAIL_")}
    log_path = tmp / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "lightmail", "serve"],
            cwd=tmp,
            env=process_env | env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        log = _wait_for_start(process, log_path)
        token = asyncio.run(
            _create_token(env["LIGHTMAIL_DATABASE_URL"], f"tests-{uuid.uuid4().hex[:8]}")
        )
        node = ApiNode(
            backend=backend,
            base_url=f"http://127.0.0.1:{_port(log, 'api')}",
            imap_port=_port(log, "imap"),
            lmtp_port=_port(log, "lmtp"),
            token=token,
            env=env,
            database_url=env["LIGHTMAIL_DATABASE_URL"],
            log_path=log_path,
            clamd=clamd,
        )
        yield node
        node.close_clients()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    log = log_path.read_text(errors="replace")
    assert process.returncode == 0, log
    assert "Traceback" not in log, log


# -- the operations of the node's OpenAPI document ----------------------------------

_PATH_VALUES = {
    "address": "alice@example.org",
    "name": "INBOX",
    "uid": "1",
    "id": "1",
}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path template, operation) for every operation of the document."""
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def concrete(path: str) -> str:
    """A path template with harmless values in its parameters."""
    for name, value in _PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, path
    return path


@pytest.fixture
def document(api_node: ApiNode) -> dict[str, Any]:
    """The OpenAPI document the node serves."""
    response = api_node.client("").get("/openapi.json")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result
