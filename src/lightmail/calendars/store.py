"""The collection store: the only code that changes calendars, address books and
their objects. One instance serves one :class:`~lightmail.calendars.kinds.CollectionKind`
(``accounts.calendars`` and ``accounts.contacts``); both kinds share the tables
and everything below, only parsing and blob prefix differ (``vcf/<uuid7>.vcf``
for address objects).

It writes as the mailstore does (:mod:`lightmail.storage.commit`): an
object's ``.ics`` bytes go to a new blob (``ics/<uuid7>.ics``) first, then
one transaction makes it visible; if that fails the blob is deleted again or
left to the orphan sweep. Each change to a calendar's objects raises the
calendar's ``sync_token`` by one, taking the calendar row's lock, so writers
to one calendar are serialised and every change has its own token. Every
write runs in :meth:`Database.transact`, so one that a Galera cluster rolls
back (two nodes changed the same calendar row at once) runs again. A
replaced or deleted object's row is soft-deleted with the new token: the
tombstone sync-collection reports (RFC 6578) until the garbage collector
purges it after retention, together with its blob. Errors are those of
:mod:`lightmail.errors`; nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail import clock
from lightmail.calendars.checks import check_conditions, check_name, parse_all
from lightmail.calendars.ics import ParsedObject
from lightmail.calendars.kinds import CALENDAR, CollectionKind
from lightmail.calendars.rows import (
    CALENDAR_COLUMNS,
    OBJECT_COLUMNS,
    CalendarInfo,
    CalendarObject,
    Changes,
    PutOutcome,
    calendar_from_row,
    live,
    object_from_row,
)
from lightmail.errors import AlreadyExists, InvalidCalendarData, InvalidValue, NotFound
from lightmail.storage.blobs import BlobStore, PutResult, new_blob_key
from lightmail.storage.commit import BlobCommit
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database

DEFAULT_CALENDAR = "default"
"""The path segment of the calendar (and of the address book) every user gets on
creation."""


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class CalendarStore(BlobCommit):
    """Every operation on the collections of one kind; see the module documentation."""

    def __init__(self, db: Database, blobs: BlobStore, kind: CollectionKind = CALENDAR) -> None:
        self.db = db
        self.blobs = blobs
        self.kind = kind

    # -- calendars ---------------------------------------------------------------

    async def add_default(self, conn: AsyncConnection, user_id: int) -> None:
        """Give a new user the default collection, in the transaction creating the user."""
        kind = self.kind
        await self._insert_calendar(
            conn,
            user_id,
            DEFAULT_CALENDAR,
            kind.default_display_name,
            "",
            "",
            kind.default_components,
        )

    async def remove_all(self, conn: AsyncConnection, user_id: int) -> None:
        """Delete a deleted user's collections of every kind, in the transaction deleting
        the user; the objects are soft-deleted, for the garbage collector."""
        await conn.execute(
            update(t.calendar_objects)
            .where(
                t.calendar_objects.c.user_id == user_id, t.calendar_objects.c.deleted_at.is_(None)
            )
            .values(deleted_at=clock.utcnow())
        )
        await conn.execute(delete(t.calendars).where(t.calendars.c.user_id == user_id))

    async def list_calendars(self, user_id: int) -> list[CalendarInfo]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*CALENDAR_COLUMNS)
                .where(t.calendars.c.user_id == user_id, t.calendars.c.kind == self.kind.name)
                .order_by(t.calendars.c.name)
            )
            return [calendar_from_row(row) for row in rows]

    async def get_calendar(self, user_id: int, name: str) -> CalendarInfo:
        async with self.db.read() as conn:
            return await self._calendar(conn, user_id, name)

    async def create_calendar(
        self,
        user_id: int,
        name: str,
        *,
        display_name: str = "",
        color: str = "",
        description: str = "",
        components: Sequence[str] | None = None,
    ) -> CalendarInfo:
        """A new, empty collection; AlreadyExists if the user has one by that name."""
        name = check_name(name, self.kind.label)
        wanted = self.kind.check_components(
            self.kind.default_components if components is None else components
        )

        async def write(conn: AsyncConnection) -> CalendarInfo:
            found = await conn.execute(
                select(t.calendars.c.id).where(
                    t.calendars.c.user_id == user_id,
                    t.calendars.c.kind == self.kind.name,
                    t.calendars.c.name == name,
                )
            )
            if found.first() is not None:
                raise AlreadyExists(f"{self.kind.label} {name} already exists")
            await self._insert_calendar(
                conn, user_id, name, display_name or name, color, description, wanted
            )
            return await self._calendar(conn, user_id, name)

        return await self.db.transact(write)

    async def update_calendar(
        self,
        user_id: int,
        name: str,
        *,
        display_name: str | None = None,
        color: str | None = None,
        description: str | None = None,
    ) -> CalendarInfo:
        """Change the given properties (PROPPATCH); None leaves one as it is."""
        values = {
            key: value
            for key, value in (
                ("display_name", display_name),
                ("color", color),
                ("description", description),
            )
            if value is not None
        }
        for key, limit in (("display_name", 255), ("color", 32), ("description", 10_000)):
            if len(values.get(key, "")) > limit:
                raise InvalidValue(f"{key} is longer than {limit} characters")

        async def write(conn: AsyncConnection) -> CalendarInfo:
            calendar = await self._calendar(conn, user_id, name)
            if values:
                await conn.execute(
                    update(t.calendars).where(t.calendars.c.id == calendar.id).values(**values)
                )
            return await self._calendar(conn, user_id, name)

        return await self.db.transact(write)

    async def delete_calendar(self, user_id: int, name: str) -> None:
        """Delete a calendar; its objects are soft-deleted for the garbage collector."""

        async def write(conn: AsyncConnection) -> None:
            calendar = await self._calendar(conn, user_id, name)
            await conn.execute(
                update(t.calendar_objects)
                .where(live(calendar.id))
                .values(deleted_at=clock.utcnow())
            )
            await conn.execute(delete(t.calendars).where(t.calendars.c.id == calendar.id))

        await self.db.transact(write)

    # -- objects -------------------------------------------------------------------

    async def list_objects(self, calendar: CalendarInfo) -> list[CalendarObject]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*OBJECT_COLUMNS).where(live(calendar.id)).order_by(t.calendar_objects.c.name)
            )
            return [object_from_row(row) for row in rows]

    async def get_object(self, calendar: CalendarInfo, name: str) -> CalendarObject:
        found = await self.objects_named(calendar, [name])
        if not found:
            raise NotFound(f"no calendar object {name[:100]}")
        return found[0]

    async def object_with_uid(self, calendar: CalendarInfo, uid: str) -> CalendarObject | None:
        """The live object whose iCalendar UID is ``uid``, if there is one."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(*OBJECT_COLUMNS).where(
                        live(calendar.id), t.calendar_objects.c.uid == uid
                    )
                )
            ).first()
            return None if row is None else object_from_row(row)

    async def objects_named(
        self, calendar: CalendarInfo, names: Sequence[str]
    ) -> list[CalendarObject]:
        """The live objects of ``names`` that exist, in name order."""
        if not names:
            return []
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*OBJECT_COLUMNS)
                .where(live(calendar.id), t.calendar_objects.c.name.in_(sorted(set(names))))
                .order_by(t.calendar_objects.c.name)
            )
            return [object_from_row(row) for row in rows]

    async def objects_in_range(
        self, calendar: CalendarInfo, component: str, start: datetime | None, end: datetime | None
    ) -> list[CalendarObject]:
        """Live objects of ``component`` whose instances may meet [start, end) (naive
        UTC; None: open). Exact for objects that do not recur; a recurring one is a
        candidate the caller checks against its instances
        (:func:`lightmail.calendars.ics.series_overlaps`)."""
        o = t.calendar_objects.c
        query = select(*OBJECT_COLUMNS).where(live(calendar.id), o.component == component)
        if end is not None:
            query = query.where(or_(o.first_start.is_(None), o.first_start < end))
        if start is not None:
            query = query.where(
                or_(
                    o.last_end.is_(None),
                    o.last_end > start,
                    and_(o.last_end == start, o.first_start == start),
                )
            )
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(o.name))
            return [object_from_row(row) for row in rows]

    def read(self, obj: CalendarObject) -> AsyncIterator[bytes]:
        """The object's ``.ics`` bytes, as they were stored."""
        return self.blobs.get(obj.object_key)

    async def read_bytes(self, obj: CalendarObject) -> bytes:
        return b"".join([chunk async for chunk in self.read(obj)])

    async def changes(self, calendar: CalendarInfo, since: int) -> Changes:
        """Objects changed and names removed after token ``since``; InvalidValue if
        removals after it were purged already (the client must sync afresh)."""
        o = t.calendar_objects.c
        async with self.db.read() as conn:
            current = await self._calendar_by_id(conn, calendar)
            if since < current.purged_modseq or since > current.sync_token:
                raise InvalidValue(f"sync token {since} is no longer valid")
            changed = [
                object_from_row(row)
                for row in await conn.execute(
                    select(*OBJECT_COLUMNS)
                    .where(live(calendar.id), o.modseq > since)
                    .order_by(o.name)
                )
            ]
            live_names = {obj.name for obj in changed}
            gone = await conn.execute(
                select(o.name)
                .distinct()
                .where(o.calendar_id == calendar.id, o.deleted_at.is_not(None), o.modseq > since)
            )
            candidates = sorted(set(gone.scalars()) - live_names)
            removed: list[str] = []
            if candidates:
                still = await conn.execute(
                    select(o.name).where(live(calendar.id), o.name.in_(candidates))
                )
                removed = sorted(set(candidates) - set(still.scalars()))
        return Changes(changed, removed, current.sync_token)

    async def put_object(
        self,
        user_id: int,
        calendar_name: str,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> PutOutcome:
        """Store ``data`` as the object ``name``, new or replacing the one there.

        ``if_match`` (a quoted ETag or ``*``) and ``if_none_match`` (``*``) are the
        client's conditions: PreconditionFailed when they do not hold. An object
        that breaks RFC 4791's rules raises InvalidCalendarData, as does a UID
        another object of the calendar already has (``no-uid-conflict``). NotFound
        means the calendar does not exist (the object may or may not).
        """
        (outcome,) = await self.put_objects(
            user_id, calendar_name, [(name, data)], if_match=if_match, if_none_match=if_none_match
        )
        return outcome

    async def put_objects(
        self,
        user_id: int,
        calendar_name: str,
        objects: Sequence[tuple[str, bytes]],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> list[PutOutcome]:
        """:meth:`put_object` for several (name, data) pairs, all in one transaction:
        every object is checked before any is written, and either all are stored or
        none (an import of a whole calendar). The conditions apply to each name."""
        names = [check_name(name, "calendar object") for name, _ in objects]
        if len(set(names)) != len(names):
            raise InvalidValue("the same object name twice")
        async with self.db.read() as conn:
            calendar = await self._calendar(conn, user_id, calendar_name)
        try:
            # In a thread: a large object takes a while to parse, and the node's other
            # connections go on meanwhile.
            parsed = await asyncio.to_thread(parse_all, self.kind, objects, calendar.components)
        except InvalidCalendarData:
            # The conditions come before the content (RFC 9110 section 13.2.1): a
            # client whose copy is stale learns that (412) even if its data is bad.
            if if_match is not None or if_none_match:
                await self._check_current(calendar, names, if_match, if_none_match)
            raise
        keys = [new_blob_key(self.kind.blob_prefix) for _ in objects]
        written: list[str] = []
        puts = []
        try:
            for key, (_, data) in zip(keys, objects, strict=True):
                puts.append(await self.blobs.put(key, _one_chunk(data)))
                written.append(key)
        except BaseException:
            await self._discard_blob(*written)
            raise

        async def write(conn: AsyncConnection) -> list[PutOutcome]:
            return [
                await self._write_object(
                    conn, calendar, name, item, key, put, etag, if_match, if_none_match
                )
                for name, item, key, put, etag in zip(
                    names,
                    parsed,
                    keys,
                    puts,
                    [hashlib.sha256(data).hexdigest()[:40] for _, data in objects],
                    strict=True,
                )
            ]

        async def committed(conn: AsyncConnection) -> list[PutOutcome] | None:
            rows = list(
                await conn.execute(
                    select(*OBJECT_COLUMNS).where(t.calendar_objects.c.object_key.in_(keys))
                )
            )
            if len(rows) != len(keys):
                return None
            by_key = {row.object_key: object_from_row(row) for row in rows}
            return [PutOutcome(False, by_key[key]) for key in keys]

        return await self._commit_new_blob(keys, write, committed)

    async def _check_current(
        self,
        calendar: CalendarInfo,
        names: Sequence[str],
        if_match: str | None,
        if_none_match: bool,
    ) -> None:
        """The conditions against the objects as they are now, outside a write."""
        o = t.calendar_objects.c
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(o.name, o.etag).where(live(calendar.id), o.name.in_(sorted(set(names))))
            )
            etags = {row.name: row.etag for row in rows}
        for name in names:
            check_conditions(name, etags.get(name), if_match, if_none_match)

    async def _write_object(
        self,
        conn: AsyncConnection,
        calendar: CalendarInfo,
        name: str,
        parsed: ParsedObject,
        key: str,
        put: PutResult,
        etag: str,
        if_match: str | None,
        if_none_match: bool,
    ) -> PutOutcome:
        """The rows of one new object version, in the caller's transaction."""
        token = await self._next_token(conn, calendar)
        o = t.calendar_objects.c
        old = (
            await conn.execute(select(o.id, o.etag, o.uid).where(live(calendar.id), o.name == name))
        ).one_or_none()
        check_conditions(name, None if old is None else old.etag, if_match, if_none_match)
        holder = (
            await conn.execute(
                select(o.name).where(live(calendar.id), o.uid == parsed.uid, o.name != name)
            )
        ).scalar()
        if holder is not None:
            raise self.kind.invalid(
                "no-uid-conflict",
                f"{holder[:100]} in this {self.kind.label} has that UID",
                holder=holder,
            )
        now = clock.utcnow()
        if old is not None:
            await conn.execute(
                update(t.calendar_objects)
                .where(o.id == old.id)
                .values(deleted_at=now, modseq=token)
            )
        await conn.execute(
            insert(t.object_keys).values(key=key, size=put.size, sha256=put.sha256, created_at=now)
        )
        result = await conn.execute(
            insert(t.calendar_objects).values(
                calendar_id=calendar.id,
                user_id=calendar.user_id,
                name=name,
                uid=parsed.uid,
                etag=etag,
                object_key=key,
                size=put.size,
                component=parsed.component,
                first_start=parsed.first_start,
                last_end=parsed.last_end,
                recurring=parsed.recurring,
                modseq=token,
            )
        )
        (object_id,) = result.inserted_primary_key or (0,)
        return PutOutcome(
            old is None,
            CalendarObject(
                object_id,
                calendar.id,
                name,
                parsed.uid,
                f'"{etag}"',
                key,
                put.size,
                parsed.component,
                parsed.first_start,
                parsed.last_end,
                parsed.recurring,
                token,
            ),
        )

    async def delete_object(
        self, user_id: int, calendar_name: str, name: str, *, if_match: str | None = None
    ) -> None:
        """Soft-delete the object (NotFound if there is none; PreconditionFailed if
        ``if_match`` is not its ETag)."""
        o = t.calendar_objects.c

        async def write(conn: AsyncConnection) -> None:
            calendar = await self._calendar(conn, user_id, calendar_name)
            token = await self._next_token(conn, calendar)
            old = (
                await conn.execute(select(o.id, o.etag).where(live(calendar.id), o.name == name))
            ).one_or_none()
            if old is None:
                raise NotFound(f"no calendar object {name[:100]}")
            check_conditions(name, old.etag, if_match, False)
            await conn.execute(
                update(t.calendar_objects)
                .where(o.id == old.id)
                .values(deleted_at=clock.utcnow(), modseq=token)
            )

        await self.db.transact(write)

    # -- internals -------------------------------------------------------------------

    async def _insert_calendar(
        self,
        conn: AsyncConnection,
        user_id: int,
        name: str,
        display_name: str,
        color: str,
        description: str,
        components: Sequence[str],
    ) -> None:
        await conn.execute(
            insert(t.calendars).values(
                user_id=user_id,
                kind=self.kind.name,
                name=name,
                display_name=display_name[:255],
                color=color[:32],
                description=description,
                components=" ".join(components),
                sync_token=1,
                created_at=clock.utcnow(),
            )
        )

    async def _calendar(self, conn: AsyncConnection, user_id: int, name: str) -> CalendarInfo:
        row = (
            await conn.execute(
                select(*CALENDAR_COLUMNS).where(
                    t.calendars.c.user_id == user_id,
                    t.calendars.c.kind == self.kind.name,
                    t.calendars.c.name == name,
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"no {self.kind.label} {name[:100]}")
        return calendar_from_row(row)

    async def _calendar_by_id(self, conn: AsyncConnection, calendar: CalendarInfo) -> CalendarInfo:
        row = (
            await conn.execute(select(*CALENDAR_COLUMNS).where(t.calendars.c.id == calendar.id))
        ).one_or_none()
        if row is None:
            raise NotFound(f"no calendar {calendar.name[:100]}")
        return calendar_from_row(row)

    async def _next_token(self, conn: AsyncConnection, calendar: CalendarInfo) -> int:
        """Raise the calendar's sync token (locking its row until commit); return it."""
        result = await conn.execute(
            update(t.calendars)
            .where(t.calendars.c.id == calendar.id)
            .values(sync_token=t.calendars.c.sync_token + 1)
        )
        if result.rowcount != 1:
            raise NotFound(f"no calendar {calendar.name[:100]}")
        return int(
            (
                await conn.execute(
                    select(t.calendars.c.sync_token).where(t.calendars.c.id == calendar.id)
                )
            ).scalar_one()
        )
