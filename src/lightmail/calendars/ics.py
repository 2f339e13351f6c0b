"""Calendar object resources: checked once when stored, and matched against time ranges.

RFC 4791 section 4.1: a calendar object resource is one VCALENDAR holding
components of one type (VEVENT, VTODO or VJOURNAL) that share one UID (the
master and its overridden instances) plus the VTIMEZONEs they use, and no
METHOD property. :func:`parse_object` enforces that and computes what the
store keeps to answer time-range queries in SQL: the first instance's start
and the last instance's end in UTC, and whether the object recurs.

Times without a zone (floating) and dates are taken as UTC, which is what a
server without the client's zone can do (RFC 4791 section 9.9 lets it).
:func:`split_calendar` and :func:`join_objects` turn one ``.ics`` file of a
whole calendar into objects and back (import and export). This module does
no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import recurring_ical_events
from dateutil.rrule import rruleset, rrulestr
from icalendar import Calendar, Component, vRecur

from lightmail.errors import InvalidCalendarData

COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
"""The component types a calendar can hold (supported-calendar-component-set)."""

MAX_UID_LENGTH = 255
MAX_INSTANCES = 20_000
"""The most instances a series with COUNT may have (CALDAV:max-instances)."""
MAX_SCAN = 50_000
"""Instances a time-range query walks through in one series before it counts the
series as meeting the range."""

PRODID = "-//LightMail//CalDAV//EN"

_ONE_DAY = timedelta(days=1)
# A rule this frequent has too many instances to expand when a query asks.
_TOO_FREQUENT = frozenset({"SECONDLY", "MINUTELY"})


@dataclass(frozen=True, slots=True)
class ParsedObject:
    """What the store keeps of a calendar object besides its bytes."""

    uid: str
    component: str  # VEVENT, VTODO or VJOURNAL
    first_start: datetime | None  # naive UTC; None: unbounded
    last_end: datetime | None  # naive UTC; None: unbounded
    recurring: bool


def parse_object(data: bytes, allowed: Iterable[str] = COMPONENTS) -> ParsedObject:
    """Check one calendar object resource; raise :class:`InvalidCalendarData` with
    the precondition it breaks (RFC 4791 section 5.3.2.1)."""
    calendar = _parse(data)
    if calendar.get("METHOD") is not None:
        raise InvalidCalendarData(
            "valid-calendar-object-resource", "a stored calendar object has no METHOD"
        )
    parts = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    if not parts:
        raise InvalidCalendarData("valid-calendar-object-resource", "no calendar component")
    kinds = {str(part.name) for part in parts}
    if len(kinds) != 1:
        raise InvalidCalendarData(
            "valid-calendar-object-resource", "components of more than one type"
        )
    (component,) = kinds
    if component not in COMPONENTS:
        raise InvalidCalendarData(
            "supported-calendar-component", f"{component[:20]} is not a calendar component"
        )
    if component not in allowed:
        raise InvalidCalendarData(
            "supported-calendar-component", f"this calendar does not hold {component}"
        )
    uids = {str(part.get("UID", "")) for part in parts}
    if len(uids) != 1 or not next(iter(uids)):
        raise InvalidCalendarData(
            "valid-calendar-object-resource", "the components need one and the same UID"
        )
    (uid,) = uids
    if len(uid) > MAX_UID_LENGTH:
        raise InvalidCalendarData(
            "valid-calendar-object-resource", f"a UID longer than {MAX_UID_LENGTH} characters"
        )
    recurring = any("RRULE" in part or "RDATE" in part for part in parts)
    for part in parts:
        for rule in _rules(part):
            if str(rule.get("FREQ", [""])[0]).upper() in _TOO_FREQUENT:
                raise InvalidCalendarData(
                    "max-instances", "a series may repeat hourly at the most often"
                )
    try:
        first, last = _series_bounds(parts) if recurring else _bounds(parts)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as error:
        raise InvalidCalendarData("valid-calendar-data", f"unusable dates: {error}") from None
    return ParsedObject(uid, component, first, last, recurring)


def overlaps(
    start: datetime | None, end: datetime | None, range_start: datetime, range_end: datetime
) -> bool:
    """Whether an instance from ``start`` to ``end`` (None: unbounded) meets the
    range, as RFC 4791 section 9.9 says: an instance of no duration meets it when
    it begins inside it."""
    if start is None or end is None:
        return (start is None or start < range_end) and (end is None or end > range_start)
    if end > start:
        return range_start < end and range_end > start
    return range_start <= start < range_end


def series_overlaps(
    data: bytes, component: str, range_start: datetime, range_end: datetime
) -> bool:
    """Whether some instance of a recurring object meets the range (naive UTC bounds).

    The instances are walked from the first (python-dateutil, cheap per instance);
    a series the walk cannot follow, or one with more than :data:`MAX_SCAN`
    instances before the range ends, counts as meeting it: better a calendar
    shows one event too many than loses one.
    """
    try:
        parts = list(_parse(data).walk(component))
        overrides = [part for part in parts if "RECURRENCE-ID" in part]
        replaced = {_utc(_value(part, "RECURRENCE-ID")) for part in overrides}
        if any(overlaps(*_instance_bounds(part), range_start, range_end) for part in overrides):
            return True
        for master in (part for part in parts if "RECURRENCE-ID" not in part):
            start, end = _instance_bounds(master)
            if start is None or end is None:
                return True
            if _series_meets(master, end - start, replaced, range_start, range_end):
                return True
    except (InvalidCalendarData, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return True
    return False


def _series_meets(
    master: Component,
    length: timedelta,
    replaced: set[datetime],
    range_start: datetime,
    range_end: datetime,
) -> bool:
    """Whether an instance of ``master``'s RRULE/RDATE set, less EXDATEs and
    instances an override replaced, meets the range."""
    dtstart = _as_datetime(_value(master, "DTSTART"))
    series = rruleset()
    series.rdate(dtstart)
    for rule in _rules(master):
        plain = {key: value for key, value in rule.items() if key != "UNTIL"}
        if "UNTIL" in rule:
            plain["UNTIL"] = [_like(rule["UNTIL"][0], dtstart)]
        text = vRecur(plain).to_ical().decode()  # type: ignore[no-untyped-call]
        series.rrule(rrulestr(text, dtstart=dtstart))  # type: ignore[arg-type]
    for listed in _listed(master, "RDATE"):
        series.rdate(_like(listed, dtstart))
    for listed in _listed(master, "EXDATE"):
        series.exdate(_like(listed, dtstart))
    for scanned, occurrence in enumerate(series, 1):
        if scanned > MAX_SCAN:
            return True
        start = _utc(occurrence)
        if start >= range_end:
            return False
        if start not in replaced and overlaps(start, start + length, range_start, range_end):
            return True
    return False


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise ValueError(f"not a date: {value!r}")


def _like(value: Any, dtstart: datetime) -> datetime:
    """A date or date-time made comparable with ``dtstart`` (both aware or both naive)."""
    moment = _as_datetime(value)
    if dtstart.tzinfo is None:
        return _utc(moment) if moment.tzinfo is not None else moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _parse(data: bytes) -> Calendar:
    try:
        calendar = Calendar.from_ical(data)
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as error:
        raise InvalidCalendarData("valid-calendar-data", f"not iCalendar: {error}") from None
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise InvalidCalendarData("valid-calendar-data", "not one VCALENDAR")
    return calendar


def _bounds(parts: Iterable[Component]) -> tuple[datetime | None, datetime | None]:
    """The earliest start and latest end of components that do not recur."""
    starts: list[datetime | None] = []
    ends: list[datetime | None] = []
    for part in parts:
        start, end = _instance_bounds(part)
        starts.append(start)
        ends.append(end)
    first = None if None in starts else min(s for s in starts if s is not None)
    last = None if None in ends else max(e for e in ends if e is not None)
    return first, last


def _series_bounds(parts: list[Component]) -> tuple[datetime | None, datetime | None]:
    """Bounds of a recurring object's instances, for the SQL filter only (a query
    checks a recurring candidate against its real instances): the earliest DTSTART
    and, for rules with UNTIL or COUNT, a day past the latest end; None (unbounded)
    for an endless rule. A day of margin covers zones whose offset changes."""
    first, last = _bounds(parts)
    ends: list[datetime] = [] if last is None else [last]
    for part in parts:
        start, end = _instance_bounds(part)
        if start is None or end is None:
            return first, None
        length = end - start
        for rule in _rules(part):
            if "UNTIL" in rule:
                ends.append(_utc(rule["UNTIL"][0]) + length)
            elif "COUNT" in rule:
                ends.append(_count_end(rule, start) + length)
            else:
                return first, None
        for listed in _listed(part, "RDATE"):
            ends.append(_utc(listed) + length)
    return first, max(ends) + _ONE_DAY if ends else None


def _count_end(rule: Any, start: datetime) -> datetime:
    """The start of the last instance of a rule with COUNT (at most MAX_INSTANCES)."""
    count = int(rule["COUNT"][0])
    if count > MAX_INSTANCES:
        raise InvalidCalendarData(
            "max-instances", f"a series may have at most {MAX_INSTANCES} instances"
        )
    plain = {key: value for key, value in rule.items() if key not in ("UNTIL", "WKST")}
    text = vRecur(plain).to_ical().decode()  # type: ignore[no-untyped-call]
    last = start
    for last in rrulestr(text, dtstart=start):  # noqa: B007 (the last one is wanted)
        pass
    return last


def _listed(part: Component, name: str) -> list[Any]:
    """The date values of a property that may be given several times (RDATE, EXDATE)."""
    found = part.get(name)
    if found is None:
        return []
    values: list[Any] = []
    for item in found if isinstance(found, list) else [found]:
        for value in getattr(item, "dts", []):
            moment = value.dt
            values.append(moment[0] if isinstance(moment, tuple) else moment)
    return values


def _rules(part: Component) -> list[Any]:
    rules = part.get("RRULE")
    if rules is None:
        return []
    return list(rules) if isinstance(rules, list) else [rules]


def _instance_bounds(part: Component) -> tuple[datetime | None, datetime | None]:
    """One instance's start and end (RFC 4791 section 9.9's table, simplified:
    a to-do or journal entry without dates is unbounded)."""
    start_value = _value(part, "DTSTART")
    if start_value is None:
        due = _value(part, "DUE")
        if due is None:
            return None, None
        return _utc(due), _utc(due)
    start = _utc(start_value)
    end_value = _value(part, "DTEND") if part.name == "VEVENT" else _value(part, "DUE")
    if end_value is not None:
        return start, max(start, _utc(end_value))
    duration = _value(part, "DURATION")
    if isinstance(duration, timedelta):
        return start, max(start, start + duration)
    if isinstance(start_value, date) and not isinstance(start_value, datetime):
        return start, start + _ONE_DAY  # a day-long event (RFC 5545 section 3.6.1)
    return start, start


def _value(part: Component, name: str) -> Any:
    prop = part.get(name)
    return None if prop is None else getattr(prop, "dt", None)


def _utc(value: Any) -> datetime:
    """A DATE or DATE-TIME as naive UTC; floating times and dates count as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise ValueError(f"not a date: {value!r}")


