"""Password hashing: argon2id for new hashes; bcrypt hashes verified and upgraded.

Hashing costs tens of milliseconds of CPU by design, so it runs in worker
threads, never on the event loop, and only as many hashes run at once as
the machine has cores for: argon2 with parallelism 4 already keeps four
cores busy, and unbounded concurrent logins would starve the event loop that
serves every other command (measured: SELECT p50 went from 5 to 170 ms under
ten clients logging in repeatedly on two cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_argon2 = PasswordHasher()  # argon2id with the library's current recommended parameters


def _lower_priority() -> None:
    """Let the event loop's thread win the CPU over hashing (Linux: nice is per thread,
    and argon2's own threads inherit it)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


_hashing = ThreadPoolExecutor(
    max_workers=max(1, (os.cpu_count() or 1) // _argon2.parallelism),
    thread_name_prefix="lightmail-passwords",
    initializer=_lower_priority,
)
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    # Set when the password was right but the stored hash should be replaced
    # (a bcrypt hash, or argon2 parameters older than the current ones).
    new_hash: str | None = None


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_hashing, _argon2.hash, password)


async def verify_password(stored_hash: str, password: str) -> Verification:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hashing, _verify, stored_hash, password)


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
