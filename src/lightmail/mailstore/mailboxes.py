"""Mailboxes and subscriptions: LIST, CREATE, DELETE, RENAME, SUBSCRIBE, STATUS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import bindparam, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail import clock
from lightmail.errors import (
    AlreadyExists,
    InvalidMailboxName,
    MailboxExists,
    MailboxNotAllowed,
    MailboxNotFound,
)
from lightmail.mailstore import names
from lightmail.mailstore.core import MAILBOX_BY_NAME, StoreCore
from lightmail.mailstore.rows import (
    FORGET_EXPUNGES,
    MAILBOX_COLUMNS,
    live,
    mailbox_from_row,
)
from lightmail.mailstore.types import (
    Mailbox,
    MailboxStatus,
)
from lightmail.notify.bus import ChangeEvent, ChangeKind
from lightmail.storage.db import tables as t
from lightmail.storage.db.prepared import PreparedRead, Rows

UserStep: TypeAlias = Callable[[AsyncConnection, int], Awaitable[None]]
"""More of a user made or removed with them: called with the transaction and the user's id."""

# What every IMAP command in the selected state runs first, built once.
_MAILBOX_BY_ID = PreparedRead(
    select(*MAILBOX_COLUMNS).where(
        t.mailboxes.c.id == bindparam("id"), t.mailboxes.c.user_id == bindparam("user_id")
    )
)


# What STATUS counts of a mailbox's live messages: MESSAGES, SIZE (RFC 8438: the sum of
# their RFC822.SIZE), UNSEEN, and DELETED and DELETED-STORAGE (RFC 9208).
_DELETED = t.messages.c.flags.op("&")(t.FLAG_DELETED) != 0
_COUNTS = (
    func.count(),
    func.coalesce(func.sum(t.messages.c.size), 0),
    func.coalesce(func.sum(case((t.messages.c.flags.op("&")(t.FLAG_SEEN) == 0, 1), else_=0)), 0),
    func.coalesce(func.sum(case((_DELETED, 1), else_=0)), 0),
    func.coalesce(func.sum(case((_DELETED, t.messages.c.size), else_=0)), 0),
)


# STATUS of one mailbox: its row, then the counts of its live messages.
_STATUS_COUNTS = PreparedRead(
    select(*_COUNTS).where(
        t.messages.c.mailbox_id == bindparam("mailbox_id"), t.messages.c.deleted_at.is_(None)
    )
)


def _status(mailbox: Mailbox, counts: Sequence[Any]) -> MailboxStatus:
    messages, size, unseen, deleted, deleted_size = (int(count) for count in counts)
    return MailboxStatus(mailbox, messages, unseen, size, deleted, deleted_size)


