"""A real load balancer in front: HAProxy (TCP mode, ``send-proxy-v2``) relays
IMAP and IMAPS to a server with ``[server] proxy_networks`` on loopback; the
login is logged with the client's own port, which only the PROXY header
carried (the server's peer is HAProxy's outgoing socket)."""

from __future__ import annotations

import asyncio
import imaplib
import logging
from pathlib import Path

import pytest

from tests.integration.imap.conftest import PASSWORD, ImapFactory
from tests.support.haproxy import haproxy


async def test_imap_and_imaps_login_through_haproxy(
    imap_factory: ImapFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target = await imap_factory(tls=True, proxy_networks="127.0.0.0/8")
    assert target.tls_port is not None
    user = await target.new_user()
    servers = {"imap": target.port, "imaps": target.tls_port}
    async with haproxy(tmp_path, servers) as fronts:

        def conversation(secure: bool) -> int:
            """Log in and out through HAProxy; the client's own port."""
            if secure:
                context = target.client_ssl_context()
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    "localhost", fronts["imaps"], ssl_context=context, timeout=10
                )
            else:
                client = imaplib.IMAP4("127.0.0.1", fronts["imap"], timeout=10)
            port: int = client.sock.getsockname()[1]
            client.login(user.address, PASSWORD)
            client.select("INBOX")
            client.logout()
            return port

        for secure in (False, True):
            port = await asyncio.to_thread(conversation, secure)
            assert f"{user.address} logged in from 127.0.0.1:{port}\n" in caplog.text + "\n"
