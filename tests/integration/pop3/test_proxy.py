"""POP3 behind a load balancer (``[server] proxy_networks``): the client address a
PROXY header carries is counted by max_connections_per_ip, decides plaintext
login and is logged; a trusted peer without a header is closed unanswered."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.integration.imap.conftest import PASSWORD
from tests.integration.net.conftest import close
from tests.integration.pop3.conftest import Pop3Factory
from tests.support.proxy_header import closed_unanswered, opened, v1, v2


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> bytes:
    writer.write(line.encode() + b"\r\n")
    return await asyncio.wait_for(reader.readline(), 10)


async def test_per_ip_cap_and_plaintext_login_follow_the_carried_address(
    pop3_factory: Pop3Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target = await pop3_factory(proxy_networks="127.0.0.0/8", max_connections_per_ip="1")
    user = await target.new_user()
    outside = await opened(target.host, target.port, v2("203.0.113.7", 51234, to_port=110))
    assert (await outside[0].readline()).startswith(b"+OK")
    # Plaintext login from 203.0.113.7 is refused, though the proxy is on loopback.
    refused = await ask(*outside, f"USER {user.address}")
    assert refused.startswith(b"-ERR [AUTH] Plaintext login needs TLS")

    # The same client again: over its cap of one. Another client behind the proxy: fine.
    again = await opened(target.host, target.port, v1("203.0.113.7", 51235))
    assert (await again[0].readline()).startswith(b"-ERR [SYS/TEMP] Too many connections")
    inside = await opened(target.host, target.port, v1("127.0.0.5", 40000))
    assert (await inside[0].readline()).startswith(b"+OK")
    assert (await ask(*inside, f"USER {user.address}")).startswith(b"+OK")
    assert (await ask(*inside, f"PASS {PASSWORD}")).startswith(b"+OK")
    assert (await ask(*inside, "QUIT")).startswith(b"+OK")
    assert f"{user.address} logged in from 127.0.0.5:40000" in caplog.text
    for _, writer in (outside, again, inside):
        await close(writer)


async def test_a_trusted_proxy_without_a_header_gets_no_greeting(
    pop3_factory: Pop3Factory,
) -> None:
    target = await pop3_factory(proxy_networks="127.0.0.0/8")
    await closed_unanswered(target.host, target.port, b"CAPA\r\n")


async def test_a_header_from_an_untrusted_peer_is_an_error(pop3_factory: Pop3Factory) -> None:
    target = await pop3_factory(proxy_networks="192.0.2.0/24")
    reader, writer = await opened(target.host, target.port, b"")
    assert (await reader.readline()).startswith(b"+OK")
    assert (await ask(reader, writer, v1("203.0.113.7", 1).decode().strip())).startswith(b"-ERR")
    await close(writer)
