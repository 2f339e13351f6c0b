"""Listener with ``proxy_networks``: a trusted peer's PROXY header (v1, v2) is read
before the greeting and before an implicit-TLS handshake, and the client address
it carries is the connection's peer, counted by ``max_per_ip``; a trusted peer
without a header is closed with one log line; an untrusted peer's header is
just bytes to the session."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl

import pytest

from lightmail.net import Connection
from lightmail.net.proxy import V2_SIGNATURE
from tests.integration.net.conftest import close, connect, serving
from tests.support.metrics import Changes
from tests.support.proxy_header import closed_silently, v1, v2

REFUSED = "lightmail_connections_refused_total"
LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.0/8"),)
ELSEWHERE = (ipaddress.ip_network("192.0.2.0/24"),)
V1 = v1("203.0.113.7", 51234)


V2_LOCAL = V2_SIGNATURE + b"\x20\x00\x00\x00"


class Seen:
    """A handler that records each connection's peer and greets with it."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []

    async def __call__(self, connection: Connection) -> None:
        self.connections.append(connection)
        await connection.write(f"* OK {connection.peer}\r\n".encode())
        line = await connection.read(timeout=5)
        await connection.write(b"echo " + line)


async def test_v1_header_makes_the_carried_address_the_peer() -> None:
    seen = Seen()
    async with serving(seen, proxy_networks=LOOPBACK_ONLY) as listener:
        reader, writer = await connect(listener)
        writer.write(V1 + b"a1 NOOP\r\n")  # pipelined right after the header
        assert await reader.readline() == b"* OK 203.0.113.7:51234\r\n"
        assert await reader.readline() == b"echo a1 NOOP\r\n"
        await close(writer)
    (connection,) = seen.connections
    assert connection.peer_ip == ipaddress.IPv4Address("203.0.113.7")
    assert connection.proxy is not None
    assert connection.proxy.startswith("127.0.0.1:")


async def test_v2_header_before_the_implicit_tls_handshake(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    seen = Seen()
    async with serving(seen, tls=server_tls, proxy_networks=LOOPBACK_ONLY) as listener:
        reader, writer = await connect(listener)
        writer.write(v2("198.51.100.9", 40000))
        await writer.start_tls(client_tls, server_hostname="localhost")
        assert await reader.readline() == b"* OK 198.51.100.9:40000\r\n"
        await close(writer)
    (connection,) = seen.connections
    assert connection.is_tls
    assert connection.peer_ip == ipaddress.IPv4Address("198.51.100.9")


async def test_v2_local_and_v1_unknown_keep_the_real_peer() -> None:
    seen = Seen()
    async with serving(seen, proxy_networks=LOOPBACK_ONLY) as listener:
        for header in (V2_LOCAL, b"PROXY UNKNOWN\r\n"):
            reader, writer = await connect(listener)
            writer.write(header)
            greeting = await reader.readline()
            assert greeting.startswith(b"* OK 127.0.0.1:"), greeting
            await close(writer)
    assert [c.proxy for c in seen.connections] == [None, None]


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (b"a1 LOGIN user pass\r\n", "not a PROXY protocol header"),
        (b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 143\r\n", "v1 header has a port above 65535"),
        (b"PROXY TCP4 1.2.3.4", "closed before a whole PROXY header came"),
        (b"", "no whole PROXY header within 0.3s"),
    ],
)
async def test_a_trusted_peer_without_a_good_header_is_closed_ungreeted(
    sent: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    changes = Changes()
    caplog.set_level(logging.INFO, logger="lightmail.net.acceptor")
    async with serving(seen, proxy_networks=LOOPBACK_ONLY, proxy_header_timeout=0.3) as listener:
        reader, writer = await connect(listener)
        writer.write(sent)
        if sent.startswith(b"PROXY TCP4 1.2.3.4"):
            writer.write_eof()
        await closed_silently(reader)
        await close(writer)
    assert seen.connections == []
    (line,) = [r.getMessage() for r in caplog.records if r.name == "lightmail.net.acceptor"]
    assert line.startswith("test: closed 127.0.0.1:")
    assert line.endswith(f"from a proxy: {reason}")
    assert changes(REFUSED, protocol="test", reason="proxy_header") == 1


async def test_a_header_from_an_untrusted_peer_is_just_bytes_to_the_session() -> None:
    seen = Seen()
    async with serving(seen, proxy_networks=ELSEWHERE) as listener:
        reader, writer = await connect(listener)
        greeting = await reader.readline()
        assert greeting.startswith(b"* OK 127.0.0.1:")
        writer.write(V1)
        assert await reader.readline() == b"echo " + V1
        await close(writer)
    assert seen.connections[0].proxy is None


async def test_max_per_ip_counts_the_carried_address_not_the_proxy() -> None:
    async def hold(connection: Connection) -> None:
        await connection.write(b"* OK\r\n")
        await connection.read(timeout=5)

    async with serving(
        hold, proxy_networks=LOOPBACK_ONLY, max_per_ip=1, refuse=b"* BYE busy\r\n"
    ) as listener:
        first = await connect(listener)
        first[1].write(v2("203.0.113.7", 1))
        assert await first[0].readline() == b"* OK\r\n"
        other = await connect(listener)  # another client through the same proxy
        other[1].write(v2("203.0.113.8", 2))
        assert await other[0].readline() == b"* OK\r\n"
        again = await connect(listener)  # the first client a second time
        again[1].write(v2("203.0.113.7", 3))
        assert await again[0].read() == b"* BYE busy\r\n"
        for _, writer in (first, other, again):
            await close(writer)


async def test_stop_drops_a_connection_still_owing_its_header() -> None:
    seen = Seen()
    async with serving(seen, proxy_networks=LOOPBACK_ONLY) as listener:
        reader, writer = await connect(listener)
        writer.write(b"PROXY TCP4 ")
        await asyncio.sleep(0.05)
    await closed_silently(reader)
    await close(writer)
    assert seen.connections == []


async def test_slowloris_header_trickled_a_byte_at_a_time_is_cut_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lightmail.net.acceptor")
    async with serving(Seen(), proxy_networks=LOOPBACK_ONLY, proxy_header_timeout=0.3) as listener:
        reader, writer = await connect(listener)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with contextlib.suppress(ConnectionError):
            for byte in V1:  # each byte well within the timeout, the whole far beyond it
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    break
        await closed_silently(reader)
        assert loop.time() - started < 1.5
        await close(writer)
    assert "no whole PROXY header within 0.3s" in caplog.text
