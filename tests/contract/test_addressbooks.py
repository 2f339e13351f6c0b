"""Address books on both backends: the calendars' collection store with the address book
kind: default book, names shared with calendars, vCard rules, import/export, the GC
and orphan sweep over ``vcf/`` blobs, and migration 0013 on rows stored before it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from lightmail.accounts.service import Accounts, User
from lightmail.calendars.store import DEFAULT_CALENDAR, CalendarStore
from lightmail.calendars.transfer import export_calendar, import_calendar
from lightmail.errors import AlreadyExists, InvalidAddressData, NotFound
from lightmail.storage.blobs import BlobStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.conftest import Backend
from tests.contract.test_calendars import collector, own  # noqa: F401 (a fixture)
from tests.support.migrations import down_and_up, store_with_user


def card(uid: str, fn: str = "Ann Example", extra: str = "") -> bytes:
    return (f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{fn}\r\n{extra}END:VCARD\r\n").encode()


async def vcf_keys(blobs: BlobStore) -> set[str]:
    return {info.key async for page in blobs.list("vcf/") for info in page}


async def test_a_new_user_has_a_default_address_book_beside_the_default_calendar(
    backend: Backend,
) -> None:
    user = await backend.new_user()
    contacts: CalendarStore = backend.accounts.contacts
    (book,) = await contacts.list_calendars(user.id)
    assert (book.name, book.components, book.display_name) == (
        DEFAULT_CALENDAR,
        ("VCARD",),
        "Contacts",
    )
    (calendar,) = await backend.accounts.calendars.list_calendars(user.id)
    assert calendar.id != book.id
    await contacts.create_calendar(user.id, "work", display_name="Work")
    await backend.accounts.calendars.create_calendar(user.id, "work")
    with pytest.raises(AlreadyExists):
        await contacts.create_calendar(user.id, "work")
    assert [b.name for b in await contacts.list_calendars(user.id)] == ["default", "work"]
    with pytest.raises(NotFound):
        await contacts.get_calendar(user.id, "nope")

    await contacts.put_object(user.id, "work", "a.vcf", card("a"))
    await backend.accounts.delete_user(user.address)
    assert await contacts.list_calendars(user.id) == []
    async with backend.db.read() as conn:
        live = await conn.execute(
            select(func.count()).where(
                t.calendar_objects.c.user_id == user.id, t.calendar_objects.c.deleted_at.is_(None)
            )
        )
        assert live.scalar_one() == 0


async def test_vcards_are_checked_and_uids_are_unique_per_address_book(backend: Backend) -> None:
    user = await backend.new_user()
    contacts: CalendarStore = backend.accounts.contacts
    stored = await contacts.put_object(user.id, DEFAULT_CALENDAR, "a.vcf", card("a"))
    assert stored.created
    assert stored.object.object_key.startswith("vcf/")
    assert stored.object.component == "VCARD"
    with pytest.raises(InvalidAddressData) as conflict:
        await contacts.put_object(user.id, DEFAULT_CALENDAR, "b.vcf", card("a"))
    assert (conflict.value.precondition, conflict.value.holder) == ("no-uid-conflict", "a.vcf")
    with pytest.raises(InvalidAddressData) as bad:
        await contacts.put_object(user.id, DEFAULT_CALENDAR, "c.vcf", b"BEGIN:VCARD\r\n")
    assert bad.value.precondition == "valid-address-data"
    # A calendar takes no vCard, and an address book no iCalendar.
    with pytest.raises(InvalidAddressData):
        await contacts.put_object(
            user.id,
            DEFAULT_CALENDAR,
            "e.vcf",
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
        )
    book = await contacts.get_calendar(user.id, DEFAULT_CALENDAR)
    assert [obj.name for obj in await contacts.list_objects(book)] == ["a.vcf"]


async def test_a_vcf_file_imports_per_uid_and_exports_again(backend: Backend) -> None:
    user = await backend.new_user()
    contacts: CalendarStore = backend.accounts.contacts
    await contacts.put_object(user.id, DEFAULT_CALENDAR, "mine.vcf", card("a", "Old"))
    data = card("a", "New") + card("b c", "Bee") + card("d")
    report = await import_calendar(contacts, user.id, DEFAULT_CALENDAR, data)
    assert (report.created, report.replaced) == (2, 1)
    book = await contacts.get_calendar(user.id, DEFAULT_CALENDAR)
    names = sorted(obj.name for obj in await contacts.list_objects(book))
    assert "mine.vcf" in names
    assert "d.vcf" in names
    assert all(name.endswith(".vcf") for name in names)
    exported = await export_calendar(contacts, user.id, DEFAULT_CALENDAR)
    assert sorted(exported.split(b"END:VCARD\r\n")) == sorted(data.split(b"END:VCARD\r\n"))
    no_fn = card("y").replace(b"FN:", b"NOTE:")
    with pytest.raises(InvalidAddressData, match="FN"):
        await import_calendar(contacts, user.id, DEFAULT_CALENDAR, card("x") + no_fn)
    with pytest.raises(InvalidAddressData, match="one UID"):
        await import_calendar(contacts, user.id, DEFAULT_CALENDAR, card("x") + card("x"))
    assert await export_calendar(contacts, user.id, DEFAULT_CALENDAR) == exported


async def test_the_gc_purges_a_deleted_vcards_blob_and_the_sweep_takes_vcf_orphans(
    own: tuple[Database, BlobStore, Accounts, User],  # noqa: F811 (the fixture)
) -> None:
    db, blobs, accounts, user = own
    contacts: CalendarStore = accounts.contacts
    kept = await contacts.put_object(user.id, DEFAULT_CALENDAR, "kept.vcf", card("k"))
    gone = await contacts.put_object(user.id, DEFAULT_CALENDAR, "gone.vcf", card("g"))
    await contacts.delete_object(user.id, DEFAULT_CALENDAR, "gone.vcf")

    async def orphan() -> AsyncIterator[bytes]:
        yield card("orphan")

    await blobs.put("vcf/0192f1c4-0000-7000-8000-000000000000.vcf", orphan())
    assert gone.object.object_key in await vcf_keys(blobs)

    report = await collector(db, blobs, timedelta(days=2)).run()

    assert (report.calendar_objects_purged, report.orphans_deleted) == (1, 1)
    assert await vcf_keys(blobs) == {kept.object.object_key}
    assert await contacts.read_bytes(kept.object) == card("k")


async def test_migration_0013_gives_existing_users_an_address_book_and_keeps_calendars(
    own_storage: tuple[str, dict[str, Any]],
) -> None:
    async with store_with_user(own_storage) as (store, user):
        accounts = Accounts(store)
        await accounts.calendars.create_calendar(user.id, "team")
        await accounts.contacts.put_object(user.id, DEFAULT_CALENDAR, "a.vcf", card("a"))
        calendars_before = await accounts.calendars.list_calendars(user.id)

        await down_and_up(store.db, "0012")

        assert await accounts.calendars.list_calendars(user.id) == calendars_before
        (book,) = await accounts.contacts.list_calendars(user.id)
        assert (book.name, book.components) == (DEFAULT_CALENDAR, ("VCARD",))
        assert await accounts.contacts.list_objects(book) == []  # the old book's went
        async with store.db.read() as conn:
            dropped = await conn.execute(
                select(func.count()).where(t.calendar_objects.c.deleted_at.is_not(None))
            )
            assert dropped.scalar_one() == 1  # soft-deleted: the GC takes its blob
