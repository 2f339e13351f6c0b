"""Passwords verified recently, so a returning client's login needs no hashing.

A client that logs in again and again (a phone polling, a mail client opening
several connections) should not wait in the hashing pool behind strangers
whose passwords are being checked. After a successful check this cache keeps,
per account, an HMAC-SHA256 of the password under a random key made when the
process starts (never the password, and nothing that outlives the process)
and the stored hash the password was checked against, for ``ttl`` seconds.

A later login with the same password is accepted without hashing only while
the account's stored hash is still that one, so a password change or a rehash
anywhere (another process or node included) ends it; the accounts service
also forgets an entry at once when this process changes, disables or deletes
the account.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

_MAX_ENTRIES = 100_000  # one per account; beyond this the oldest are forgotten


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    password_hash: str
    expires: float


class CredentialCache:
    """Recently verified (account, password) pairs; ``ttl`` 0 remembers nothing."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # oldest first

    def digest(self, address: str, password: str) -> bytes:
        """The keyed hash that stands for ``password`` of ``address`` in this process."""
        message = address.encode() + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def lookup(self, address: str, digest: bytes) -> str | None:
        """The stored hash this password was verified against, if it is remembered."""
        entry = self._entries.get(address)
        if entry is None:
            return None
        if self._clock() >= entry.expires:
            del self._entries[address]
            return None
        return entry.password_hash if hmac.compare_digest(entry.digest, digest) else None

    def remember(self, address: str, digest: bytes, password_hash: str) -> None:
        if self.ttl <= 0:
            return
        now = self._clock()
        self._entries.pop(address, None)
        self._entries[address] = _Entry(digest, password_hash, now + self.ttl)
        while self._entries:
            oldest, entry = next(iter(self._entries.items()))
            if len(self._entries) <= _MAX_ENTRIES and entry.expires > now:
                break
            del self._entries[oldest]

    def forget(self, address: str) -> None:
        self._entries.pop(address, None)
