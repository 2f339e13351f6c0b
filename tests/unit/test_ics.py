"""Calendar objects checked at PUT and matched against time ranges, without I/O."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from lightmail.calendars.ics import (
    MAX_INSTANCES,
    PropFilter,
    matches_properties,
    parse_object,
    series_overlaps,
)
from lightmail.errors import InvalidCalendarData

OVERRIDE = (
    "BEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20260101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20260112T100000\r\n"
    "DTSTART:20260114T100000Z\r\nDURATION:PT1H\r\nEND:VEVENT\r\n"
)


UNTIL = "FREQ=WEEKLY;UNTIL=20260120T000000Z"


def berlin(rule: str, extra: str = "", more: str = "") -> bytes:
    """A one-hour event at 10:00 Berlin time from Monday 2026-01-05 (09:00 UTC)."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260105T100000\r\n"
        f"DURATION:PT1H\r\nRRULE:{rule}\r\n{extra}END:VEVENT\r\n{more}END:VCALENDAR\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("rule", "extra", "more", "start", "end", "meets"),
    [
        ("FREQ=WEEKLY", "", "", datetime(2026, 7, 6, 8), datetime(2026, 7, 6, 8, 30), True),
        ("FREQ=WEEKLY", "", "", datetime(2026, 7, 6, 9), datetime(2026, 7, 6, 9, 30), False),
        (
            "FREQ=WEEKLY",
            "EXDATE;TZID=Europe/Berlin:20260112T100000\r\n",
            "",
            datetime(2026, 1, 12),
            datetime(2026, 1, 13),
            False,
        ),
        (
            "FREQ=WEEKLY;UNTIL=20260120T000000Z",
            "",
            "",
            datetime(2026, 1, 26),
            datetime(2026, 1, 27),
            False,
        ),
        (
            "FREQ=WEEKLY;UNTIL=20260120T000000Z",
            "",
            "",
            datetime(2026, 1, 12),
            datetime(2026, 1, 13),
            True,
        ),
        ("FREQ=WEEKLY", "", OVERRIDE, datetime(2026, 1, 12), datetime(2026, 1, 13), False),
        ("FREQ=WEEKLY", "", OVERRIDE, datetime(2026, 1, 14), datetime(2026, 1, 15), True),
        ("FREQ=DAILY;COUNT=3", "", "", datetime(2026, 1, 8), datetime(2026, 1, 9), False),
    ],
    ids=[
        "summer-time",
        "summer-miss",
        "exdate",
        "after-until",
        "before-until",
        "moved",
        "moved-to",
        "count",
    ],
)
def test_a_series_meets_a_range_only_where_an_instance_is(
    rule: str, extra: str, more: str, start: datetime, end: datetime, meets: bool
) -> None:
    assert series_overlaps(berlin(rule, extra, more), "VEVENT", start, end) is meets


def test_an_endless_hourly_series_is_checked_in_bounded_time() -> None:
    began = time.monotonic()
    assert series_overlaps(
        berlin("FREQ=HOURLY"), "VEVENT", datetime(2046, 1, 6), datetime(2046, 1, 7)
    )
    assert time.monotonic() - began < 5


@pytest.mark.parametrize(
    "rule", ["FREQ=SECONDLY", "FREQ=MINUTELY;INTERVAL=5", f"FREQ=DAILY;COUNT={MAX_INSTANCES + 1}"]
)
def test_series_with_too_many_instances_are_refused(rule: str) -> None:
    with pytest.raises(InvalidCalendarData) as refused:
        parse_object(berlin(rule))
    assert refused.value.precondition == "max-instances"


def test_bounds_are_kept_for_sql_without_walking_a_long_series() -> None:
    began = time.monotonic()
    long = parse_object(berlin(f"FREQ=DAILY;COUNT={MAX_INSTANCES}"))
    endless = parse_object(berlin("FREQ=HOURLY"))
    assert time.monotonic() - began < 5
    assert long.first_start == endless.first_start == datetime(2026, 1, 5, 9)
    assert long.last_end is not None
    assert long.last_end >= datetime(2080, 10, 6, 10)
    assert endless.last_end is None


def test_prop_filters_match_text_and_absence() -> None:
    data = berlin("FREQ=WEEKLY", "SUMMARY:Team Review\r\n")
    assert matches_properties(data, "VEVENT", [PropFilter("SUMMARY", text="review")])
    assert not matches_properties(
        data, "VEVENT", [PropFilter("SUMMARY", text="review", case_sensitive=True)]
    )
    assert matches_properties(data, "VEVENT", [PropFilter("LOCATION", is_not_defined=True)])
    assert (
        matches_properties(data, "VEVENT", [PropFilter("SUMMARY", text="x", negate=True)])
        is not False
    )