@dataclass(frozen=True, slots=True)
class PropFilter:
    """A CALDAV:prop-filter (RFC 4791 section 9.7.2) with at most a text-match."""

    name: str
    is_not_defined: bool = False
    text: str | None = None  # text-match
    negate: bool = False
    case_sensitive: bool = False  # i;octet rather than i;ascii-casemap


def matches_properties(data: bytes, component: str, filters: Iterable[PropFilter]) -> bool:
    """Whether a component of the object passes every filter (RFC 4791 section 9.7.5:
    text-match is a substring match)."""
    wanted = list(filters)
    return any(all(_passes(part, rule) for rule in wanted) for part in _parse(data).walk(component))


def _passes(part: Component, rule: PropFilter) -> bool:
    values = part.get(rule.name)
    if values is None:
        return rule.is_not_defined
    if rule.is_not_defined:
        return False
    if rule.text is None:
        return True
    texts = [str(value) for value in (values if isinstance(values, list) else [values])]
    needle = rule.text if rule.case_sensitive else rule.text.casefold()
    found = any(needle in (text if rule.case_sensitive else text.casefold()) for text in texts)
    return found != rule.negate


def expand(data: bytes, component: str, start: datetime, end: datetime) -> bytes:
    """The object's instances in [start, end) as separate components with
    RECURRENCE-IDs and times in UTC (RFC 4791 section 9.6.5, CALDAV:expand)."""
    query = recurring_ical_events.of(_parse(data), components=(component,))
    out = Calendar()
    out.add("VERSION", "2.0")
    out.add("PRODID", PRODID)
    for instance in itertools.islice(
        query.between(start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)), MAX_INSTANCES
    ):
        for name in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
            value = _value(instance, name)
            if isinstance(value, datetime):
                instance.pop(name)
                instance.add(name, _utc(value).replace(tzinfo=UTC))
        out.add_component(instance)
    return bytes(out.to_ical())


