"""``lightmail serve --workers 2``: a supervisor keeps two worker processes serving
on the same listening sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from lightmail.config import load_settings
from lightmail.runtime import open_node
from tests.support.lines import Client
from tests.support.proxy_header import v2
from tests.support.redis import ONE_WORKER, require_shared_redis
from tests.support.serving import Served, serving, storage_env

pytestmark = ONE_WORKER

PASSWORD = "secret"
MESSAGE = b"From: bob@example.org\r\nSubject: across workers\r\n\r\nHello.\r\n"


def greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        return client.recv(100)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def started(served: Served) -> None:
    served.wait_for("lightmail is running with 2 workers")


def test_a_killed_worker_is_replaced_and_the_listeners_keep_serving(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    with serving(tmp_path, storage_env(*storage), "--workers", "2") as served:
        started(served)
        imap = served.port("imap")
        first = served.workers()
        os.kill(first[0], signal.SIGKILL)
        for _ in range(5):  # worker 1 alone serves every connection meanwhile
            assert greeting(imap).startswith(b"* OK")
            assert greeting(served.port("pop3")).startswith(b"+OK")
        served.wait_for("worker 0 started", 2)
        served.wait_for(") is serving", 3)
        assert served.workers()[0] != first[0]
        assert served.workers()[1] == first[1]
        assert f"worker 0 (pid {first[0]}) exited with status -9" in served.log
        assert greeting(imap).startswith(b"* OK")
        last = served.workers()
        assert served.stop(signal.SIGTERM) == 0, served.log
    assert "Traceback" not in served.log
    assert all(gone(pid) for pid in last.values())
    assert served.log.count("lightmail: stopped") == 2  # each worker
    assert served.log.rstrip().endswith("lightmail.workers: stopped")
    assert not (tmp_path / "data" / "lmtp.sock").exists()  # removed at stop


def test_only_the_first_worker_runs_the_gc(tmp_path: Path) -> None:
    with serving(tmp_path, {}, "--workers", "2") as served:
        started(served)
        assert served.log.count("gc: every 5m") == 1
        assert served.stop(signal.SIGINT) == 0, served.log


def test_workers_must_be_a_number_or_auto(tmp_path: Path) -> None:
    with serving(tmp_path, {}, "--workers", "0") as served:
        assert served.process.wait(60) == 2
    assert "--workers: '0' is not a number from 1 to 1024 or auto" in served.log


async def new_user(env: dict[str, str]) -> str:
    """A user of a domain of its own, added before the server starts."""
    async with open_node(load_settings(None, env)) as node:
        domain = await node.accounts.add_domain(f"d{uuid.uuid4().hex[:10]}.example")
        user = await node.accounts.add_user(f"alice@{domain}", PASSWORD, None)
    return user.address


@asynccontextmanager
async def two_workers(
    tmp_path: Path, env: dict[str, str]
) -> AsyncIterator[tuple[Served, str, dict[int, int], int]]:
    """``serve --workers 2``, a new user's address, the workers' pids and the IMAP
    port; the node must stop with status 0."""
    address = await new_user(env)
    with serving(tmp_path, env, "--workers", "2") as served:
        started(served)
        yield served, address, served.workers(), served.port("imap")
        assert served.stop() == 0, served.log


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """While the block runs, the worker ``pid`` is stopped: the other one accepts."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def imap_login(port: int, address: str) -> tuple[Client, bytes]:
    client = await Client.connect(port)
    await client.until(b"* OK")
    reply = await client.command(f'a LOGIN "{address}" "{PASSWORD}"'.encode(), b"a ")
    return client, reply[-1]


async def logged_in_soon(port: int, address: str) -> Client:
    """A client logged in within a second (a session that ended may count until then)."""
    for _ in range(20):
        client, reply = await imap_login(port, address)
        if reply.startswith(b"a OK"):
            return client
        await client.close()
        await asyncio.sleep(0.05)
    raise AssertionError(reply)


async def lmtp_session(port: int) -> Client:
    client = await Client.connect(port)
    await client.until(b"220 ")
    await client.command(b"LHLO test.example", b"250 ")
    return client


async def deliver(client: Client, address: str) -> None:
    await client.command(b"MAIL FROM:<bob@example.org>", b"250 ")
    await client.command(f"RCPT TO:<{address}>".encode(), b"250 ")
    await client.command(b"DATA", b"354 ")
    await client.command(MESSAGE + b".", b"250 ")


