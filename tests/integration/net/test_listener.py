"""Listener: unix sockets, limits, handler failures, bind errors and shutdown."""

from __future__ import annotations

import asyncio
import grp
import os
import socket
import ssl
import stat
import time
from pathlib import Path

import pytest

from lightmail.config import TcpAddress, UnixAddress
from lightmail.net import Connection, ConnectionLimiter, Listener, ListenError, ShutdownRequested
from tests.integration.net.conftest import close, connect, serving

REFUSAL = b"* BYE Too many connections\r\n"


async def greet_and_wait(connection: Connection) -> None:
    """Greet, then stay until the client leaves or the server stops."""
    await connection.write(b"* OK hello\r\n")
    try:
        await connection.read_request(timeout=10)
    except ShutdownRequested:
        await connection.write(b"* BYE Server shutting down\r\n")


async def test_unix_socket_with_mode(tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"
    peers: list[tuple[str, object]] = []

    async def handler(connection: Connection) -> None:
        peers.append((connection.peer, connection.peer_ip))
        await connection.write(b"220 ready\r\n")

    async with serving(handler, (UnixAddress(path),), unix_mode=0o600) as listener:
        assert listener.bound == [f"unix:{path}"]
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(path)
        assert await reader.read() == b"220 ready\r\n"
        await close(writer)
    assert peers == [("unix", None)]
    assert not path.exists()


async def test_unix_socket_owner_and_group(tmp_path: Path) -> None:
    path = tmp_path / "owned.sock"
    group = grp.getgrgid(os.getgid()).gr_name
    async with serving(greet_and_wait, (UnixAddress(path),), unix_group=group):
        assert path.stat().st_gid == os.getgid()
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
    unknown = Listener("lmtp", (UnixAddress(path),), greet_and_wait, unix_owner="no-such-user-x")
    with pytest.raises(ListenError, match=r"owned\.sock: no such user"):
        await unknown.start()
    assert not path.exists()


async def test_stale_unix_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # left behind by a process that died
    async with serving(greet_and_wait, (UnixAddress(path),)):
        reader, writer = await asyncio.open_unix_connection(path)
        assert await reader.readline() == b"* OK hello\r\n"
        await close(writer)


async def test_live_unix_socket_and_other_files_are_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "busy.sock"
    async with serving(greet_and_wait, (UnixAddress(path),)):
        with pytest.raises(ListenError, match=r"unix:.*busy\.sock: another server uses it"):
            await Listener("lmtp", (UnixAddress(path),), greet_and_wait).start()
    regular = tmp_path / "notes.txt"
    regular.write_text("keep me")
    with pytest.raises(ListenError, match="not a socket file"):
        await Listener("lmtp", (UnixAddress(regular),), greet_and_wait).start()
    assert regular.read_text() == "keep me"


async def test_bind_failure_names_the_address() -> None:
    async with serving(greet_and_wait) as first:
        taken = first.bound_addresses[0]
        assert isinstance(taken, TcpAddress)
        second = Listener("imap", (TcpAddress("127.0.0.1", 0), taken), greet_and_wait)
        with pytest.raises(ListenError, match=rf"imap: cannot listen on 127\.0\.0\.1:{taken.port}"):
            await second.start()
        assert second.bound == []  # the first address was released again


async def test_start_logs_each_address(
    caplog: pytest.LogCaptureFixture, server_tls: ssl.SSLContext
) -> None:
    caplog.set_level("INFO", logger="lightmail.net")
    async with serving(greet_and_wait, tls=server_tls) as listener:
        assert f"test: listening on {listener.bound[0]} (TLS)" in caplog.messages


async def test_max_per_ip_refuses_with_a_line(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(greet_and_wait, max_per_ip=2, refuse=REFUSAL) as listener:
        clients = [await connect(listener) for _ in range(2)]
        for reader, _ in clients:
            assert await reader.readline() == b"* OK hello\r\n"
        reader, writer = await connect(listener)
        assert await reader.read() == REFUSAL
        await close(writer)
        assert listener.connections == 2
        assert any("max_per_ip" in message for message in caplog.messages)
        await close(clients[0][1])  # one leaves: a new one is welcome
        for _ in range(100):
            if listener.connections < 2:
                break
            await asyncio.sleep(0.01)
        reader, writer = await connect(listener)
        assert await reader.readline() == b"* OK hello\r\n"
        await close(writer)
        await close(clients[1][1])


async def test_max_connections_refuses(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(greet_and_wait, max_connections=1, refuse=REFUSAL) as listener:
        reader, writer = await connect(listener)
        assert await reader.readline() == b"* OK hello\r\n"
        other_reader, other_writer = await connect(listener)
        assert await other_reader.read() == REFUSAL
        await close(other_writer)
        await close(writer)
    assert any("max_connections" in message for message in caplog.messages)


async def test_implicit_tls_limit_refuses_after_the_handshake(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with serving(greet_and_wait, tls=server_tls, max_per_ip=1, refuse=REFUSAL) as listener:
        reader, writer = await connect(listener, tls=client_tls)
        assert await reader.readline() == b"* OK hello\r\n"
        other_reader, other_writer = await connect(listener, tls=client_tls)
        assert await other_reader.readline() == REFUSAL
        await close(other_writer)
        await close(writer)


async def test_handler_exception_is_logged_and_listener_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def handler(connection: Connection) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        await connection.write(b"* OK hello\r\n")

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        assert await reader.read() == b""  # closed by the listener
        await close(writer)
        reader, writer = await connect(listener)
        assert await reader.read() == b"* OK hello\r\n"
        await close(writer)
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.exc_info is not None
    assert "boom" in str(record.exc_info[1])
    assert "session " in record.getMessage()
    assert "failed" in record.getMessage()
    caplog.clear()  # expected


async def test_stop_lets_sessions_say_bye() -> None:
    listener = Listener("test", (TcpAddress("127.0.0.1", 0),), greet_and_wait)
    await listener.start()
    reader, writer = await connect(listener)
    assert await reader.readline() == b"* OK hello\r\n"
    started = time.monotonic()
    await listener.stop(grace=5)
    assert time.monotonic() - started < 1
    assert await reader.read() == b"* BYE Server shutting down\r\n"
    assert listener.connections == 0
    assert listener.bound == []
    await close(writer)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*writer.get_extra_info("peername")[:2])


async def test_stop_cancels_sessions_that_ignore_it_after_grace() -> None:
    cancelled = asyncio.Event()

    async def stubborn(connection: Connection) -> None:
        await connection.write(b"* OK hello\r\n")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    listener = Listener("test", (TcpAddress("127.0.0.1", 0),), stubborn)
    await listener.start()
    reader, writer = await connect(listener)
    assert await reader.readline() == b"* OK hello\r\n"
    started = time.monotonic()
    await listener.stop(grace=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert cancelled.is_set()
    assert await reader.read() == b""
    assert listener.connections == 0
    await close(writer)


def test_connection_limiter() -> None:
    limiter = ConnectionLimiter(2)
    assert limiter.try_acquire("alice")
    assert limiter.try_acquire("alice")
    assert not limiter.try_acquire("alice")
    assert limiter.try_acquire("bob")
    limiter.release("alice")
    assert limiter.count("alice") == 1
    assert limiter.try_acquire("alice")
    limiter.release("bob")
    assert limiter.count("bob") == 0
