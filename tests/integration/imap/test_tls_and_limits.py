"""Implicit TLS, STARTTLS, timeouts and connection caps, with real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import socket
import time

import pytest

from tests.integration.imap.conftest import PASSWORD, ImapFactory
from tests.support.trickle import trickle


async def test_implicit_tls(imap_factory: ImapFactory) -> None:
    target = await imap_factory(tls=True)
    user = await target.new_user()
    port = target.tls_port
    assert port is not None

    def conversation() -> None:
        client = imaplib.IMAP4_SSL(
            target.host, port, ssl_context=target.client_ssl_context(), timeout=10
        )
        try:
            assert "STARTTLS" not in client.capabilities
            assert "AUTH=PLAIN" in client.capabilities
            client.login(user.address, PASSWORD)
            assert client.select("INBOX")[0] == "OK"
        finally:
            client.logout()

    await asyncio.to_thread(conversation)


async def test_starttls_then_login_outside_plaintext_networks(imap_factory: ImapFactory) -> None:
    target = await imap_factory(tls=True, plaintext_networks="192.0.2.0/24")
    user = await target.new_user()

    def conversation() -> None:
        client = imaplib.IMAP4(target.host, target.port, timeout=10)
        try:
            assert "STARTTLS" in client.capabilities
            assert "LOGINDISABLED" in client.capabilities
            client.starttls(ssl_context=target.client_ssl_context())
            assert "STARTTLS" not in client.capabilities
            assert "LOGINDISABLED" not in client.capabilities
            client.login(user.address, PASSWORD)
        finally:
            client.logout()

    await asyncio.to_thread(conversation)


async def test_starttls_discards_pipelined_plaintext_injection(imap_factory: ImapFactory) -> None:
    """A command pipelined after STARTTLS in clear text must not run under TLS."""
    target = await imap_factory(tls=True)

    def conversation() -> None:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            raw.sendall(b"a1 STARTTLS\r\nINJECTED NOOP\r\n")
            assert reader.readline().startswith(b"a1 OK")
            context = target.client_ssl_context()
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"a2 NOOP\r\n")
                tls_reader = tls.makefile("rb")
                # Had the injected line survived, its reply would come first.
                assert tls_reader.readline() == b"a2 OK completed\r\n"

    await asyncio.to_thread(conversation)


async def test_login_timeout_says_bye(imap_factory: ImapFactory) -> None:
    target = await imap_factory(login_timeout="0.3s")

    def conversation() -> None:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            assert reader.readline() == b"* BYE Autologout; took too long to log in\r\n"
            assert reader.readline() == b""

    await asyncio.to_thread(conversation)


async def test_a_client_trickling_a_byte_at_a_time_is_logged_out_at_the_login_deadline(
    imap_factory: ImapFactory,
) -> None:
    """Slowloris: a byte every 0.3 s is never 1 s of silence, but the login time is total."""
    target = await imap_factory(login_timeout="1s")
    user = await target.new_user()

    def conversation() -> None:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            slow = trickle(raw, b"a1 LOGIN someone@example.org secret\r\n", every=0.3, budget=5)
        assert slow.closed_after is not None, "the slow client is still connected"
        assert 0.9 < slow.closed_after < 2.5
        assert slow.received.startswith(b"* OK")
        assert slow.received.endswith(b"* BYE Autologout; took too long to log in\r\n")
        # Once logged in, the login deadline no longer applies.
        with target.client(user) as client:
            time.sleep(1.5)
            assert client.noop()[0] == "OK"

    await asyncio.to_thread(conversation)


async def test_authenticated_idle_timeout_applies_during_idle(imap_factory: ImapFactory) -> None:
    target = await imap_factory()
    # The configuration refuses less than the 30 minutes RFC 3501 requires;
    # the test shortens it on the running server to observe it.
    context = target.server.context
    target.server.context = dataclasses.replace(
        context, settings=dataclasses.replace(context.settings, idle_timeout=0.5)
    )
    user = await target.new_user()

    def conversation() -> None:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(f"a1 LOGIN {user.address} {PASSWORD}\r\na2 SELECT INBOX\r\n".encode())
            while not reader.readline().startswith(b"a2 OK"):
                pass
            raw.sendall(b"a3 IDLE\r\n")
            assert reader.readline().startswith(b"+ ")
            assert reader.readline() == b"* BYE Autologout; idle for too long\r\n"

    await asyncio.to_thread(conversation)


async def test_connections_per_user_are_capped(imap_factory: ImapFactory) -> None:
    target = await imap_factory(max_connections_per_user="2")
    user = await target.new_user()

    def conversation() -> None:
        with (
            target.client(user),
            target.client(user),
            target.client() as third,
            pytest.raises(imaplib.IMAP4.error, match="LIMIT"),
        ):
            third.login(user.address, PASSWORD)
        # Logged out: the slots are free again.
        with target.client(user) as again:
            assert again.noop()[0] == "OK"

    await asyncio.to_thread(conversation)


async def test_server_stop_says_bye_to_sessions(imap_factory: ImapFactory) -> None:
    target = await imap_factory()
    user = await target.new_user()
    loop = asyncio.get_running_loop()

    def conversation() -> bytes:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(f"a1 LOGIN {user.address} {PASSWORD}\r\n".encode())
            reader.readline()
            asyncio.run_coroutine_threadsafe(target.server.stop(), loop).result(timeout=20)
            return reader.readline()

    assert await asyncio.to_thread(conversation) == b"* BYE Server shutting down\r\n"


async def test_commands_before_login_are_budgeted(imap_factory: ImapFactory) -> None:
    target = await imap_factory(max_commands_before_login="5")

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(b"".join(b"n%d NOOP\r\n" % n for n in range(6)))
            return [reader.readline() for _ in range(7)]

    lines = await asyncio.to_thread(conversation)
    assert lines[:5] == [b"n%d OK completed\r\n" % n for n in range(5)]
    assert lines[5:] == [b"* BYE Too many commands without logging in\r\n", b""]
