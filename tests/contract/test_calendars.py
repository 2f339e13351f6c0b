"""The calendar store on both backends: collections, objects, conditions, sync, GC."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from lightmail.accounts.service import Accounts, User
from lightmail.calendars.store import DEFAULT_CALENDAR, CalendarStore
from lightmail.clock import utcnow
from lightmail.config import GcSettings
from lightmail.errors import (
    AlreadyExists,
    InvalidCalendarData,
    InvalidValue,
    NotFound,
    PreconditionFailed,
)
from lightmail.gc import GarbageCollector
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import BlobStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.conftest import Backend, open_blobs


def event(uid: str, start: str = "20260105T100000Z", extra: str = "") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:ev {uid}\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


async def ics_keys(blobs: BlobStore) -> set[str]:
    return {info.key async for page in blobs.list("ics/") for info in page}


async def test_a_new_user_has_a_default_calendar_and_loses_it_when_deleted(
    backend: Backend,
) -> None:
    user = await backend.new_user()
    calendars = backend.accounts.calendars
    (calendar,) = await calendars.list_calendars(user.id)
    assert (calendar.name, calendar.components) == (DEFAULT_CALENDAR, ("VEVENT", "VTODO"))
    await calendars.put_object(user.id, DEFAULT_CALENDAR, "a.ics", event("a"))

    await backend.accounts.delete_user(user.address)

    assert await calendars.list_calendars(user.id) == []
    async with backend.db.read() as conn:
        live = await conn.execute(
            select(func.count()).where(
                t.calendar_objects.c.user_id == user.id, t.calendar_objects.c.deleted_at.is_(None)
            )
        )
        assert live.scalar_one() == 0


async def test_calendars_are_created_once_and_changed_by_name(backend: Backend) -> None:
    user = await backend.new_user()
    calendars = backend.accounts.calendars
    made = await calendars.create_calendar(
        user.id, "work", display_name="Work", color="#ff0000", components=["vtodo"]
    )
    assert (made.display_name, made.color, made.components) == ("Work", "#ff0000", ("VTODO",))
    with pytest.raises(AlreadyExists):
        await calendars.create_calendar(user.id, "work")
    with pytest.raises(InvalidValue):
        await calendars.create_calendar(user.id, "a/b")
    with pytest.raises(InvalidValue):
        await calendars.create_calendar(user.id, "x", components=["VFREEBUSY"])
    changed = await calendars.update_calendar(user.id, "work", description="Jobs")
    assert (changed.display_name, changed.description) == ("Work", "Jobs")
    other = await backend.new_user()
    with pytest.raises(NotFound):
        await calendars.get_calendar(other.id, "work")

    await calendars.delete_calendar(user.id, "work")
    with pytest.raises(NotFound):
        await calendars.get_calendar(user.id, "work")


async def test_objects_are_stored_byte_for_byte_under_ics_keys(backend: Backend) -> None:
    user = await backend.new_user()
    calendars = backend.accounts.calendars
    data = event("one", extra="X-FOLDED:a long line that a client folded\r\n  on purpose\r\n")
    outcome = await calendars.put_object(user.id, DEFAULT_CALENDAR, "one.ics", data)
    calendar = await calendars.get_calendar(user.id, DEFAULT_CALENDAR)

    stored = await calendars.get_object(calendar, "one.ics")
    assert outcome.created
    assert stored == outcome.object
    assert stored.object_key.startswith("ics/")
    assert stored.object_key.endswith(".ics")
    assert await calendars.read_bytes(stored) == data
    assert (stored.uid, stored.component, stored.recurring) == ("one", "VEVENT", False)
    assert (stored.first_start, stored.last_end) == (
        datetime(2026, 1, 5, 10),
        datetime(2026, 1, 5, 11),
    )
    assert calendar.sync_token == stored.modseq


async def test_conditions_and_uid_conflicts_refuse_a_put_and_leave_no_blob(
    backend: Backend,
) -> None:
    user = await backend.new_user()
    calendars = backend.accounts.calendars
    first = await calendars.put_object(user.id, DEFAULT_CALENDAR, "e.ics", event("e"))
    keys = await ics_keys(backend.blobs)

    with pytest.raises(PreconditionFailed):
        await calendars.put_object(
            user.id, DEFAULT_CALENDAR, "e.ics", event("e"), if_none_match=True
        )
    with pytest.raises(PreconditionFailed):
        await calendars.put_object(
            user.id, DEFAULT_CALENDAR, "e.ics", event("e", "20270101T000000Z"), if_match='"x"'
        )
    with pytest.raises(PreconditionFailed):
        await calendars.put_object(
            user.id, DEFAULT_CALENDAR, "new.ics", event("n"), if_match=first.object.etag
        )
    with pytest.raises(InvalidCalendarData) as conflict:
        await calendars.put_object(user.id, DEFAULT_CALENDAR, "other.ics", event("e"))
    assert (conflict.value.precondition, conflict.value.holder) == ("no-uid-conflict", "e.ics")
    with pytest.raises(InvalidCalendarData) as bad:
        await calendars.put_object(user.id, DEFAULT_CALENDAR, "bad.ics", b"BEGIN:VCALENDAR\r\n")
    assert bad.value.precondition == "valid-calendar-data"
    assert await ics_keys(backend.blobs) == keys

    second = await calendars.put_object(
        user.id,
        DEFAULT_CALENDAR,
        "e.ics",
        event("e", "20270101T000000Z"),
        if_match=first.object.etag,
    )
    assert not second.created
    assert second.object.etag != first.object.etag
    with pytest.raises(PreconditionFailed):
        await calendars.delete_object(
            user.id, DEFAULT_CALENDAR, "e.ics", if_match=first.object.etag
        )
    await calendars.delete_object(user.id, DEFAULT_CALENDAR, "e.ics", if_match=second.object.etag)
    with pytest.raises(NotFound):
        await calendars.delete_object(user.id, DEFAULT_CALENDAR, "e.ics")


@pytest.mark.parametrize(
    ("store", "good", "bad"),
    [
        ("calendars", event("c"), b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
        (
            "contacts",
            b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c\r\nFN:C\r\nEND:VCARD\r\n",
            b"BEGIN:VCARD",
        ),
    ],
)
async def test_a_failing_condition_is_reported_before_bad_content(
    backend: Backend, store: str, good: bytes, bad: bytes
) -> None:
    """RFC 9110 section 13.2.1: the conditions are evaluated before the content is;
    one code path for both kinds, and for an import of several objects."""
    user = await backend.new_user()
    objects: CalendarStore = getattr(backend.accounts, store)
    first = await objects.put_object(user.id, DEFAULT_CALENDAR, "c", good)

    failing: list[tuple[str, str | None, bool]] = [
        ("c", None, True),
        ("c", '"stale"', False),
        ("absent", "*", False),
    ]
    for name, if_match, if_none_match in failing:
        with pytest.raises(PreconditionFailed):
            await objects.put_object(
                user.id, DEFAULT_CALENDAR, name, bad, if_match=if_match, if_none_match=if_none_match
            )
    with pytest.raises(PreconditionFailed):
        await objects.put_objects(
            user.id, DEFAULT_CALENDAR, [("new", bad), ("c", bad)], if_none_match=True
        )
    with pytest.raises(PreconditionFailed):  # two objects with one UID is content too
        await objects.put_objects(
            user.id, DEFAULT_CALENDAR, [("c", good), ("d", good)], if_none_match=True
        )
    holding: list[tuple[str, str | None, bool]] = [
        ("c", first.object.etag, False),
        ("new", None, True),
    ]
    for name, if_match, if_none_match in holding:
        with pytest.raises(InvalidCalendarData):
            await objects.put_object(
                user.id, DEFAULT_CALENDAR, name, bad, if_match=if_match, if_none_match=if_none_match
            )
    calendar = await objects.get_calendar(user.id, DEFAULT_CALENDAR)
    assert [obj.etag for obj in await objects.list_objects(calendar)] == [first.object.etag]


async def test_changes_since_a_token_list_changed_and_removed_names(backend: Backend) -> None:
    user = await backend.new_user()
    calendars = backend.accounts.calendars
    await calendars.put_object(user.id, DEFAULT_CALENDAR, "keep.ics", event("k"))
    await calendars.put_object(user.id, DEFAULT_CALENDAR, "gone.ics", event("g"))
    calendar = await calendars.get_calendar(user.id, DEFAULT_CALENDAR)
    token = calendar.sync_token

    await calendars.put_object(user.id, DEFAULT_CALENDAR, "keep.ics", event("k", extra="X-A:1\r\n"))
    await calendars.delete_object(user.id, DEFAULT_CALENDAR, "gone.ics")
    await calendars.put_object(user.id, DEFAULT_CALENDAR, "new.ics", event("n"))

    changes = await calendars.changes(calendar, token)
    assert [obj.name for obj in changes.changed] == ["keep.ics", "new.ics"]
    assert changes.removed == ["gone.ics"]
    assert changes.token == token + 3
    assert (await calendars.changes(calendar, changes.token)).changed == []
    everything = await calendars.changes(calendar, 0)
    assert [obj.name for obj in everything.changed] == ["keep.ics", "new.ics"]
    with pytest.raises(InvalidValue):
        await calendars.changes(calendar, changes.token + 1)


async def test_concurrent_writes_to_one_calendar_all_succeed_with_distinct_tokens(
    backend: Backend,
) -> None:
    """Writers to one calendar queue on its row: each PUT and DELETE commits, with
    a sync token of its own, and no change hides another."""
    user = await backend.new_user()
    calendars = backend.accounts.calendars
    before = (await calendars.get_calendar(user.id, DEFAULT_CALENDAR)).sync_token
    names = [f"c{index}.ics" for index in range(8)]

    outcomes = await asyncio.gather(
        *(calendars.put_object(user.id, DEFAULT_CALENDAR, name, event(name)) for name in names)
    )
    await asyncio.gather(
        *(calendars.delete_object(user.id, DEFAULT_CALENDAR, name) for name in names[:4])
    )

    assert sorted(outcome.object.modseq for outcome in outcomes) == list(
        range(before + 1, before + 9)
    )
    calendar = await calendars.get_calendar(user.id, DEFAULT_CALENDAR)
    assert calendar.sync_token == before + 12
    changes = await calendars.changes(calendar, before + 8)
    assert (changes.changed, changes.removed) == ([], names[:4])
    assert [obj.name for obj in await calendars.list_objects(calendar)] == names[4:]


async def test_time_ranges_filter_in_sql_and_keep_recurring_candidates(backend: Backend) -> None:
    user = await backend.new_user()
    calendars = backend.accounts.calendars
    put = calendars.put_object
    await put(user.id, DEFAULT_CALENDAR, "jan.ics", event("jan", "20260105T100000Z"))
    await put(user.id, DEFAULT_CALENDAR, "mar.ics", event("mar", "20260302T100000Z"))
    await put(
        user.id,
        DEFAULT_CALENDAR,
        "weekly.ics",
        event("weekly", "20260105T100000Z", "RRULE:FREQ=WEEKLY;COUNT=4\r\n"),
    )
    await put(
        user.id,
        DEFAULT_CALENDAR,
        "forever.ics",
        event("forever", "20260105T100000Z", "RRULE:FREQ=WEEKLY\r\n"),
    )
    calendar = await calendars.get_calendar(user.id, DEFAULT_CALENDAR)

    async def names(start: datetime | None, end: datetime | None) -> list[str]:
        found = await calendars.objects_in_range(calendar, "VEVENT", start, end)
        return [obj.name for obj in found]

    assert await names(datetime(2026, 1, 5), datetime(2026, 1, 6)) == [
        "forever.ics",
        "jan.ics",
        "weekly.ics",
    ]
    assert await names(datetime(2026, 3, 1), datetime(2026, 3, 8)) == ["forever.ics", "mar.ics"]
    assert await names(datetime(2026, 1, 5, 11), datetime(2026, 1, 6)) == [
        "forever.ics",
        "weekly.ics",
    ]
    assert await names(None, datetime(2026, 1, 1)) == []
    assert await calendars.objects_in_range(calendar, "VTODO", None, None) == []
    weekly = await calendars.get_object(calendar, "weekly.ics")
    # the last instance ends 2026-01-26 11:00; the bound has a day of margin
    assert (weekly.recurring, weekly.last_end) == (True, datetime(2026, 1, 27, 11))
    forever = await calendars.get_object(calendar, "forever.ics")
    assert (forever.recurring, forever.last_end) == (True, None)


# -- the garbage collector --------------------------------------------------------


@pytest.fixture
async def own(
    own_storage: tuple[str, dict[str, Any]],
) -> AsyncIterator[tuple[Database, BlobStore, Accounts, User]]:
    url, spec = own_storage
    db = Database(url)
    await db.upgrade()
    blobs = open_blobs(spec)
    accounts = Accounts(MailStore(db, blobs, InProcessNotificationBus()))
    domain = f"d{uuid.uuid4().hex[:8]}.example"
    await accounts.add_domain(domain)
    user = await accounts.add_user(f"u@{domain}", "secret")
    try:
        yield db, blobs, accounts, user
    finally:
        await blobs.close()
        await db.close()


def collector(db: Database, blobs: BlobStore, offset: timedelta) -> GarbageCollector:
    settings = GcSettings(
        enabled=True, interval=300, batch_size=2, retention=86400.0, orphan_grace=3600.0
    )
    return GarbageCollector(db, blobs, settings, clock=lambda: utcnow() + offset)


async def test_the_gc_purges_replaced_and_deleted_objects_after_retention(
    own: tuple[Database, BlobStore, Accounts, User],
) -> None:
    db, blobs, accounts, user = own
    calendars: CalendarStore = accounts.calendars
    for n in range(3):
        await calendars.put_object(user.id, DEFAULT_CALENDAR, f"{n}.ics", event(str(n)))
    calendar = await calendars.get_calendar(user.id, DEFAULT_CALENDAR)
    early = calendar.sync_token
    await calendars.put_object(user.id, DEFAULT_CALENDAR, "0.ics", event("0", extra="X-V:2\r\n"))
    await calendars.delete_object(user.id, DEFAULT_CALENDAR, "1.ics")
    kept = await calendars.list_objects(calendar)
    assert len(await ics_keys(blobs)) == 4

    report = await collector(db, blobs, timedelta(hours=23)).run()
    assert (report.calendar_objects_purged, report.blobs_deleted) == (0, 0)

    report = await collector(db, blobs, timedelta(days=1, minutes=1)).run()
    assert (report.calendar_objects_purged, report.blobs_deleted) == (2, 2)
    assert await ics_keys(blobs) == {obj.object_key for obj in kept}
    for obj in kept:
        assert await calendars.read_bytes(obj)
    async with db.read() as conn:
        rows = await conn.execute(select(func.count()).select_from(t.calendar_objects))
        assert rows.scalar_one() == 2
        keys = await conn.execute(select(func.count()).select_from(t.object_keys))
        assert keys.scalar_one() == 2
    with pytest.raises(InvalidValue):
        await calendars.changes(calendar, early)
    latest = await calendars.get_calendar(user.id, DEFAULT_CALENDAR)
    assert (await calendars.changes(calendar, latest.sync_token)).removed == []


async def test_the_orphan_sweep_takes_ics_blobs_no_row_names(
    own: tuple[Database, BlobStore, Accounts, User],
) -> None:
    db, blobs, accounts, user = own
    stored = await accounts.calendars.put_object(user.id, DEFAULT_CALENDAR, "a.ics", event("a"))

    async def orphan() -> AsyncIterator[bytes]:
        yield event("orphan")

    await blobs.put("ics/0192f1c4-0000-7000-8000-000000000000.ics", orphan())

    report = await collector(db, blobs, timedelta(days=2)).run()

    assert report.orphans_deleted == 1
    assert await ics_keys(blobs) == {stored.object.object_key}
