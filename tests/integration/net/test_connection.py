"""Connection: reads, writes, timeouts, flow control and STARTTLS, over real sockets."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import zlib

import pytest

from lightmail.net import (
    Connection,
    ConnectionClosed,
    DeadlineExceeded,
    IdleTimeout,
    TlsHandshakeFailed,
    WriteTimeout,
)
from lightmail.net.stream import HIGH_WATER, READ_SIZE, ip_of
from tests.integration.net.conftest import close, connect, serving


async def echo(connection: Connection) -> None:
    while data := await connection.read(timeout=5):
        await connection.write(data)


async def test_echo_over_tcp_with_peer_details() -> None:
    seen: list[Connection] = []

    async def handler(connection: Connection) -> None:
        seen.append(connection)
        await echo(connection)

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        writer.write(b"a1 NOOP\r\n")
        assert await reader.readexactly(9) == b"a1 NOOP\r\n"
        local_port = writer.get_extra_info("sockname")[1]
        bound = listener.bound[0]
        await close(writer)
    (connection,) = seen
    assert connection.peer == f"127.0.0.1:{local_port}"
    assert connection.peer_ip == ipaddress.IPv4Address("127.0.0.1")
    assert connection.local == bound
    assert not connection.is_tls
    assert len(connection.id) == 8


def test_ipv4_mapped_peer_is_reported_as_ipv4() -> None:
    assert ip_of(("::ffff:192.0.2.1", 143, 0, 0)) == ipaddress.IPv4Address("192.0.2.1")
    assert ip_of(("2001:db8::1", 143, 0, 0)) == ipaddress.IPv6Address("2001:db8::1")
    assert ip_of("") is None


async def test_read_returns_empty_bytes_at_eof_and_reply_still_goes_out() -> None:
    async def handler(connection: Connection) -> None:
        received = b""
        while data := await connection.read(timeout=5):
            received += data
        await connection.write(b"got " + received)  # the client only shut down its side

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        writer.write(b"QUIT\r\n")
        writer.write_eof()
        assert await reader.read() == b"got QUIT\r\n"
        await close(writer)


async def test_idle_timeout_leaves_the_connection_open_for_bye() -> None:
    async def handler(connection: Connection) -> None:
        with pytest.raises(IdleTimeout):
            await connection.read(timeout=0.1)
        await connection.write(b"* BYE Autologout\r\n")

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        assert await reader.read() == b"* BYE Autologout\r\n"
        await close(writer)


async def test_flood_is_bounded_by_the_high_water_mark() -> None:
    total = 50 * 1024 * 1024
    observed: list[int] = []
    received = 0
    start_reading = asyncio.Event()

    async def handler(connection: Connection) -> None:
        nonlocal received
        for _ in range(50):  # the client floods while the session does not read
            await asyncio.sleep(0.01)
            observed.append(connection.buffered)
        await start_reading.wait()
        while data := await connection.read(timeout=5):
            assert len(data) <= READ_SIZE
            received += len(data)
            observed.append(connection.buffered)
        await connection.write(b"done\r\n")

    async def flood(writer: asyncio.StreamWriter) -> None:
        chunk = b"x" * (1024 * 1024)
        for _ in range(total // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        sender = asyncio.create_task(flood(writer))
        await asyncio.sleep(0.6)
        assert not sender.done()  # the server stopped reading; the kernel pushes back
        assert HIGH_WATER <= max(observed) <= 2 * HIGH_WATER
        start_reading.set()
        await sender
        assert await reader.read() == b"done\r\n"
        await close(writer)
    assert received == total
    assert max(observed) <= 2 * HIGH_WATER


async def test_write_to_a_peer_that_closed_raises_connection_closed() -> None:
    outcome: list[BaseException] = []

    async def keep_writing(connection: Connection) -> None:
        for _ in range(100):  # the first writes may still reach the kernel
            await connection.write(b"* OK still there?\r\n" * 100)
            await asyncio.sleep(0.01)

    async def handler(connection: Connection) -> None:
        assert await connection.read(timeout=5) == b""
        with pytest.raises(ConnectionClosed) as raised:
            await keep_writing(connection)
        outcome.append(raised.value)

    async with serving(handler) as listener:
        _, writer = await connect(listener)
        await close(writer)
        for _ in range(100):
            if outcome:
                break
            await asyncio.sleep(0.02)
    assert outcome


async def test_write_to_a_peer_that_does_not_read_times_out() -> None:
    outcome: list[BaseException] = []

    async def keep_writing(connection: Connection) -> None:
        for _ in range(1000):  # until the kernel's buffers are full
            await connection.write(b"x" * 1024 * 1024, timeout=0.2)

    async def handler(connection: Connection) -> None:
        with pytest.raises(WriteTimeout) as raised:
            await keep_writing(connection)
        outcome.append(raised.value)
        assert connection.is_closing

    async with serving(handler) as listener:
        _, writer = await connect(listener)
        for _ in range(100):
            if outcome:
                break
            await asyncio.sleep(0.05)
        await close(writer)
    assert outcome


async def test_implicit_tls(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    tls_seen: list[bool] = []

    async def handler(connection: Connection) -> None:
        tls_seen.append(connection.is_tls)
        await connection.write(b"* OK ready\r\n")
        await echo(connection)

    async with serving(handler, tls=server_tls) as listener:
        reader, writer = await connect(listener, tls=client_tls)
        assert await reader.readline() == b"* OK ready\r\n"
        writer.write(b"a1 CAPABILITY\r\n")
        assert await reader.readline() == b"a1 CAPABILITY\r\n"
        await close(writer)
    assert tls_seen == [True]


async def test_implicit_tls_handshake_failure_ends_quietly(server_tls: ssl.SSLContext) -> None:
    called: list[Connection] = []

    async def handler(connection: Connection) -> None:
        called.append(connection)

    async with serving(handler, tls=server_tls, tls_handshake_timeout=2) as listener:
        reader, writer = await connect(listener)
        writer.write(b"a1 LOGIN alice secret\r\n")  # plaintext to a TLS port
        assert await reader.read() == b""
        await close(writer)
        assert listener.connections == 0
    assert called == []


async def test_starttls_upgrade(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    async def handler(connection: Connection) -> None:
        assert await connection.read(timeout=5) == b"a1 STARTTLS\r\n"
        await connection.write(b"a1 OK begin TLS\r\n")
        await connection.start_tls(server_tls)
        assert connection.is_tls
        await echo(connection)

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        writer.write(b"a1 STARTTLS\r\n")
        assert await reader.readline() == b"a1 OK begin TLS\r\n"
        await writer.start_tls(client_tls, server_hostname="localhost")
        writer.write(b"a2 NOOP\r\n")
        assert await reader.readline() == b"a2 NOOP\r\n"
        await close(writer)


async def test_starttls_discards_pipelined_plaintext_injection(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """CVE-2011-0411: bytes sent in plaintext after STARTTLS must not count as TLS input."""
    after_tls: list[bytes] = []
    command = b"a1 STARTTLS\r\n"
    injected = b"a2 DELETE INBOX\r\n"

    async def handler(connection: Connection) -> None:
        assert await connection.read(timeout=5, max_bytes=len(command)) == command
        # The attack: the injected command is already buffered at the upgrade.
        while connection.buffered < len(injected):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await connection.write(b"a1 OK begin TLS\r\n")
        await connection.start_tls(server_tls)
        while data := await connection.read(timeout=5):
            after_tls.append(data)

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        writer.write(command + injected)  # one segment, as a man in the middle would add it
        assert await reader.readline() == b"a1 OK begin TLS\r\n"
        await writer.start_tls(client_tls, server_hostname="localhost")
        writer.write(b"a3 LOGOUT\r\n")
        await writer.drain()
        await close(writer)
        for _ in range(100):
            if after_tls:
                break
            await asyncio.sleep(0.01)
    assert b"".join(after_tls) == b"a3 LOGOUT\r\n"


async def test_starttls_with_a_plaintext_client_fails_the_handshake(
    server_tls: ssl.SSLContext,
) -> None:
    outcome: list[BaseException] = []

    async def handler(connection: Connection) -> None:
        await connection.read(timeout=5)
        await connection.write(b"a1 OK begin TLS\r\n")
        with pytest.raises(TlsHandshakeFailed) as raised:
            await connection.start_tls(server_tls, timeout=2)
        outcome.append(raised.value)
        with pytest.raises(ConnectionClosed):
            await connection.write(b"a2 BAD\r\n")

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        writer.write(b"a1 STARTTLS\r\n")
        assert await reader.readline() == b"a1 OK begin TLS\r\n"
        writer.write(b"a2 LOGIN alice secret\r\n")
        await reader.read()
        await close(writer)
        for _ in range(100):
            if outcome:
                break
            await asyncio.sleep(0.01)
    assert outcome


async def test_a_deadline_ends_reads_however_the_bytes_trickle() -> None:
    """A byte every 0.1 s keeps a 5 s silence timeout from firing; the deadline fires."""
    ended: list[float] = []

    async def handler(connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            while await connection.read(timeout=5, deadline=start + 0.5):
                pass
        except DeadlineExceeded:
            ended.append(loop.time() - start)

    async with serving(handler) as listener:
        _, writer = await connect(listener)
        for _ in range(30):
            if ended:
                break
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)
        await close(writer)
    (elapsed,) = ended
    assert 0.45 < elapsed < 1.0


def _deflater() -> zlib._Compress:
    """A client's side of RFC 4978: raw DEFLATE with the full window."""
    return zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)


