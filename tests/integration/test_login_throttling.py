"""Password guessing over IMAP and POP3, on both backends, with the real [auth] throttle.

Regression for issue #14: 100 connections times 3 wrong passwords each got a
fresh try, and the right password still worked. IMAP and POP3 share one count
per client address and per account, kept by the accounts service.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from lightmail.accounts.service import Accounts
from lightmail.auth import passwords
from lightmail.auth.passwords import Verification
from lightmail.config import Settings, TcpAddress, load_settings
from lightmail.imap.server import ImapServer
from lightmail.pop3.server import Pop3Server
from tests.conftest import Backend
from tests.support.proxy_header import opened, v2


@dataclass
class Servers:
    accounts: Accounts
    imap: TcpAddress
    pop3: TcpAddress


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords that reached the hashing pool."""
    checked: list[str] = []
    real = passwords.verify_password

    async def spy(stored_hash: str, password: str) -> Verification:
        checked.append(password)
        return await real(stored_hash, password)

    monkeypatch.setattr("lightmail.accounts.service.verify_password", spy)
    return checked


def _settings(tmp_path: Path, proxy_networks: str = "") -> Settings:
    return load_settings(
        None,
        {
            "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
            "LIGHTMAIL_SERVER_PROXY_NETWORKS": proxy_networks,
            "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
            "LIGHTMAIL_POP3_LISTEN": "127.0.0.1:0",
            "LIGHTMAIL_AUTH_FAILURE_DELAY": "0.05s",
            # Long enough that the test never outlives a penalty.
            "LIGHTMAIL_AUTH_THROTTLE_DELAY": "10m",
            "LIGHTMAIL_AUTH_THROTTLE_MAX_DELAY": "10m",
        },
    )


@pytest.fixture
async def servers(backend: Backend, tmp_path: Path) -> AsyncIterator[Servers]:
    settings = _settings(tmp_path)
    accounts = Accounts(backend.store, settings.auth)  # as runtime.open_node builds it
    imap = ImapServer(settings, backend.store, accounts, None, scanner=None)
    pop3 = Pop3Server(settings, backend.store, accounts, None)
    await imap.start()
    await pop3.start()
    try:
        imap_address = imap.listeners[0].bound_addresses[0]
        pop3_address = pop3.listeners[0].bound_addresses[0]
        assert isinstance(imap_address, TcpAddress)
        assert isinstance(pop3_address, TcpAddress)
        yield Servers(accounts, imap_address, pop3_address)
    finally:
        await imap.stop()
        await pop3.stop()


def imap_logins(address: TcpAddress, user: str, passwords: list[str]) -> list[str]:
    """One connection, one LOGIN per password until one works or the server hangs
    up; the outcome of each: "OK" or the server's words."""
    outcomes = []
    client = imaplib.IMAP4(address.host, address.port, timeout=30)
    try:
        for password in passwords:
            try:
                client.login(user, password)
            except imaplib.IMAP4.error as error:
                words = error.args[0]
                outcomes.append(words.decode() if isinstance(words, bytes) else str(words))
                continue
            outcomes.append("OK")
            break
    except imaplib.IMAP4.abort:
        pass  # max_login_failures reached: BYE
    finally:
        client.shutdown()
    return outcomes


def pop3_login(address: TcpAddress, user: str, password: str) -> str:
    """ "OK", or the server's words."""
    client = poplib.POP3(address.host, address.port, timeout=30)
    try:
        client.user(user)
        client.pass_(password)
    except poplib.error_proto as error:
        return str(error.args[0], "utf-8")
    finally:
        client.close()
    return "OK"


FAILED = "[AUTHENTICATIONFAILED] Authentication failed"


async def test_password_guessing_over_many_imap_connections_is_throttled(
    backend: Backend, servers: Servers, hasher: list[str]
) -> None:
    user = await backend.new_user()
    guesses = [[f"guess{c}-{n}" for n in range(3)] for c in range(10)]

    def attack() -> list[list[str]]:
        with ThreadPoolExecutor(10) as pool:
            return list(pool.map(imap_logins, [servers.imap] * 10, [user.address] * 10, guesses))

    results = await asyncio.to_thread(attack)
    assert all(outcome == FAILED for connection in results for outcome in connection)
    assert sum(map(len, results)) == 30
    # Only the first three guesses were checked; the rest were throttled.
    assert len(hasher) == 3
    # And now the right password does not get in either, from this client.
    assert await asyncio.to_thread(imap_logins, servers.imap, user.address, ["secret"]) == [FAILED]
    assert len(hasher) == 3


async def test_imap_and_pop3_share_the_counts(
    backend: Backend, servers: Servers, hasher: list[str]
) -> None:
    user = await backend.new_user()
    pop3_failed = "-ERR [AUTH] Authentication failed"
    for n in range(3):
        assert await asyncio.to_thread(pop3_login, servers.pop3, user.address, f"g{n}") == (
            pop3_failed
        )
    assert await asyncio.to_thread(imap_logins, servers.imap, user.address, ["secret"]) == [FAILED]
    assert await asyncio.to_thread(pop3_login, servers.pop3, user.address, "secret") == pop3_failed
    assert len(hasher) == 3


async def test_behind_a_proxy_each_carried_address_is_throttled_on_its_own(
    backend: Backend, tmp_path: Path, hasher: list[str]
) -> None:
    settings = _settings(tmp_path, proxy_networks="127.0.0.0/8")
    imap = ImapServer(
        settings, backend.store, Accounts(backend.store, settings.auth), None, scanner=None
    )
    await imap.start()
    address = imap.listeners[0].bound_addresses[0]
    assert isinstance(address, TcpAddress)

    async def login(client: str, user: str, password: str) -> bytes:
        """One LOGIN through the proxy on loopback for ``client``; the tagged answer."""
        reader, writer = await opened(address.host, address.port, v2(client, 40000))
        assert (await reader.readline()).startswith(b"* OK")
        writer.write(f'a1 LOGIN "{user}" "{password}"\r\n'.encode())
        while not (line := await asyncio.wait_for(reader.readline(), 10)).startswith(b"a1 "):
            assert line
        writer.close()
        return line

    try:
        guessed, other = await backend.new_user(), await backend.new_user()
        for n in range(3):
            assert FAILED.encode() in await login("127.0.0.7", guessed.address, f"g{n}")
        # That client address is throttled now, for any account...
        assert FAILED.encode() in await login("127.0.0.7", other.address, "secret")
        assert len(hasher) == 3
        # ... while another client behind the same proxy is not (both are on
        # loopback, where plaintext login is allowed; the proxy is 127.0.0.1).
        assert (await login("127.0.0.8", other.address, "secret")).startswith(b"a1 OK")
    finally:
        await imap.stop()