class Mailboxes(StoreCore):
    async def create_user(
        self,
        domain_id: int,
        address: str,
        password_hash: str,
        quota: int | None,
        *,
        also: UserStep,
    ) -> tuple[int, datetime]:
        """Add a user with INBOX and the special-use mailboxes, subscribed, in one
        transaction; return the new id and its creation time (naive UTC). ``also``
        adds the rest of a new user in that transaction (the default calendar).

        The caller (:class:`~lightmail.accounts.service.Accounts`) has checked the
        address and found the domain; AlreadyExists if the address is taken.
        """

        async def write(conn: AsyncConnection) -> tuple[int, datetime]:
            taken = await conn.execute(select(t.users.c.id).where(t.users.c.address == address))
            if taken.first() is not None:
                raise AlreadyExists(f"user {address} already exists")
            now = clock.utcnow()
            result = await conn.execute(
                insert(t.users).values(
                    domain_id=domain_id,
                    address=address,
                    password_hash=password_hash,
                    quota_bytes=quota,
                    enabled=True,
                    next_uidvalidity=1,
                    created_at=now,
                )
            )
            (user_id,) = result.inserted_primary_key or (None,)
            if user_id is None:
                raise RuntimeError("the database returned no id for the new user")
            for name, special_use in names.DEFAULT_MAILBOXES:
                await self._insert_mailbox(conn, user_id, name, special_use)
                await self._subscribe(conn, user_id, name)
            await also(conn, user_id)
            return int(user_id), now

        return await self.db.transact(write)

    async def delete_user(self, address: str, *, also: UserStep) -> int | None:
        """Delete a user, their aliases, mailboxes and subscriptions in one transaction;
        their mail is soft-deleted (the GC purges it). ``also`` removes the rest of the
        user in that transaction (their calendars). Return the user's id, or None if
        there is no such user.

        The user's sessions hear of it as of a DELETE of every mailbox.
        """

        async def write(conn: AsyncConnection) -> tuple[int, Sequence[int]] | None:
            user_id = (
                await conn.execute(select(t.users.c.id).where(t.users.c.address == address))
            ).scalar_one_or_none()
            if user_id is None:
                return None
            mailbox_ids = (
                (
                    await conn.execute(
                        select(t.mailboxes.c.id)
                        .where(t.mailboxes.c.user_id == user_id)
                        .order_by(t.mailboxes.c.id)
                    )
                )
                .scalars()
                .all()
            )
            await conn.execute(
                update(t.messages)
                .where(t.messages.c.user_id == user_id, t.messages.c.deleted_at.is_(None))
                .values(deleted_at=clock.utcnow())
            )
            await conn.execute(delete(t.subscriptions).where(t.subscriptions.c.user_id == user_id))
            await conn.execute(delete(t.mailboxes).where(t.mailboxes.c.user_id == user_id))
            await conn.execute(delete(t.aliases).where(t.aliases.c.user_id == user_id))
            await also(conn, user_id)
            await conn.execute(delete(t.users).where(t.users.c.id == user_id))
            return int(user_id), mailbox_ids

        deleted = await self.db.transact(write)
        if deleted is None:
            return None
        user_id, mailbox_ids = deleted
        for mailbox_id in mailbox_ids:
            await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, mailbox_id))
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MAILBOXES_CHANGED))
        return int(user_id)

    async def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*MAILBOX_COLUMNS)
                .where(t.mailboxes.c.user_id == user_id)
                .order_by(t.mailboxes.c.name)
            )
            return [mailbox_from_row(row) for row in rows]

    async def get_mailbox(self, user_id: int, name: str) -> Mailbox:
        name = names.normalize(name)
        rows = await self.db.fetch(MAILBOX_BY_NAME, self._by_name(user_id, name))
        return self._found(rows, name)

    async def mailbox_by_id(self, user_id: int, mailbox_id: int) -> Mailbox:
        """The mailbox as it is now; MailboxNotFound once it was deleted."""
        rows = await self.db.fetch(_MAILBOX_BY_ID, {"id": mailbox_id, "user_id": user_id})
        if not rows:
            raise MailboxNotFound(str(mailbox_id))
        return mailbox_from_row(rows[0])

    async def mailbox_status(self, user_id: int, name: str) -> MailboxStatus:
        name = names.normalize(name)

        def read(rows: Rows) -> MailboxStatus:
            mailbox = self._found(rows(MAILBOX_BY_NAME, self._by_name(user_id, name)), name)
            return _status(mailbox, rows(_STATUS_COUNTS, {"mailbox_id": mailbox.id})[0])

        return await self.db.query(read)

    async def mailbox_statuses(
        self, user_id: int, mailbox_ids: Collection[int]
    ) -> dict[int, MailboxStatus]:
        """The STATUS of several mailboxes in one read (LIST-STATUS, RFC 5819), by id;
        a mailbox deleted since its id was read is left out."""
        if not mailbox_ids:
            return {}
        ids = sorted(mailbox_ids)
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*MAILBOX_COLUMNS).where(
                    t.mailboxes.c.user_id == user_id, t.mailboxes.c.id.in_(ids)
                )
            )
            found = {row.id: mailbox_from_row(row) for row in rows}
            counts = await conn.execute(
                select(t.messages.c.mailbox_id, *_COUNTS)
                .where(t.messages.c.mailbox_id.in_(ids), t.messages.c.deleted_at.is_(None))
                .group_by(t.messages.c.mailbox_id)
            )
            by_id = {row[0]: row[1:] for row in counts}
        zero = (0,) * len(_COUNTS)
        return {id_: _status(mailbox, by_id.get(id_, zero)) for id_, mailbox in found.items()}

    async def create_mailbox(
        self, user_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        """CREATE (RFC 3501 section 6.3.3): superior names are created as needed.
        ``special_use`` (RFC 6154), e.g. ``\\Sent``: SpecialUseNotSupported unless it
        is one of :data:`names.SPECIAL_USES`."""
        name = names.normalize(name)
        if special_use is not None:
            special_use = names.special_use(special_use)
        if name == names.INBOX:
            raise MailboxExists(name)

        async def write(conn: AsyncConnection) -> Mailbox:
            if await self._mailbox_row(conn, user_id, name) is not None:
                raise MailboxExists(name)
            for parent in names.parents(name):
                if await self._mailbox_row(conn, user_id, parent) is None:
                    await self._insert_mailbox(conn, user_id, parent, None)
            return await self._insert_mailbox(conn, user_id, name, special_use)

        mailbox = await self.db.transact(write)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MAILBOXES_CHANGED))
        return mailbox

    async def delete_mailbox(self, user_id: int, name: str) -> None:
        """DELETE (RFC 3501 section 6.3.4).

        The mailbox's messages are soft-deleted (the GC purges them). Its
        inferior mailboxes stay; the name then lives on only as their parent,
        which LIST shows as ``\\Noselect``.
        """
        name = names.normalize(name)
        if name == names.INBOX:
            raise MailboxNotAllowed("INBOX cannot be deleted")

        async def write(conn: AsyncConnection) -> Mailbox:
            mailbox = await self._find_mailbox(conn, user_id, name)
            await conn.execute(
                update(t.messages).where(live(mailbox.id)).values(deleted_at=clock.utcnow())
            )
            await conn.execute(delete(t.mailboxes).where(t.mailboxes.c.id == mailbox.id))
            return mailbox

        mailbox = await self.db.transact(write)
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, mailbox.id))
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MAILBOXES_CHANGED))

    async def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        """RENAME (RFC 3501 section 6.3.5), with inferiors and INBOX's special case.

        Renaming INBOX moves its messages into a new mailbox of the new name
        and leaves INBOX empty; UIDs are kept and never reused in INBOX.
        """
        old, new = names.normalize(old), names.normalize(new)
        if new == names.INBOX or new.startswith(old + names.DELIMITER):
            raise InvalidMailboxName(new, "a mailbox cannot be renamed to INBOX or below itself")

        async def write(conn: AsyncConnection) -> Mailbox:
            source = await self._find_mailbox(conn, user_id, old)
            if await self._mailbox_row(conn, user_id, new) is not None:
                raise MailboxExists(new)
            for parent in names.parents(new):
                if await self._mailbox_row(conn, user_id, parent) is None:
                    await self._insert_mailbox(conn, user_id, parent, None)
            if old == names.INBOX:
                # INBOX's sessions must look again, and its messages' UIDs leave it
                # without a row each to say so. Its row is locked first, so that
                # no delivery adds to it before its live totals move with the
                # messages.
                moved = await self._bump_modseq(conn, source.id)
                totals = (
                    await conn.execute(
                        select(t.mailboxes.c.live_count, t.mailboxes.c.live_size)
                        .where(t.mailboxes.c.id == source.id)
                        .with_for_update()
                    )
                ).one()
                target = await self._insert_mailbox(conn, user_id, new, None)
                await conn.execute(
                    update(t.mailboxes)
                    .where(t.mailboxes.c.id == target.id)
                    .values(
                        uidnext=source.uidnext,
                        highestmodseq=source.highestmodseq,
                        keywords=" ".join(source.keywords),
                        live_count=totals.live_count,
                        live_size=totals.live_size,
                    )
                )
                await conn.execute(
                    update(t.messages).where(live(source.id)).values(mailbox_id=target.id)
                )
                await conn.execute(
                    update(t.mailboxes)
                    .where(t.mailboxes.c.id == source.id)
                    .values(live_count=0, live_size=0)
                )
                await conn.execute(FORGET_EXPUNGES, {"mailbox_id": source.id, "modseq": moved})
            else:
                renames = [(source.id, new)]
                rows = await conn.execute(
                    select(t.mailboxes.c.id, t.mailboxes.c.name).where(
                        t.mailboxes.c.user_id == user_id,
                        t.mailboxes.c.name.startswith(old + names.DELIMITER, autoescape=True),
                    )
                )
                renames += [(row.id, new + row.name[len(old) :]) for row in rows]
                for mailbox_id, name in renames:
                    await conn.execute(
                        update(t.mailboxes)
                        .where(t.mailboxes.c.id == mailbox_id)
                        .values(name=name, name_hash=names.name_hash(name))
                    )
            return source

        source = await self.db.transact(write)
        if old == names.INBOX:
            await self.bus.publish(ChangeEvent(user_id, ChangeKind.MESSAGES_EXPUNGED, source.id))
        await self.bus.publish(ChangeEvent(user_id, ChangeKind.MAILBOXES_CHANGED))

    async def subscribe(self, user_id: int, name: str) -> None:
        """SUBSCRIBE (RFC 3501 section 6.3.6); the mailbox need not exist."""
        name = names.normalize(name)

        async def write(conn: AsyncConnection) -> None:
            await self._subscribe(conn, user_id, name)

        await self.db.transact(write)

    async def unsubscribe(self, user_id: int, name: str) -> None:
        name = names.normalize(name)

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                delete(t.subscriptions).where(
                    t.subscriptions.c.user_id == user_id,
                    t.subscriptions.c.name_hash == names.name_hash(name),
                )
            )

        await self.db.transact(write)

    async def subscriptions(self, user_id: int) -> list[str]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(t.subscriptions.c.name)
                .where(t.subscriptions.c.user_id == user_id)
                .order_by(t.subscriptions.c.name)
            )
            return [row.name for row in rows]
