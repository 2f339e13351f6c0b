"""Password hashing: argon2id, bcrypt accepted and upgraded."""

from __future__ import annotations

import bcrypt

from lightmail.auth.passwords import hash_password, verify_password


async def test_argon2id_round_trip() -> None:
    stored = await hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert (await verify_password(stored, "correct horse")).ok
    assert not (await verify_password(stored, "wrong")).ok


async def test_bcrypt_verifies_and_asks_for_an_argon2_rehash() -> None:
    legacy = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    verification = await verify_password(legacy, "s3cret")
    assert verification.ok
    assert verification.new_hash is not None
    assert verification.new_hash.startswith("$argon2id$")
    assert not (await verify_password(legacy, "nope")).ok
    assert not (await verify_password(legacy, "x" * 100)).ok


async def test_garbage_hash_never_verifies() -> None:
    assert not (await verify_password("not-a-hash", "anything")).ok
