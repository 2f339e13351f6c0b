"""A whole collection as one file: import (split into objects) and export; a calendar
as one ``.ics``, an address book as one ``.vcf`` (the store's kind says how).

Operators move calendars in and out with these (the HTTP API and the CLI);
iMIP (:mod:`.imip`) names the objects it creates with :func:`object_name`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Container
from dataclasses import dataclass

from lightmail.calendars.store import CalendarStore
from lightmail.errors import InvalidCalendarData

# A UID that is safe as a path segment as it is; any other is hashed.
_PLAIN_UID = re.compile(r"[A-Za-z0-9@._+=-]{1,200}")


@dataclass(frozen=True, slots=True)
class ImportReport:
    created: int  # objects with a UID the calendar did not have
    replaced: int  # objects that replaced the one with their UID


def object_name(uid: str, taken: Container[str], suffix: str = ".ics") -> str:
    """The name of a new object with ``uid``: ``<uid><suffix>`` for a plain UID, else
    its hash; one not in ``taken`` (the names of other objects)."""
    name = f"{uid}{suffix}" if _PLAIN_UID.fullmatch(uid) else _hashed(uid, suffix)
    return name if name not in taken else _hashed(uid + "\0" + name, suffix)


def _hashed(text: str, suffix: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32] + suffix


async def import_calendar(
    calendars: CalendarStore, user_id: int, calendar_name: str, data: bytes
) -> ImportReport:
    """Store every component of the VCALENDAR ``data`` (every vCard, for an address
    book) as one object per UID, all in one transaction: an object with a UID the
    collection has replaces it, the others are added. InvalidCalendarData (naming
    the UID) leaves the collection as it was."""
    kind = calendars.kind
    calendar = await calendars.get_calendar(user_id, calendar_name)
    split = await asyncio.to_thread(kind.split, data)
    existing = {obj.uid: obj.name for obj in await calendars.list_objects(calendar)}
    taken = set(existing.values())
    pairs = []
    for uid, blob in split:
        name = existing.get(uid)
        if name is None:
            name = object_name(uid, taken, kind.suffix)
            taken.add(name)
        pairs.append((name, blob))
    try:
        outcomes = await calendars.put_objects(user_id, calendar_name, pairs)
    except InvalidCalendarData as error:
        raise kind.invalid(error.precondition, f"nothing imported: {error}") from None
    created = sum(outcome.created for outcome in outcomes)
    return ImportReport(created, len(outcomes) - created)


async def export_calendar(calendars: CalendarStore, user_id: int, calendar_name: str) -> bytes:
    """Every object of the calendar in one VCALENDAR, each VTIMEZONE once (of an
    address book: every vCard, one after the other)."""
    calendar = await calendars.get_calendar(user_id, calendar_name)
    objects = [await calendars.read_bytes(obj) for obj in await calendars.list_objects(calendar)]
    return await asyncio.to_thread(calendars.kind.join, objects)
