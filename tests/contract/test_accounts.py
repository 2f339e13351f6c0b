"""Domains, users, aliases, logins and recipient resolution on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import bcrypt
import pytest
from sqlalchemy import select, update

from lightmail.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidValue,
    NotFound,
    RecipientDisabled,
    UnknownRecipient,
)
from lightmail.notify.bus import ChangeEvent, ChangeKind
from lightmail.storage.db import tables as t
from tests.conftest import Backend


async def test_user_errors_are_clear(backend: Backend) -> None:
    accounts = backend.accounts
    with pytest.raises(NotFound, match=r"domain nowhere\.example does not exist"):
        await accounts.add_user("a@nowhere.example", "pw")
    with pytest.raises(InvalidValue, match="not a valid address"):
        await accounts.add_user("no-at-sign", "pw")
    with pytest.raises(InvalidValue, match="not a valid address"):
        await accounts.add_user(f"a b@{backend.domain}", "pw")
    user = await backend.new_user()
    with pytest.raises(AlreadyExists):
        await accounts.add_user(user.address.upper(), "pw")
    with pytest.raises(AlreadyExists):
        await accounts.add_domain(backend.domain.upper())
    with pytest.raises(AlreadyExists, match="still has 1 user"):
        await accounts.delete_domain(backend.domain)


async def test_authenticate_with_argon2_and_wrong_passwords(backend: Backend) -> None:
    user = await backend.new_user()
    assert (await backend.accounts.authenticate(user.address.upper(), "secret")).id == user.id
    for address, password in ((user.address, "wrong"), ("ghost@" + backend.domain, "secret")):
        with pytest.raises(AuthenticationFailed):
            await backend.accounts.authenticate(address, password)
    await backend.accounts.set_enabled(user.address, False)
    with pytest.raises(AuthenticationFailed):
        await backend.accounts.authenticate(user.address, "secret")


async def test_bcrypt_hash_is_accepted_and_upgraded_to_argon2id(backend: Backend) -> None:
    user = await backend.new_user()
    legacy = bcrypt.hashpw(b"old-pass", bcrypt.gensalt(rounds=4)).decode()
    async with backend.db.write() as conn:
        await conn.execute(
            update(t.users).where(t.users.c.id == user.id).values(password_hash=legacy)
        )
    with pytest.raises(AuthenticationFailed):
        await backend.accounts.authenticate(user.address, "wrong")
    await backend.accounts.authenticate(user.address, "old-pass")
    async with backend.db.read() as conn:
        stored = (
            await conn.execute(select(t.users.c.password_hash).where(t.users.c.id == user.id))
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    await backend.accounts.authenticate(user.address, "old-pass")


async def test_quota_and_password_changes(backend: Backend) -> None:
    user = await backend.new_user()
    await backend.accounts.set_quota(user.address, 1 << 30)
    assert (await backend.accounts.get_user(user.address)).quota == 1 << 30
    await backend.accounts.set_password(user.address, "new")
    await backend.accounts.authenticate(user.address, "new")
    with pytest.raises(NotFound):
        await backend.accounts.set_quota("ghost@" + backend.domain, None)


async def test_resolution_says_which_users_have_a_quota(backend: Backend) -> None:
    """An RCPT checks the quota of those users only: the others cannot be over one."""
    limited, free = await backend.new_user(quota=1000), await backend.new_user()
    team = f"team-{limited.id}@{backend.domain}"
    await backend.accounts.add_alias(team, [limited.address, free.address])
    resolved = await backend.accounts.resolve_recipient(team)
    assert resolved.with_quota == {limited.id}
    assert (await backend.accounts.resolve_recipient(free.address)).with_quota == set()


async def test_resolution_of_users_aliases_details_and_catch_all(backend: Backend) -> None:
    accounts = backend.accounts
    alice, bob = await backend.new_user(), await backend.new_user()
    domain = backend.domain

    resolved = await accounts.resolve_recipient(alice.address.upper())
    assert [(r.user_id, r.mailbox) for r in resolved.recipients] == [(alice.id, None)]

    local = alice.address.split("@")[0]
    resolved = await accounts.resolve_recipient(f"{local}+lists@{domain}")
    assert [(r.user_id, r.mailbox) for r in resolved.recipients] == [(alice.id, "lists")]

    await accounts.add_alias(f"team@{domain}", [alice.address, bob.address, alice.address])
    resolved = await accounts.resolve_recipient(f"team@{domain}")
    assert sorted(r.user_id for r in resolved.recipients) == sorted([alice.id, bob.id])

    with pytest.raises(UnknownRecipient):
        await accounts.resolve_recipient(f"nobody@{domain}")
    await accounts.add_alias(f"@{domain}", [bob.address])
    resolved = await accounts.resolve_recipient(f"nobody@{domain}")
    assert [r.user_id for r in resolved.recipients] == [bob.id]

    await accounts.set_enabled(bob.address, False)
    with pytest.raises(RecipientDisabled):
        await accounts.resolve_recipient(bob.address)
    resolved = await accounts.resolve_recipient(f"team@{domain}")
    assert [r.user_id for r in resolved.recipients] == [alice.id]

    aliases = {alias.address: alias.targets for alias in await accounts.list_aliases(domain)}
    assert aliases[f"team@{domain}"] == tuple(sorted([alice.address, bob.address]))
    await accounts.delete_alias(f"team@{domain}", [bob.address])
    assert (await accounts.resolve_recipient(f"team@{domain}")).recipients[0].user_id == alice.id
    with pytest.raises(NotFound):
        await accounts.add_alias(f"x@{domain}", [f"ghost@{domain}"])
    with pytest.raises(AlreadyExists):
        await accounts.add_alias(alice.address, [bob.address])


async def test_delete_user_tells_the_users_sessions_their_mailboxes_are_gone(
    backend: Backend,
) -> None:
    """A session with one of the user's mailboxes selected (or IDLE) hears of the
    deletion as of a DELETE of each mailbox: its messages are expunged."""
    user = await backend.new_user()
    mailboxes = await backend.store.list_mailboxes(user.id)
    async with backend.store.bus.subscription(user.id) as events:
        await backend.accounts.delete_user(user.address)
        published = events.drain()
    expunged = [ChangeEvent(user.id, ChangeKind.MESSAGES_EXPUNGED, m.id) for m in mailboxes]
    assert sorted(published[:-1], key=lambda event: event.mailbox_id or 0) == sorted(
        expunged, key=lambda event: event.mailbox_id or 0
    )
    assert published[-1] == ChangeEvent(user.id, ChangeKind.MAILBOXES_CHANGED)


async def test_delete_user_soft_deletes_their_mail(backend: Backend) -> None:
    user = await backend.new_user()

    async def one() -> AsyncIterator[bytes]:
        yield b"Subject: x\r\n\r\nbody\r\n"

    await backend.store.append(user.id, "INBOX", one())
    await backend.accounts.delete_user(user.address)
    with pytest.raises(NotFound):
        await backend.accounts.get_user(user.address)
    async with backend.db.read() as conn:
        rows = (
            await conn.execute(
                select(t.messages.c.deleted_at).where(t.messages.c.user_id == user.id)
            )
        ).all()
    assert len(rows) == 1
    assert rows[0].deleted_at is not None
