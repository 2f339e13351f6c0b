"""Login hardening on both backends: throttling, one failure delay, the credential cache.

Time is a fake clock: the failure delay "sleeps" by moving it on, and every
password check (the hasher, spied on) moves it on by HASH_SECONDS, as a real
argon2 check would take that long.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from typing import Any

import bcrypt
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from lightmail.accounts.service import Accounts, User
from lightmail.auth import passwords
from lightmail.auth.passwords import Verification, hash_password
from lightmail.config import AUTH_DEFAULTS
from lightmail.errors import AuthenticationFailed
from lightmail.storage.db import tables as t
from tests.conftest import Backend

HASH_SECONDS = 0.25
AUTH = dataclasses.replace(
    AUTH_DEFAULTS,
    failure_delay=2.0,
    cache_ttl=300.0,
    throttle_after=3,
    throttle_delay=1.0,
    throttle_max_delay=60.0,
    throttle_reset=900.0,
)
ATTACKER = ipaddress.ip_address("192.0.2.66")
OWNER = ipaddress.ip_address("198.51.100.7")


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch, fake: FakeTime) -> list[str]:
    """The passwords that reached the hashing pool, in order."""
    checked: list[str] = []
    real = passwords.verify_password

    async def spy(stored_hash: str, password: str) -> Verification:
        checked.append(password)
        fake.now += HASH_SECONDS
        return await real(stored_hash, password)

    monkeypatch.setattr("lightmail.accounts.service.verify_password", spy)
    return checked


def make_accounts(backend: Backend, fake: FakeTime, **auth: Any) -> Accounts:
    settings = dataclasses.replace(AUTH, **auth)
    return Accounts(backend.store, settings, clock=fake.clock, sleep=fake.sleep)


def throttled(scope: str) -> float:
    return REGISTRY.get_sample_value("lightmail_logins_throttled_total", {"scope": scope}) or 0.0


async def refused(accounts: Accounts, address: str, password: str, client: object) -> None:
    assert client is None or isinstance(client, ipaddress.IPv4Address | ipaddress.IPv6Address)
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate(address, password, client)


async def test_password_guessing_from_one_client_stops_reaching_the_hasher(
    backend: Backend, fake: FakeTime, hasher: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    accounts = make_accounts(backend, fake, failure_delay=0.0)
    user = await backend.new_user()
    before = throttled("client")
    caplog.set_level(logging.WARNING, logger="lightmail.accounts.service")
    for n in range(10):
        await refused(accounts, user.address, f"guess{n}", ATTACKER)
    assert hasher == ["guess0", "guess1", "guess2"]
    # The right password too: a throttled attempt is never checked.
    await refused(accounts, user.address, "secret", ATTACKER)
    assert len(hasher) == 3
    assert throttled("client") == before + 8
    lines = [r.getMessage() for r in caplog.records if "throttled" in r.getMessage()]
    assert len(lines) == 8  # one line per throttled attempt
    assert all(user.address in line and str(ATTACKER) in line for line in lines)
    # Another client, on another account, is not held back (this account is: see below).
    other = await backend.new_user()
    assert (await accounts.authenticate(other.address, "secret", OWNER)).id == other.id


async def test_a_burst_of_parallel_guesses_reaches_the_hasher_only_three_times(
    backend: Backend, fake: FakeTime, hasher: list[str]
) -> None:
    """100 connections times 3 guesses, in miniature: 30 attempts at once."""
    accounts = make_accounts(backend, fake, failure_delay=0.0)
    user = await backend.new_user()
    results = await asyncio.gather(
        *(accounts.authenticate(user.address, f"guess{n}", ATTACKER) for n in range(30)),
        return_exceptions=True,
    )
    assert all(isinstance(result, AuthenticationFailed) for result in results)
    assert len(hasher) == 3
    await refused(accounts, user.address, "secret", ATTACKER)
    assert len(hasher) == 3


async def test_the_delay_grows_caps_and_the_counts_expire(
    backend: Backend, fake: FakeTime, hasher: list[str]
) -> None:
    accounts = make_accounts(backend, fake, failure_delay=0.0, throttle_max_delay=4.0)
    user = await backend.new_user()
    for n in range(3):
        await refused(accounts, user.address, f"guess{n}", ATTACKER)
    for delay in (1.0, 2.0, 4.0, 4.0, 4.0):
        fake.now += delay - 0.01
        await refused(accounts, user.address, "secret", ATTACKER)  # too early: not checked
        checked = len(hasher)
        fake.now += 0.01
        await refused(accounts, user.address, "wrong", ATTACKER)  # on time: checked
        assert len(hasher) == checked + 1
    # 15 minutes after the last failure, all is forgotten: the right password works.
    fake.now += AUTH.throttle_reset
    assert (await accounts.authenticate(user.address, "secret", ATTACKER)).id == user.id


async def test_guessing_one_account_from_many_clients_is_throttled(
    backend: Backend, fake: FakeTime, hasher: list[str]
) -> None:
    accounts = make_accounts(backend, fake, failure_delay=0.0)
    owner, victim = await backend.new_user(), await backend.new_user()
    await accounts.authenticate(owner.address, "secret", OWNER)  # verified, so remembered
    before = throttled("account")
    for user in (owner, victim):
        for n in range(6):
            client = ipaddress.ip_address(f"203.0.113.{n + 1}")
            await refused(accounts, user.address, f"guess{n}", client)
    assert len(hasher) == 1 + 3 + 3
    assert throttled("account") == before + 6
    fresh = ipaddress.ip_address("203.0.113.200")
    await refused(accounts, victim.address, "secret", fresh)  # right, but not checked
    assert len(hasher) == 7
    # The owner, whose password was verified a moment ago, does not wait for the
    # strangers: the remembered password needs no hashing.
    assert (await accounts.authenticate(owner.address, "secret", OWNER)).id == owner.id
    assert len(hasher) == 7


@pytest.mark.parametrize(
    "case", ["unknown user", "wrong password", "disabled user", "not an address", "throttled"]
)
async def test_every_failure_is_answered_after_the_same_delay(
    backend: Backend, fake: FakeTime, hasher: list[str], case: str
) -> None:
    """An unknown user is not answered faster than a known one with a wrong password."""
    # A throttle_delay above the failure delay: one client's guesses, one after the
    # other, are paced by the failure delay alone until the throttle's delay is longer.
    accounts = make_accounts(backend, fake, throttle_delay=10.0)
    user = await backend.new_user()
    address, password = user.address, "wrong"
    if case == "unknown user":
        address = "nobody@" + backend.domain
    elif case == "disabled user":
        await accounts.set_enabled(user.address, False)
        password = "secret"
    elif case == "not an address":
        address = "no at sign"
    elif case == "throttled":
        for _ in range(3):
            await refused(accounts, user.address, "wrong", ATTACKER)
        password = "secret"
    checked = len(hasher)
    fake.slept.clear()
    started = fake.now
    await refused(accounts, address, password, ATTACKER)
    assert fake.now == started + AUTH.failure_delay
    assert len(fake.slept) == 1
    assert len(hasher) == checked + (1 if case == "wrong password" else 0)
    # A success is not delayed.
    fake.slept.clear()
    other = await backend.new_user()
    await accounts.authenticate(other.address, "secret", OWNER)
    assert fake.slept == []


async def password_hash(backend: Backend, user: User) -> str:
    async with backend.db.read() as conn:
        query = select(t.users.c.password_hash).where(t.users.c.id == user.id)
        return str((await conn.execute(query)).scalar_one())


async def test_a_recent_login_needs_no_hashing_until_something_changes(
    backend: Backend, fake: FakeTime, hasher: list[str]
) -> None:
    accounts = make_accounts(backend, fake, throttle_after=100)  # not about throttling
    user = await backend.new_user()

    async def login(password: str) -> None:
        assert (await accounts.authenticate(user.address, password, OWNER)).id == user.id

    for _ in range(3):
        await login("secret")
    assert hasher == ["secret"]
    await refused(accounts, user.address, "Secret", OWNER)  # another password is checked
    await login("secret")
    assert hasher == ["secret", "Secret"]
    # The cache keeps a keyed hash, not the password.
    assert "secret" not in repr(vars(accounts.credentials))

    await accounts.set_password(user.address, "changed")
    await refused(accounts, user.address, "secret", OWNER)
    await login("changed")
    await login("changed")
    assert hasher[2:] == ["secret", "changed"]

    await accounts.set_enabled(user.address, False)
    await refused(accounts, user.address, "changed", OWNER)
    await accounts.set_enabled(user.address, True)
    await login("changed")
    assert hasher[4:] == ["changed"]

    # Changed by another process or node: the stored hash is no longer the one
    # the password was verified against.
    async with backend.db.write() as conn:
        await conn.execute(
            update(t.users)
            .where(t.users.c.id == user.id)
            .values(password_hash=await hash_password("elsewhere"))
        )
    await refused(accounts, user.address, "changed", OWNER)
    await login("elsewhere")
    assert hasher[5:] == ["changed", "elsewhere"]

    fake.now += AUTH.cache_ttl  # forgotten after cache_ttl
    await login("elsewhere")
    assert hasher[7:] == ["elsewhere"]

    await accounts.delete_user(user.address)
    await refused(accounts, user.address, "elsewhere", OWNER)


async def test_logins_that_bring_the_same_password_at_once_share_one_hash(
    backend: Backend, fake: FakeTime, hasher: list[str]
) -> None:
    """A client opening several connections at once: 8 logins, one password check.
    Three run at once (``throttle_after``); the others find it verified when their
    turn comes. A login with another password at the same time has its own."""
    accounts = make_accounts(backend, fake, failure_delay=0.0)
    user = await backend.new_user()
    passwords = ["secret"] * 4 + ["Secret"] + ["secret"] * 4
    results = await asyncio.gather(
        *(accounts.authenticate(user.address, password, OWNER) for password in passwords),
        return_exceptions=True,
    )
    refused_at = [n for n, result in enumerate(results) if isinstance(result, AuthenticationFailed)]
    assert refused_at == [4]
    assert {result.id for result in results if isinstance(result, User)} == {user.id}
    assert sorted(hasher) == ["Secret", "secret"]


async def test_a_shared_check_fails_each_login_and_counts_each_failure(
    backend: Backend, fake: FakeTime, hasher: list[str]
) -> None:
    accounts = make_accounts(backend, fake, failure_delay=0.0)
    user = await backend.new_user()
    clients = [ipaddress.ip_address(f"203.0.113.{n + 1}") for n in range(3)]
    results = await asyncio.gather(
        *(accounts.authenticate(user.address, "wrong", client) for client in clients),
        return_exceptions=True,
    )
    assert all(isinstance(result, AuthenticationFailed) for result in results)
    assert hasher == ["wrong"]
    # Three failures of the account: the next attempt waits, the right password too.
    before = throttled("account")
    await refused(accounts, user.address, "secret", ipaddress.ip_address("203.0.113.99"))
    assert throttled("account") == before + 1
    assert hasher == ["wrong"]


async def test_a_rehash_is_remembered_and_cache_ttl_zero_remembers_nothing(
    backend: Backend, fake: FakeTime, hasher: list[str]
) -> None:
    accounts = make_accounts(backend, fake)
    user = await backend.new_user()
    legacy = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
    async with backend.db.write() as conn:
        await conn.execute(
            update(t.users).where(t.users.c.id == user.id).values(password_hash=legacy)
        )
    # Three logins at once share one check and one rehash, and all remember the new hash.
    await asyncio.gather(*(accounts.authenticate(user.address, "secret", OWNER) for _ in range(3)))
    assert (await password_hash(backend, user)).startswith("$argon2id$")
    await accounts.authenticate(user.address, "secret", OWNER)
    assert hasher == ["secret"]

    uncached = make_accounts(backend, fake, cache_ttl=0.0)
    for _ in range(2):
        await uncached.authenticate(user.address, "secret", OWNER)
    assert hasher == ["secret"] * 3
