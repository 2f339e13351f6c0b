"""Domains, users and aliases, authentication and recipient resolution.

Addresses are kept in lower case. A user's mailboxes and default calendar are
created with the user (through the mailstore and the calendar store, in the
same transaction), and a deleted user's mail and calendar objects are
soft-deleted, so the garbage collector frees them after retention.

:meth:`Accounts.authenticate` is the one door for every login (IMAP, POP3,
...): it throttles clients and accounts that fail too often
(:mod:`lightmail.auth.throttle`), answers every failure after the same
``[auth] failure_delay`` so that timing tells nothing, and lets a password
verified recently in without hashing (:mod:`lightmail.auth.credentials`).
Logins that bring the same password for the same account at the same time (a
client opening several connections at once) share one hash.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail.auth.credentials import CredentialCache
from lightmail.auth.passwords import hash_password, verify_password
from lightmail.auth.throttle import (
    InProcessLoginThrottle,
    IPAddress,
    LoginThrottle,
    account_key,
    client_key,
)
from lightmail.calendars.kinds import ADDRESS_BOOK
from lightmail.calendars.store import CalendarStore
from lightmail.clock import utcnow
from lightmail.config import AUTH_DEFAULTS, AuthSettings
from lightmail.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidValue,
    NotFound,
    RecipientDisabled,
    UnknownRecipient,
)
from lightmail.mailstore.store import MailStore, Recipient
from lightmail.metrics import LOGINS_THROTTLED
from lightmail.storage.db import tables as t
from lightmail.storage.db.prepared import PreparedRead, Rows

log = logging.getLogger(__name__)

# RFC 5321 section 4.1.2 dot-atom local parts (no quoted strings) and RFC 1035
# host names; generous enough for real addresses, strict enough for a typo.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
DETAIL_SEPARATOR = "+"
# RFC 5321 section 4.1.2: Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE.
_QUOTED_LOCAL = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*)"')
_QUOTED_PAIR = re.compile(r"\\([\x20-\x7e])")


def normalize_domain(name: str) -> str:
    domain = name.strip().lower().rstrip(".")
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(x) for x in labels):
        raise InvalidValue(f"{name!r} is not a valid domain name (for example example.org)")
    return domain


def _minimal_quoting(address: str) -> str:
    """An envelope address with its local part in the least quoting it needs.

    RFC 5321 section 4.1.2: all quoted forms of a local part are equivalent.
    ``"bob"@x`` and ``"b\\ob"@x`` become ``bob@x``; a local part that needs the
    quotes keeps them, with only ``\\`` and ``"`` escaped (``"bob smith"@x``).
    Anything else is returned unchanged.
    """
    local, at, domain = address.rpartition("@")
    quoted = _QUOTED_LOCAL.fullmatch(local) if at else None
    if quoted is None:
        return address
    text = _QUOTED_PAIR.sub(r"\1", quoted.group(1))
    if _LOCAL.fullmatch(text):
        return f"{text}@{domain}"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + f'"@{domain}'


def normalize_address(address: str) -> str:
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or len(local) > 64 or not _LOCAL.fullmatch(local):
        raise InvalidValue(f"{address!r} is not a valid address (for example alice@example.org)")
    return f"{local.lower()}@{normalize_domain(domain)}"


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    users: int


@dataclass(frozen=True, slots=True)
class User:
    id: int
    address: str
    quota: int | None  # bytes; None = unlimited
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Alias:
    address: str  # "@domain" is the domain's catch-all
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResolvedRecipient:
    """Where mail for one envelope address goes: one or more local users, and
    which of them have a quota (an RCPT need check only those)."""

    address: str
    recipients: tuple[Recipient, ...]
    with_quota: frozenset[int] = frozenset()  # user ids


def _user(row: t.AnyRow | _LoginRow) -> User:
    return User(
        id=row.id,
        address=row.address,
        quota=row.quota_bytes,
        enabled=bool(row.enabled),
        created_at=row.created_at.replace(tzinfo=UTC),
    )


_USER_COLUMNS = t.columns(t.users, "id", "address", "quota_bytes", "enabled", "created_at")


class _LoginRow(NamedTuple):
    id: int
    address: str
    quota_bytes: int | None
    enabled: bool
    created_at: datetime
    password_hash: str


# What every LOGIN and every LMTP RCPT run, built once (building costs more than
# running them).
_LOGIN_ROW = PreparedRead(
    select(*_USER_COLUMNS, t.users.c.password_hash).where(t.users.c.address == bindparam("address"))
)
_RECIPIENT_COLUMNS = (t.users.c.id, t.users.c.address, t.users.c.enabled, t.users.c.quota_bytes)
_USER_BY_ADDRESS = PreparedRead(
    select(*_RECIPIENT_COLUMNS).where(t.users.c.address == bindparam("address"))
)
_ALIAS_TARGETS = PreparedRead(
    select(*_RECIPIENT_COLUMNS)
    .select_from(t.aliases.join(t.users))
    .where(t.aliases.c.address == bindparam("address"))
    .order_by(t.users.c.address)
)


class Accounts:
    """``auth`` is the ``[auth]`` section; ``throttle`` the failure counts (in this
    process unless given); ``clock`` and ``sleep`` time the failure delay."""

    def __init__(
        self,
        store: MailStore,
        auth: AuthSettings = AUTH_DEFAULTS,
        *,
        throttle: LoginThrottle | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.db = store.db
        self.calendars = CalendarStore(store.db, store.blobs)
        self.contacts = CalendarStore(store.db, store.blobs, ADDRESS_BOOK)
        self.auth = auth
        self.throttle = throttle if throttle is not None else InProcessLoginThrottle(auth, clock)
        self.credentials = CredentialCache(auth.cache_ttl, clock)
        # Password checks running, by (address, keyed hash of the password, stored hash).
        self._verifying: dict[tuple[str, bytes, str], asyncio.Task[str | None]] = {}
        self._clock = clock
        self._sleep = sleep

    # -- domains ---------------------------------------------------------

    async def add_domain(self, name: str) -> str:
        domain = normalize_domain(name)
        async with self.db.write() as conn:
            if await self._domain_id(conn, domain) is not None:
                raise AlreadyExists(f"domain {domain} already exists")
            await conn.execute(insert(t.domains).values(name=domain, created_at=utcnow()))
        return domain

    async def list_domains(self) -> list[Domain]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(t.domains.c.name, func.count(t.users.c.id))
                .select_from(t.domains.outerjoin(t.users))
                .group_by(t.domains.c.name)
                .order_by(t.domains.c.name)
            )
            return [Domain(row[0], row[1]) for row in rows]

    async def delete_domain(self, name: str) -> None:
        """Delete an empty domain; one with users must have them deleted first."""
        domain = normalize_domain(name)
        async with self.db.write() as conn:
            domain_id = await self._require_domain(conn, domain)
            users = (
                await conn.execute(select(func.count()).where(t.users.c.domain_id == domain_id))
            ).scalar_one()
            if users:
                raise AlreadyExists(f"domain {domain} still has {users} user(s); delete them first")
            await conn.execute(delete(t.aliases).where(t.aliases.c.address.endswith("@" + domain)))
            await conn.execute(delete(t.domains).where(t.domains.c.id == domain_id))

    # -- users -----------------------------------------------------------

    async def add_user(self, address: str, password: str, quota: int | None = None) -> User:
        address = normalize_address(address)
        if not password:
            raise InvalidValue("the password is empty")
        password_hash = await hash_password(password)
        async with self.db.read() as conn:
            domain_id = await self._require_domain(conn, address.partition("@")[2])
        # The domain cannot go meanwhile: users.domain_id is a foreign key.
        user_id, now = await self.store.create_user(
            domain_id, address, password_hash, quota, also=self._add_collections
        )
        return User(user_id, address, quota, True, now.replace(tzinfo=UTC))

    async def _add_collections(self, conn: AsyncConnection, user_id: int) -> None:
        """A new user's default calendar and default address book."""
        await self.calendars.add_default(conn, user_id)
        await self.contacts.add_default(conn, user_id)

    async def get_user(self, address: str) -> User:
        address = normalize_address(address)
        async with self.db.read() as conn:
            row = await self._user_row(conn, address)
        if row is None:
            raise NotFound(f"no user {address}")
        return _user(row)

    async def list_users(self, domain: str | None = None) -> list[User]:
        query = select(*_USER_COLUMNS).order_by(t.users.c.address)
        async with self.db.read() as conn:
            if domain is not None:
                domain_id = await self._require_domain(conn, normalize_domain(domain))
                query = query.where(t.users.c.domain_id == domain_id)
            return [_user(row) for row in await conn.execute(query)]

    async def set_password(self, address: str, password: str) -> None:
        if not password:
            raise InvalidValue("the password is empty")
        await self._update_user(address, password_hash=await hash_password(password))
        self.credentials.forget(normalize_address(address))

    async def set_quota(self, address: str, quota: int | None) -> None:
        await self._update_user(address, quota_bytes=quota)

    async def set_enabled(self, address: str, enabled: bool) -> None:
        await self._update_user(address, enabled=enabled)
        self.credentials.forget(normalize_address(address))

    async def delete_user(self, address: str) -> None:
        """Delete a user, their aliases, mailboxes and calendars; their mail and calendar
        objects are soft-deleted."""
        address = normalize_address(address)
        if await self.store.delete_user(address, also=self.calendars.remove_all) is None:
            raise NotFound(f"no user {address}")
        self.credentials.forget(address)

    async def authenticate(
        self, address: str, password: str, client: IPAddress | None = None
    ) -> User:
        """Check a login from ``client`` (None: a unix socket); raise AuthenticationFailed
        without saying what was wrong, ``[auth] failure_delay`` after the call began.

        A throttled attempt (see :mod:`lightmail.auth.throttle`) fails without its
        password being checked, even when it is right. A bcrypt hash (or an outdated
        argon2 one) is replaced on success.
        """
        started = self._clock()
        try:
            return await self._authenticate(address, password, client)
        except AuthenticationFailed:
            # Asleep, this holds nothing: no connection, no hashing thread.
            await self._sleep(max(0.0, started + self.auth.failure_delay - self._clock()))
            raise

    async def _authenticate(self, address: str, password: str, client: IPAddress | None) -> User:
        by_client = client_key(client)
        if await self._throttled(by_client, "client", address, client):
            raise AuthenticationFailed()
        try:
            address = normalize_address(address)
        except InvalidValue:
            await self.throttle.failed(by_client)
            raise AuthenticationFailed() from None
        digest = self.credentials.digest(address, password)
        remembered = self.credentials.lookup(address, digest)
        if remembered is not None:
            row = await self._login_row(address)
            if row is not None and row.enabled and row.password_hash == remembered:
                return _user(row)  # verified recently: no hashing, no account throttle
            self.credentials.forget(address)
        by_account = account_key(address)
        if await self._throttled(by_account, "account", address, client):
            raise AuthenticationFailed()
        async with self.throttle.checking(by_client), self.throttle.checking(by_account):
            # Failures may have come in while this attempt waited for its turn.
            if await self._throttled(by_client, "client", address, client) or (
                await self._throttled(by_account, "account", address, client)
            ):
                raise AuthenticationFailed()
            row = await self._login_row(address)
            if row is None or not row.enabled:
                await self.throttle.failed(by_client)
                raise AuthenticationFailed()
            if self.credentials.lookup(address, digest) == row.password_hash:
                return _user(row)  # another login verified it while this one waited
            password_hash = await self._verify(row.id, address, digest, row.password_hash, password)
            if password_hash is None:
                await self.throttle.failed(by_client)
                await self.throttle.failed(by_account)
                raise AuthenticationFailed()
        self.credentials.remember(address, digest, password_hash)
        return _user(row)

    async def _verify(
        self, user_id: int, address: str, digest: bytes, stored_hash: str, password: str
    ) -> str | None:
        """The hash stored for ``password`` once it is checked against ``stored_hash``
        (replaced if outdated), None if it is wrong. A login that brings the same
        password (``digest``) for the same stored hash while one is being checked
        waits for that check's answer instead of hashing (and rehashing) again.
        Each login still counts its own failure."""
        key = (address, digest, stored_hash)
        check = self._verifying.get(key)
        if check is None:
            check = asyncio.ensure_future(self._check(user_id, stored_hash, password))
            self._verifying[key] = check
            check.add_done_callback(functools.partial(self._verified, key))
        # A login that gives up (its client left) leaves the check to the others.
        return await asyncio.shield(check)

    async def _check(self, user_id: int, stored_hash: str, password: str) -> str | None:
        verification = await verify_password(stored_hash, password)
        if not verification.ok:
            return None
        if verification.new_hash is None:
            return stored_hash
        async with self.db.write() as conn:
            result = await conn.execute(
                update(t.users)
                .where(t.users.c.id == user_id, t.users.c.password_hash == stored_hash)
                .values(password_hash=verification.new_hash)
            )
        # No row: the hash changed meanwhile; the next login sees it and checks again.
        return verification.new_hash if result.rowcount else stored_hash

    def _verified(self, key: tuple[str, bytes, str], check: asyncio.Task[str | None]) -> None:
        del self._verifying[key]
        if not check.cancelled():
            check.exception()  # raised to each login waiting; seen even if none is left

    async def _throttled(
        self, key: str, scope: str, address: str, client: IPAddress | None
    ) -> bool:
        """Whether ``key`` must wait; if so, log and count this attempt (once)."""
        wait = await self.throttle.retry_after(key)
        if not wait:
            return False
        LOGINS_THROTTLED.labels(scope).inc()
        log.warning(
            "login throttled for %r from %s: %d recent failures of this %s, next check in %.1fs",
            address,
            client or "a unix socket",
            await self.throttle.failures(key),
            scope,
            wait,
        )
        return True

    async def _login_row(self, address: str) -> _LoginRow | None:
        found = await self.db.query(lambda rows: rows(_LOGIN_ROW, {"address": address}))
        return _LoginRow(*found[0]) if found else None

    # -- aliases ---------------------------------------------------------

    async def add_alias(self, address: str, targets: Sequence[str]) -> Alias:
        """Point ``address`` (or ``@domain``, the catch-all) at one or more users."""
        address = _alias_address(address)
        if not targets:
            raise InvalidValue("an alias needs at least one target user")
        async with self.db.write() as conn:
            await self._require_domain(conn, address.partition("@")[2])
            if not address.startswith("@") and await self._user_row(conn, address) is not None:
                raise AlreadyExists(f"{address} is a user; an alias cannot shadow it")
            existing = set(await self._alias_targets(conn, address))
            for target in dict.fromkeys(normalize_address(x) for x in targets):
                row = await self._user_row(conn, target)
                if row is None:
                    raise NotFound(f"alias target {target} is not a user here")
                if target not in existing:
                    await conn.execute(
                        insert(t.aliases).values(
                            address=address, user_id=row.id, created_at=utcnow()
                        )
                    )
            return Alias(address, tuple(await self._alias_targets(conn, address)))

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        query = (
            select(t.aliases.c.address, t.users.c.address.label("target"))
            .select_from(t.aliases.join(t.users))
            .order_by(t.aliases.c.address, t.users.c.address)
        )
        if domain is not None:
            query = query.where(t.aliases.c.address.endswith("@" + normalize_domain(domain)))
        grouped: dict[str, list[str]] = {}
        async with self.db.read() as conn:
            for row in await conn.execute(query):
                grouped.setdefault(row.address, []).append(row.target)
        return [Alias(address, tuple(targets)) for address, targets in grouped.items()]

    async def delete_alias(self, address: str, targets: Sequence[str] = ()) -> None:
        """Delete the alias, or only the given targets of it."""
        address = _alias_address(address)
        async with self.db.write() as conn:
            query = delete(t.aliases).where(t.aliases.c.address == address)
            if targets:
                ids = select(t.users.c.id).where(
                    t.users.c.address.in_([normalize_address(x) for x in targets])
                )
                query = query.where(t.aliases.c.user_id.in_(ids))
            if (await conn.execute(query)).rowcount == 0:
                raise NotFound(f"no alias {address}" + (" with those targets" if targets else ""))

    # -- recipients ------------------------------------------------------

    async def resolve_recipient(self, address: str) -> ResolvedRecipient:
        """Resolve an envelope recipient to local users (deduplicated).

        Tried in order: the user, an alias, the same two without a ``+detail``
        (the detail is kept as the target mailbox name), the domain's
        catch-all. A quoted local part is taken in its least quoting first
        (``"bob"@x`` is ``bob@x``); one that needs the quotes is looked up as
        written, which no user or alias can be, so only a catch-all takes it.
        Raises UnknownRecipient, or RecipientDisabled when every user it
        reaches is disabled.
        """
        address = _minimal_quoting(address)
        candidates: list[tuple[str, str | None]] = []
        if address.startswith('"'):
            local, _, domain = address.rpartition("@")
            try:
                domain = normalize_domain(domain)
            except InvalidValue:
                raise UnknownRecipient(address) from None
            address = f"{local}@{domain}"
            candidates.append((address, None))
        else:
            try:
                address = normalize_address(address)
            except InvalidValue:
                raise UnknownRecipient(address) from None
            local, _, domain = address.partition("@")
            base, separator, detail = local.partition(DETAIL_SEPARATOR)
            candidates.append((address, None))
            if separator and base:
                candidates.append((f"{base}@{domain}", detail or None))
        candidates.append((f"@{domain}", None))
        found = await self.db.query(lambda rows: _first_found(rows, candidates))
        if found is None:
            raise UnknownRecipient(address)
        targets, mailbox = found
        enabled = {user_id: user for user_id, user, on, _ in targets if on}
        if not enabled:
            raise RecipientDisabled(address)
        return ResolvedRecipient(
            address,
            tuple(Recipient(user_id, user, mailbox) for user_id, user in enabled.items()),
            frozenset(user_id for user_id, _, on, quota in targets if on and quota is not None),
        )

    # -- internals -------------------------------------------------------

    async def _alias_targets(self, conn: AsyncConnection, address: str) -> list[str]:
        rows = await conn.execute(
            select(t.users.c.address)
            .select_from(t.aliases.join(t.users))
            .where(t.aliases.c.address == address)
            .order_by(t.users.c.address)
        )
        return [row.address for row in rows]

    async def _update_user(self, address: str, **values: Any) -> None:
        address = normalize_address(address)
        async with self.db.write() as conn:
            result = await conn.execute(
                update(t.users).where(t.users.c.address == address).values(**values)
            )
            if result.rowcount == 0:
                raise NotFound(f"no user {address}")

    async def _user_row(self, conn: AsyncConnection, address: str) -> t.AnyRow | None:
        result = await conn.execute(select(*_USER_COLUMNS).where(t.users.c.address == address))
        return result.one_or_none()

    async def _domain_id(self, conn: AsyncConnection, domain: str) -> int | None:
        result = await conn.execute(select(t.domains.c.id).where(t.domains.c.name == domain))
        return result.scalar_one_or_none()

    async def _require_domain(self, conn: AsyncConnection, domain: str) -> int:
        domain_id = await self._domain_id(conn, domain)
        if domain_id is None:
            raise NotFound(f"domain {domain} does not exist; add it with `lightmail domain add`")
        return domain_id


def _alias_address(address: str) -> str:
    if address.strip().startswith("@"):
        return "@" + normalize_domain(address.strip()[1:])
    return normalize_address(address)


def _first_found(
    rows: Rows, candidates: Sequence[tuple[str, str | None]]
) -> tuple[list[tuple[Any, ...]], str | None] | None:
    """The rows (id, address, enabled, quota) of the first candidate address that is a user
    or an alias, with that candidate's target mailbox; None if none is either."""
    for candidate, mailbox in candidates:
        if not candidate.startswith("@"):
            user = rows(_USER_BY_ADDRESS, {"address": candidate})
            if user:
                return user, mailbox
        targets = rows(_ALIAS_TARGETS, {"address": candidate})
        if targets:
            return targets, mailbox
    return None
