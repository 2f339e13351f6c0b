"""What the calendar store answers with, and how its rows become those values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_

from lightmail.storage.db import tables as t


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    id: int
    user_id: int
    name: str
    display_name: str
    color: str
    description: str
    components: tuple[str, ...]
    sync_token: int
    purged_modseq: int  # tokens below this can no longer list every removal


@dataclass(frozen=True, slots=True)
class CalendarObject:
    id: int
    calendar_id: int
    name: str
    uid: str
    etag: str  # quoted, as HTTP sends it
    object_key: str
    size: int
    component: str
    first_start: datetime | None
    last_end: datetime | None
    recurring: bool
    modseq: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a calendar after a sync token (RFC 6578 section 3.5)."""

    changed: list[CalendarObject]
    removed: list[str]  # names
    token: int


@dataclass(frozen=True, slots=True)
class PutOutcome:
    created: bool
    object: CalendarObject


CALENDAR_COLUMNS = (
    t.calendars.c.id,
    t.calendars.c.user_id,
    t.calendars.c.name,
    t.calendars.c.display_name,
    t.calendars.c.color,
    t.calendars.c.description,
    t.calendars.c.components,
    t.calendars.c.sync_token,
    t.calendars.c.purged_modseq,
)
OBJECT_COLUMNS = (
    t.calendar_objects.c.id,
    t.calendar_objects.c.calendar_id,
    t.calendar_objects.c.name,
    t.calendar_objects.c.uid,
    t.calendar_objects.c.etag,
    t.calendar_objects.c.object_key,
    t.calendar_objects.c.size,
    t.calendar_objects.c.component,
    t.calendar_objects.c.first_start,
    t.calendar_objects.c.last_end,
    t.calendar_objects.c.recurring,
    t.calendar_objects.c.modseq,
)


def calendar_from_row(row: t.AnyRow) -> CalendarInfo:
    return CalendarInfo(
        row.id,
        row.user_id,
        row.name,
        row.display_name,
        row.color,
        row.description,
        tuple(row.components.split()),
        row.sync_token,
        row.purged_modseq,
    )


def object_from_row(row: t.AnyRow) -> CalendarObject:
    return CalendarObject(
        row.id,
        row.calendar_id,
        row.name,
        row.uid,
        f'"{row.etag}"',
        row.object_key,
        row.size,
        row.component,
        row.first_start,
        row.last_end,
        bool(row.recurring),
        row.modseq,
    )


def live(calendar_id: int) -> ColumnElement[bool]:
    o = t.calendar_objects.c
    return and_(o.calendar_id == calendar_id, o.deleted_at.is_(None))