@pytest.mark.parametrize("bus", ["supervisor", "redis"])
async def test_idle_in_one_worker_sees_a_delivery_through_the_other_within_a_second(
    storage: tuple[str, dict[str, Any]], tmp_path: Path, bus: str
) -> None:
    """Through the supervisor's relay, or with ``[notify] url`` through Redis (each
    worker a subscriber of its own; the node's gauge says both hear it)."""
    env = storage_env(*storage)
    if bus == "redis":
        env["LIGHTMAIL_NOTIFY_URL"] = require_shared_redis()
    async with two_workers(tmp_path, env) as (served, address, pids, port):
        expected = "Redis at redis://127.0.0.1:6379" if bus == "redis" else "in-process, relayed"
        assert served.log.count(f"notifications: {expected}") == 2, served.log
        assert node_metric(served.port("api"), "lightmail_notify_connected") == 1
        with paused(pids[1]):  # worker 0 serves the IDLE
            idle, reply = await imap_login(port, address)
            assert reply.startswith(b"a OK"), reply
            await idle.command(b"b SELECT INBOX", b"b OK")
            await idle.command(b"c IDLE", b"+ ")
        with paused(pids[0]):  # worker 1 the delivery
            lmtp = await lmtp_session(served.port("lmtp"))
        await deliver(lmtp, address)
        delivered = time.monotonic()
        assert (await idle.until(b"* 1 EXISTS", within=1))[-1] == b"* 1 EXISTS\r\n"
        assert time.monotonic() - delivered < 1
        await idle.command(b"DONE", b"c OK")
        await lmtp.close()
        await idle.close()


