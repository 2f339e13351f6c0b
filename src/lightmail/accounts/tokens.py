"""API tokens: random bearer secrets, stored only as their SHA-256 hash.

A token is ``lm_`` plus 43 characters of URL-safe base64 (256 random bits).
It is shown once, when it is created; the database keeps its hash, so a
stolen database does not hand out API access. A presented token is looked up
by its hash and the hashes are compared with :func:`hmac.compare_digest`, so
the time taken does not depend on how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update

from lightmail.clock import utcnow
from lightmail.errors import AlreadyExists, InvalidValue, NotFound
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database

TOKEN_PREFIX = "lm_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"lm_[A-Za-z0-9_-]{43}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")
NAME_PATTERN = _NAME.pattern
# last_used_at is written at most this often per token: a write per request
# would serialise every API call on SQLite's write lock.
_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ApiToken:
    name: str
    created_at: datetime  # aware UTC
    last_used_at: datetime | None


def new_secret() -> str:
    """A fresh token: ``lm_`` and 256 random bits in URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidValue(
            f"{name!r} is not a valid token name: 1 to 100 letters, digits and . _ @ + -,"
            " starting with a letter or digit"
        )
    return name


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _token(row: t.AnyRow) -> ApiToken:
    return ApiToken(row.name, row.created_at.replace(tzinfo=UTC), _aware(row.last_used_at))


class ApiTokens:
    """Create, list, revoke and verify API tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str) -> tuple[ApiToken, str]:
        """Create a token; return it and its secret (the only time the secret exists)."""
        name = check_name(name)
        secret = new_secret()
        now = utcnow()
        async with self.db.write() as conn:
            exists = await conn.execute(
                select(t.api_tokens.c.id).where(t.api_tokens.c.name == name)
            )
            if exists.first() is not None:
                raise AlreadyExists(f"a token named {name} already exists")
            await conn.execute(
                insert(t.api_tokens).values(
                    name=name, token_hash=token_hash(secret), created_at=now
                )
            )
        return ApiToken(name, now.replace(tzinfo=UTC), None), secret

    async def list_tokens(self) -> list[ApiToken]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    t.api_tokens.c.name, t.api_tokens.c.created_at, t.api_tokens.c.last_used_at
                ).order_by(t.api_tokens.c.name)
            )
            return [_token(row) for row in rows]

    async def revoke(self, name: str) -> None:
        async with self.db.write() as conn:
            result = await conn.execute(delete(t.api_tokens).where(t.api_tokens.c.name == name))
            if result.rowcount == 0:
                raise NotFound(f"no token named {name}")

    async def verify(self, secret: str) -> ApiToken | None:
        """The token ``secret`` belongs to, or None; notes when it was last used."""
        if not _TOKEN.fullmatch(secret):
            return None
        presented = token_hash(secret)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(t.api_tokens).where(t.api_tokens.c.token_hash == presented)
                )
            ).one_or_none()
        if row is None or not hmac.compare_digest(row.token_hash, presented):
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at >= _TOUCH_INTERVAL:
            async with self.db.write() as conn:
                await conn.execute(
                    update(t.api_tokens).where(t.api_tokens.c.id == row.id).values(last_used_at=now)
                )
            return ApiToken(row.name, row.created_at.replace(tzinfo=UTC), now.replace(tzinfo=UTC))
        return _token(row)
