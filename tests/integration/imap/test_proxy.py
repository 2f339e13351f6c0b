"""IMAP behind a load balancer (``[server] proxy_networks``): the client address a
PROXY header carries decides plaintext_networks and is the one logged."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.integration.imap.conftest import PASSWORD, ImapFactory
from tests.integration.net.conftest import close
from tests.support.proxy_header import closed_unanswered, opened, v1, v2


async def command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str
) -> list[bytes]:
    """Send one tagged command; the untagged lines and the tagged one."""
    writer.write(line.encode() + b"\r\n")
    tag = line.split()[0].encode()
    lines = []
    while not (got := await asyncio.wait_for(reader.readline(), 10)).startswith(tag + b" "):
        assert got, "connection closed"
        lines.append(got)
    return [*lines, got]


async def test_the_carried_address_decides_plaintext_login_and_is_logged(
    imap_factory: ImapFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target = await imap_factory(
        proxy_networks="127.0.0.0/8", plaintext_networks="127.0.0.0/8, 198.51.100.0/24"
    )
    user = await target.new_user()
    login = f'a2 LOGIN "{user.address}" "{PASSWORD}"'

    # From 203.0.113.7 (through the proxy on loopback): no plaintext login.
    reader, writer = await opened(target.host, target.port, v1("203.0.113.7", 51234))
    assert (await reader.readline()).startswith(b"* OK")
    capability = await command(reader, writer, "a1 CAPABILITY")
    assert b"LOGINDISABLED" in capability[0]
    assert (await command(reader, writer, login))[-1].startswith(b"a2 NO [PRIVACYREQUIRED]")
    await close(writer)

    # From 198.51.100.7, inside plaintext_networks: the login works and is logged so.
    reader, writer = await opened(target.host, target.port, v2("198.51.100.7", 40000))
    assert (await reader.readline()).startswith(b"* OK")
    assert (await command(reader, writer, login))[-1].startswith(b"a2 OK")
    assert (await command(reader, writer, "a3 LOGOUT"))[-1].startswith(b"a3 OK")
    await close(writer)
    assert f"{user.address} logged in from 198.51.100.7:40000" in caplog.text


async def test_a_trusted_proxy_without_a_header_gets_no_greeting(
    imap_factory: ImapFactory,
) -> None:
    target = await imap_factory(proxy_networks="127.0.0.0/8")
    await closed_unanswered(target.host, target.port, b"a1 CAPABILITY\r\n")


async def test_a_header_from_an_untrusted_peer_is_a_bad_command(
    imap_factory: ImapFactory,
) -> None:
    target = await imap_factory(proxy_networks="192.0.2.0/24")
    reader, writer = await opened(target.host, target.port, b"")
    assert (await reader.readline()).startswith(b"* OK")
    writer.write(v1("203.0.113.7", 51234))
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"PROXY BAD")
    await close(writer)