async def test_the_per_user_cap_holds_across_workers(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    env = {**storage_env(*storage), "LIGHTMAIL_IMAP_MAX_CONNECTIONS_PER_USER": "1"}
    async with two_workers(tmp_path, env) as (_, address, pids, port):
        with paused(pids[1]):
            first, reply = await imap_login(port, address)  # on worker 0
            assert reply.startswith(b"a OK"), reply
        with paused(pids[0]):
            second, reply = await imap_login(port, address)  # on worker 1
            assert reply.startswith(b"a NO [LIMIT]"), reply
        await first.command(b"z LOGOUT", b"z OK")
        third = await logged_in_soon(port, address)  # once worker 1 heard the first ended
        await third.command(b"z LOGOUT", b"z OK")
        async with asyncio.timeout(10):
            await third.reader.read()  # the session has ended, its count with it
        with paused(pids[1]):
            fourth = await logged_in_soon(port, address)  # on worker 0 again
        os.kill(pids[0], signal.SIGKILL)  # its connection no longer counts
        fifth = await logged_in_soon(port, address)  # on worker 1
        for client in (first, second, third, fourth, fifth):
            await client.close()


async def test_failed_logins_through_one_worker_throttle_the_other(tmp_path: Path) -> None:
    env = {
        "LIGHTMAIL_AUTH_FAILURE_DELAY": "0",
        "LIGHTMAIL_AUTH_THROTTLE_AFTER": "1",
        "LIGHTMAIL_AUTH_THROTTLE_DELAY": "1m",
        "LIGHTMAIL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/data/lightmail.db",
    }
    (tmp_path / "data").mkdir()
    async with two_workers(tmp_path, env) as (served, address, pids, port):
        with paused(pids[1]):
            client = await Client.connect(port)
            await client.until(b"* OK")
            failed = await client.command(f'a LOGIN "{address}" "wrong"'.encode(), b"a ")
            assert failed[-1].startswith(b"a NO"), failed
            await client.close()
        with paused(pids[0]):
            client, reply = await imap_login(port, address)  # the right password, too soon
            assert reply.startswith(b"a NO"), reply
            await client.close()
        served.wait_for("login throttled")  # the worker logs it (its stderr comes in a thread)


async def test_a_changed_password_stops_working_at_once_in_every_worker(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    env = {**storage_env(*storage), "LIGHTMAIL_AUTH_FAILURE_DELAY": "0"}
    async with two_workers(tmp_path, env) as (_, address, pids, port):
        for worker in (0, 1):  # each worker verifies the password once and remembers it
            with paused(pids[1 - worker]):
                client, reply = await imap_login(port, address)
                assert reply.startswith(b"a OK"), reply
                await client.close()
        async with open_node(load_settings(None, env)) as node:
            await node.accounts.set_password(address, "changed")
        for worker in (0, 1):
            with paused(pids[1 - worker]):
                client, reply = await imap_login(port, address)
                assert reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply
                await client.close()


def node_metric(port: int, name: str) -> float:
    """The value of one sample of /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = [line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(name + " ")]
    assert len(samples) == 1, text
    return float(samples[0][1])


async def test_metrics_count_the_connections_of_both_workers(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    env = storage_env(*storage)
    async with two_workers(tmp_path, env) as (served, address, pids, port):
        api = served.port("api")
        clients = []
        for worker in (0, 1):
            with paused(pids[1 - worker]):
                client, reply = await imap_login(port, address)
                assert reply.startswith(b"a OK"), reply
                clients.append(client)
        open_imap = 'lightmail_connections_open{protocol="imap"}'
        accepted = 'lightmail_connections_accepted_total{protocol="imap"}'
        logins = 'lightmail_commands_total{command="login",protocol="imap"}'
        for worker in (0, 1):  # whichever worker answers, it shows the whole node
            with paused(pids[1 - worker]):
                assert node_metric(api, open_imap) == 2
                assert node_metric(api, accepted) == 2
                assert node_metric(api, logins) == 2
        os.kill(pids[0], signal.SIGKILL)
        served.wait_for("worker 0 started", 2)
        assert node_metric(api, open_imap) == 1  # a dead worker's connections end ...
        assert node_metric(api, accepted) == 2  # ... but still count as accepted
        for client in clients:
            await client.close()


def copies(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*.eml") if path.is_file()]


@pytest.mark.parametrize("backend_name", ["mariadb"])
async def test_the_workers_read_the_copies_of_s3_blobs_and_a_node_starts_with_none(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    """``[blobs] cache_folder``: a message one worker delivered, the other reads from
    its copy (pausing each in turn), and the copies of an earlier run are gone at
    start (one could be short after a crash)."""
    cache = tmp_path / "cache"
    env = {**storage_env(*storage), "LIGHTMAIL_BLOBS_CACHE_FOLDER": str(cache)}
    earlier = cache / "copies" / "eml" / "00" / "earlier.eml"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"short")
    async with two_workers(tmp_path, env) as (served, address, pids, _):
        assert not earlier.exists()
        deadline = time.monotonic() + 10
        while any(path.name.startswith(".stale-") for path in cache.iterdir()):
            assert time.monotonic() < deadline, list(cache.iterdir())
            await asyncio.sleep(0.05)
        with paused(pids[1]):
            lmtp = await lmtp_session(served.port("lmtp"))
            await deliver(lmtp, address)
            await lmtp.close()
        deadline = time.monotonic() + 10
        while not (found := copies(cache)):  # written in the background
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        (copy,) = found
        assert copy.read_bytes().endswith(MESSAGE)  # after the Return-Path and Received
        with paused(pids[0]):
            pop3 = await Client.connect(served.port("pop3"))
            await pop3.until(b"+OK")
            await pop3.command(f"USER {address}".encode(), b"+OK")
            await pop3.command(f"PASS {PASSWORD}".encode(), b"+OK")
            retr = await pop3.command(b"RETR 1", b".\r\n")
            await pop3.close()
        assert MESSAGE in b"".join(retr)
        api = served.port("api")
        assert node_metric(api, 'lightmail_blob_cache_reads_total{result="hit"}') == 1
        assert node_metric(api, 'lightmail_blob_cache_reads_total{result="miss"}') == 0
    assert "blob cache" not in served.log  # no copy failed


def test_a_worker_that_cannot_start_stops_the_node_with_its_status(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    env = {
        "LIGHTMAIL_TLS_CERT": str(tmp_path / "cert.pem"),
        "LIGHTMAIL_TLS_KEY": str(tmp_path / "cert.pem"),
    }
    with serving(tmp_path, env, "--workers", "2") as served:
        assert served.process.wait(60) == 2
        served.close()
    assert "lightmail: config [tls] cert" in served.log
    assert "exited with status 2 while starting; stopping" in served.log
    assert "restarting" not in served.log


def test_workers_read_proxy_headers_on_the_sockets_they_inherit(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    env = {**storage_env(*storage), "LIGHTMAIL_SERVER_PROXY_NETWORKS": "127.0.0.0/8"}
    with serving(tmp_path, env, "--workers", "2") as served:
        started(served)
        for _ in range(6):  # each worker accepts some of them
            with socket.create_connection(("127.0.0.1", served.port("pop3")), timeout=10) as c:
                c.sendall(v2("203.0.113.7", 5000))
                assert c.recv(100).startswith(b"+OK")
        with socket.create_connection(("127.0.0.1", served.port("imap")), timeout=10) as c:
            c.sendall(b"a1 CAPABILITY\r\n")  # no header from a trusted proxy
            with contextlib.suppress(ConnectionResetError):
                assert c.recv(100) == b""
        assert served.stop(signal.SIGTERM) == 0, served.log
    assert "closed 127.0.0.1:" in served.log
    assert "from a proxy: not a PROXY protocol header" in served.log
    assert "Traceback" not in served.log