def split_calendar(data: bytes) -> list[tuple[str, bytes]]:
    """One VCALENDAR holding many components as calendar object resources, one per
    UID in the order they first appear: its components of that UID and the
    VTIMEZONEs they name, without METHOD. Each still has to pass
    :func:`parse_object`; a component without UID raises InvalidCalendarData."""
    calendar = _parse(data)
    zones = {str(c.get("TZID", "")): c for c in calendar.subcomponents if c.name == "VTIMEZONE"}
    groups: dict[str, list[Component]] = {}
    for part in calendar.subcomponents:
        if part.name == "VTIMEZONE":
            continue
        uid = str(part.get("UID", ""))
        if not uid:
            raise InvalidCalendarData(
                "valid-calendar-object-resource", f"a {str(part.name)[:20]} without a UID"
            )
        groups.setdefault(uid, []).append(part)
    if not groups:
        raise InvalidCalendarData("valid-calendar-object-resource", "no calendar component")
    objects = []
    for uid, parts in groups.items():
        single = _empty_calendar(calendar)
        for tzid in dict.fromkeys(tzid for part in parts for tzid in _tzids(part)):
            if tzid in zones:
                single.add_component(zones[tzid])
        for part in parts:
            single.add_component(part)
        objects.append((uid, bytes(single.to_ical())))
    return objects


