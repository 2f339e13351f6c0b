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


CALENDAR_COLUMNS = t.columns(
    t.calendars,
    "id",
    "user_id",
    "name",
    "display_name",
    "color",
    "description",
    "components",
    "sync_token",
    "purged_modseq",
)
OBJECT_COLUMNS = t.columns(
    t.calendar_objects,
    "id",
    "calendar_id",
    "name",
    "uid",
    "etag",
    "object_key",
    "size",
    "component",
    "first_start",
    "last_end",
    "recurring",
    "modseq",
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