async def test_compression_both_ways_over_tls(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """RFC 4978 section 3: the go-ahead is sent as it is; after it every byte each way
    is DEFLATE, inside TLS; each write is flushed so the client can read it whole."""

    async def handler(connection: Connection) -> None:
        assert await connection.read(timeout=5) == b"c COMPRESS DEFLATE\r\n"
        await connection.write(b"c OK DEFLATE active\r\n")
        connection.start_compression()
        assert connection.is_compressed
        await echo(connection)

    async with serving(handler, tls=server_tls) as listener:
        reader, writer = await connect(listener, tls=client_tls)
        writer.write(b"c COMPRESS DEFLATE\r\n")
        assert await reader.readline() == b"c OK DEFLATE active\r\n"
        deflate, inflate = _deflater(), zlib.decompressobj(-zlib.MAX_WBITS)
        for line in (b"a1 NOOP\r\n", b"a2 " + b"x" * 100_000 + b"\r\n"):
            writer.write(deflate.compress(line) + deflate.flush(zlib.Z_SYNC_FLUSH))
            echoed = b""
            while len(echoed) < len(line):
                echoed += inflate.decompress(await reader.read(65536))
            assert echoed == line
        await close(writer)


async def test_a_compressed_bomb_inflates_no_faster_than_it_is_read() -> None:
    """50 MB of zeros deflate to about 50 KB: the server's buffer still never holds
    much more than its high-water mark, and every byte arrives."""
    total = 50 * 1024 * 1024
    observed: list[int] = []
    received = 0
    start_reading = asyncio.Event()

    async def handler(connection: Connection) -> None:
        nonlocal received
        assert await connection.read(timeout=5) == b"c COMPRESS DEFLATE\r\n"
        await connection.write(b"c OK\r\n")
        connection.start_compression()
        for _ in range(30):
            await asyncio.sleep(0.01)
            observed.append(connection.buffered)
        await start_reading.wait()
        while data := await connection.read(timeout=5):
            received += len(data)
            observed.append(connection.buffered)

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        writer.write(b"c COMPRESS DEFLATE\r\n")
        assert await reader.readline() == b"c OK\r\n"
        deflate = _deflater()
        bomb = b"".join(deflate.compress(b"\0" * (1024 * 1024)) for _ in range(total // 2**20))
        bomb += deflate.flush(zlib.Z_SYNC_FLUSH)
        assert len(bomb) < total // 500
        writer.write(bomb)
        await writer.drain()
        await asyncio.sleep(0.4)
        start_reading.set()
        writer.write_eof()
        await reader.read()
        await close(writer)
    assert received == total
    assert max(observed) <= HIGH_WATER + READ_SIZE


async def test_a_corrupt_compressed_stream_ends_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lightmail.net.stream")
    ended = asyncio.Event()

    async def handler(connection: Connection) -> None:
        await connection.read(timeout=5)
        await connection.write(b"c OK\r\n")
        connection.start_compression()
        assert await connection.read(timeout=5) == b""
        ended.set()

    async with serving(handler) as listener:
        reader, writer = await connect(listener)
        writer.write(b"c COMPRESS DEFLATE\r\n")
        assert await reader.readline() == b"c OK\r\n"
        writer.write(b"\xff\xff\xff not deflate at all\r\n")
        await asyncio.wait_for(ended.wait(), 5)
        await close(writer)
    assert "compressed stream is corrupt" in caplog.text
