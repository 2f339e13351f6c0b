"""What the calendar store answers with, and how its rows become those values."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import ColumnElement, and_

from lightmail.storage.db import tables as t

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_V = TypeVar("_V", bound="DataclassInstance")


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


# A value's fields are its columns, of the same names, in the same order.
CALENDAR_COLUMNS = t.columns(t.calendars, *(f.name for f in fields(CalendarInfo)))
OBJECT_COLUMNS = t.columns(t.calendar_objects, *(f.name for f in fields(CalendarObject)))


def calendar_from_row(row: t.AnyRow) -> CalendarInfo:
    return _from_row(CalendarInfo, row, components=tuple(row.components.split()))


def object_from_row(row: t.AnyRow) -> CalendarObject:
    return _from_row(CalendarObject, row, etag=f'"{row.etag}"', recurring=bool(row.recurring))


def _from_row(cls: type[_V], row: t.AnyRow, **converted: object) -> _V:
    """``cls`` of ``row``'s columns of its fields' names; ``converted`` where the
    column's value is not the field's as it is."""
    return cls(**{f.name: converted.get(f.name, getattr(row, f.name)) for f in fields(cls)})


def live(calendar_id: int) -> ColumnElement[bool]:
    o = t.calendar_objects.c
    return and_(o.calendar_id == calendar_id, o.deleted_at.is_(None))
