"""PROXY protocol headers (HAProxy's proxy-protocol.txt) as a load balancer sends
them, for tests that stand in for one."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct

from lightmail.net.proxy import V2_SIGNATURE


def _loopback(source: str) -> str:
    """The proxy's address of ``source``'s family, for the destination."""
    return "::1" if ":" in source else "127.0.0.1"


def v1(source: str, port: int, to_port: int = 143) -> bytes:
    """A v1 PROXY header for TCP over IPv4 or IPv6 from ``source``:``port``."""
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {_loopback(source)} {port} {to_port}\r\n".encode()


def v2(source: str, port: int, to_port: int = 143) -> bytes:
    """A v2 PROXY header for TCP over IPv4 or IPv6 from ``source``:``port``."""
    client, server = ipaddress.ip_address(source), ipaddress.ip_address(_loopback(source))
    family = 0x11 if client.version == 4 else 0x21
    block = client.packed + server.packed + struct.pack("!HH", port, to_port)
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(block)) + block


async def opened(
    host: str, port: int, first: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host``:``port`` that has sent ``first`` (a header, or not)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(first)
    return reader, writer


async def closed_silently(reader: asyncio.StreamReader) -> None:
    """The server closed without sending a byte: a FIN, or a reset when it
    closed with bytes of ours unread."""
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), 10) == b""


async def closed_unanswered(host: str, port: int, sent: bytes) -> None:
    """A trusted proxy that sends ``sent`` instead of a header gets no greeting."""
    reader, writer = await opened(host, port, sent)
    await closed_silently(reader)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