def join_objects(objects: Iterable[bytes]) -> bytes:
    """Calendar objects as one VCALENDAR: every component, each VTIMEZONE once (the
    first of a TZID), before the components that use them."""
    zones: dict[str, Component] = {}
    parts: list[Component] = []
    for data in objects:
        for part in _parse(data).subcomponents:
            if part.name == "VTIMEZONE":
                zones.setdefault(str(part.get("TZID", "")), part)
            else:
                parts.append(part)
    out = _empty_calendar(None)
    for part in [*zones.values(), *parts]:
        out.add_component(part)
    return bytes(out.to_ical())


def _empty_calendar(source: Calendar | None) -> Calendar:
    """A VCALENDAR with the VERSION, PRODID and CALSCALE of ``source`` (or ours)."""
    out = Calendar()
    out.add("VERSION", "2.0")
    prodid = None if source is None else source.get("PRODID")
    out.add("PRODID", str(prodid) if prodid is not None else PRODID)
    scale = None if source is None else source.get("CALSCALE")
    if scale is not None:
        out.add("CALSCALE", str(scale))
    return out


def _tzids(part: Component) -> list[str]:
    """The TZID parameters of a component's properties and its subcomponents'."""
    found = []
    for component in part.walk():
        for values in component.values():
            for value in values if isinstance(values, list) else [values]:
                params = getattr(value, "params", None)
                if params is not None and "TZID" in params:
                    found.append(str(params["TZID"]))
    return found
