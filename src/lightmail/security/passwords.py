"""Password hashing: argon2id for new hashes; bcrypt hashes verified and upgraded.

Hashing costs tens of milliseconds of CPU by design, so it runs in a worker
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_argon2 = PasswordHasher()  # argon2id with the library's current recommended parameters
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    # Set when the password was right but the stored hash should be replaced
    # (a bcrypt hash, or argon2 parameters older than the current ones).
    new_hash: str | None = None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_argon2.hash, password)


async def verify_password(stored_hash: str, password: str) -> Verification:
    return await asyncio.to_thread(_verify, stored_hash, password)


def _verify(stored_hash: str, password: str) -> Verification:
    if stored_hash.startswith(_BCRYPT_PREFIXES):
        secret = password.encode()
        # bcrypt only looks at the first 72 bytes; bcrypt>=5 refuses longer input.
        if len(secret) > 72 or not bcrypt.checkpw(secret, stored_hash.encode()):
            return Verification(ok=False)
        return Verification(ok=True, new_hash=_argon2.hash(password))
    try:
        _argon2.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return Verification(ok=False)
    if _argon2.check_needs_rehash(stored_hash):
        return Verification(ok=True, new_hash=_argon2.hash(password))
    return Verification(ok=True)
