"""CalDAV with a real client, the python ``caldav`` library, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import unquote

import httpx
import pytest
from caldav.davclient import DAVClient
from caldav.lib import error as caldav_error

from lightmail.accounts.service import User
from tests.integration.dav.conftest import PASSWORD, DavTarget

_T = TypeVar("_T")


def event(uid: str, start: str, summary: str = "Meeting", extra: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//LightMail tests//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


WEEKLY = event("weekly-standup", "20260105T090000Z", "Standup", "RRULE:FREQ=WEEKLY\r\n")


async def with_client(dav: DavTarget, user: User, work: Callable[[DAVClient], _T]) -> _T:
    """Run ``work`` with a client logged in as ``user``, in a thread (the client blocks)."""

    def run() -> _T:
        with DAVClient(url=f"{dav.url}/", username=user.address, password=PASSWORD) as c:
            return work(c)

    return await asyncio.to_thread(run)


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


async def test_discovery_finds_the_principal_home_and_default_calendar(dav: DavTarget) -> None:
    user = await dav.new_user()

    def discover(client: DAVClient) -> tuple[str, list[tuple[str, str | None]]]:
        principal = client.principal()
        return str(principal.url), [
            (unquote(str(c.url)), c.get_display_name()) for c in principal.calendars()
        ]

    principal, calendars = await with_client(dav, user, discover)

    assert unquote(principal) == f"{dav.url}/principals/{user.address}/"
    assert calendars == [(f"{dav.url}/calendars/{user.address}/default/", "Calendar")]
    async with httpx.AsyncClient() as http:
        redirect = await http.get(f"{dav.url}/.well-known/caldav")
        options = await http.options(f"{dav.url}/")
    assert (redirect.status_code, redirect.headers["location"]) == (301, "/")
    assert "calendar-access" in options.headers["dav"]


async def test_create_a_calendar_then_put_get_and_delete_events(dav: DavTarget) -> None:
    user = await dav.new_user()
    data = event("lunch-1", "20260310T120000Z", "Lunch")

    def work(client: DAVClient) -> tuple[str, str, list[str], str]:
        principal = client.principal()
        calendar = principal.make_calendar(name="Work", cal_id="work")
        saved = calendar.save_event(data)
        loaded = calendar.event_by_url(saved.url)
        loaded.load()
        names = sorted(str(c.get_display_name()) for c in principal.calendars())
        summary = str(loaded.icalendar_component["SUMMARY"])
        saved.delete()
        remaining = [str(obj.url) for obj in calendar.events()]
        return str(saved.url), summary, names, ",".join(remaining)

    url, summary, names, remaining = await with_client(dav, user, work)

    assert summary == "Lunch"
    assert names == ["Calendar", "Work"]
    assert remaining == ""
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        assert (await http.get(url)).status_code == 404


async def test_an_object_is_served_byte_for_byte_with_its_etag(dav: DavTarget) -> None:
    user = await dav.new_user()
    url = f"{dav.url}/calendars/{user.address}/default/bytes.ics"
    data = event("bytes-1", "20260310T120000Z", "Folded", "X-LONG:abc\r\n def\r\n").encode()
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        put = await http.put(url, content=data, headers={"Content-Type": "text/calendar"})
        got = await http.get(url)
        head = await http.head(url)
    assert put.status_code == 201
    assert got.content == data
    assert got.headers["etag"] == put.headers["etag"] == head.headers["etag"]
    assert head.content == b""


async def test_time_range_search_expands_a_weekly_recurring_event(dav: DavTarget) -> None:
    user = await dav.new_user()

    def work(client: DAVClient) -> dict[str, list[str]]:
        calendar = client.principal().calendar(cal_id="default")
        calendar.save_event(WEEKLY)
        calendar.save_event(event("once", "20260303T150000Z", "Dentist"))

        def summaries(start: datetime, end: datetime) -> list[str]:
            found = calendar.search(start=start, end=end, event=True)
            return sorted(str(obj.icalendar_component["SUMMARY"]) for obj in found)

        return {
            "before": summaries(utc(2025, 12, 1), utc(2026, 1, 1)),
            "first week": summaries(utc(2026, 1, 5), utc(2026, 1, 6)),
            "a year on": summaries(utc(2027, 1, 4), utc(2027, 1, 5)),
            "between instances": summaries(utc(2027, 1, 5), utc(2027, 1, 11)),
            "dentist day": summaries(utc(2026, 3, 3), utc(2026, 3, 4)),
            "dentist week": summaries(utc(2026, 3, 2), utc(2026, 3, 8)),
        }

    found = await with_client(dav, user, work)

    assert found == {
        "before": [],
        "first week": ["Standup"],
        "a year on": ["Standup"],
        "between instances": [],
        "dentist day": ["Dentist"],
        "dentist week": ["Dentist", "Standup"],
    }


async def test_sync_tokens_report_what_changed_and_what_was_removed(dav: DavTarget) -> None:
    user = await dav.new_user()
    home = f"{dav.url}/calendars/{user.address}/default/"

    def work(client: DAVClient) -> tuple[list[str], list[str], list[str]]:
        calendar = client.principal().calendar(cal_id="default")
        calendar.save_event(event("a", "20260105T090000Z"))
        doomed = calendar.save_event(event("b", "20260106T090000Z"))
        first = calendar.objects_by_sync_token(load_objects=False)
        everything = sorted(unquote(str(obj.url)) for obj in first)
        doomed.delete()
        calendar.save_event(event("c", "20260107T090000Z"))
        second = calendar.objects_by_sync_token(first.sync_token, load_objects=False)
        changed = sorted(unquote(str(obj.url)) for obj in second)
        third = calendar.objects_by_sync_token(second.sync_token, load_objects=False)
        return everything, changed, [str(obj.url) for obj in third]

    everything, changed, unchanged = await with_client(dav, user, work)

    assert everything == [f"{home}a.ics", f"{home}b.ics"]
    assert changed == [f"{home}b.ics", f"{home}c.ics"]  # b removed, c added
    assert unchanged == []
    report = (
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>'
        "urn:lightmail:sync:1:999999</D:sync-token><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        refused = await http.request("REPORT", home, content=report)
    assert refused.status_code == 403
    assert b"valid-sync-token" in refused.content


async def test_a_stale_etag_or_an_existing_object_gets_412(dav: DavTarget) -> None:
    user = await dav.new_user()
    url = f"{dav.url}/calendars/{user.address}/default/e.ics"
    first = event("e", "20260105T090000Z").encode()
    second = event("e", "20260105T100000Z").encode()
    headers = {"Content-Type": "text/calendar"}
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        created = await http.put(url, content=first, headers={**headers, "If-None-Match": "*"})
        again = await http.put(url, content=first, headers={**headers, "If-None-Match": "*"})
        etag = created.headers["etag"]
        updated = await http.put(url, content=second, headers={**headers, "If-Match": etag})
        stale = await http.put(url, content=first, headers={**headers, "If-Match": etag})
        stale_delete = await http.delete(url, headers={"If-Match": etag})
        current = await http.get(url)
    assert [created.status_code, again.status_code, updated.status_code] == [201, 412, 204]
    assert [stale.status_code, stale_delete.status_code] == [412, 412]
    assert current.content == second
    assert current.headers["etag"] == updated.headers["etag"] != etag


async def test_another_users_calendars_are_refused(dav: DavTarget) -> None:
    alice, mallory = await dav.new_user(), await dav.new_user()
    alices = f"{dav.url}/calendars/{alice.address}/default/"
    async with httpx.AsyncClient(auth=(alice.address, PASSWORD)) as http:
        put = await http.put(f"{alices}secret.ics", content=event("s", "20260105T090000Z"))
    assert put.status_code == 201
    propfind = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
    async with httpx.AsyncClient(auth=(mallory.address, PASSWORD)) as http:
        answers = [
            await http.get(f"{alices}secret.ics"),
            await http.request("PROPFIND", alices, content=propfind, headers={"Depth": "1"}),
            await http.put(f"{alices}planted.ics", content=event("p", "20260105T090000Z")),
            await http.delete(f"{alices}secret.ics"),
            await http.request("MKCALENDAR", f"{dav.url}/calendars/{alice.address}/new/"),
        ]
    assert [answer.status_code for answer in answers] == [403] * 5
    assert all(b"secret" not in answer.content for answer in answers)

    def mallory_opens(client: DAVClient) -> None:
        client.calendar(url=alices).events()

    with pytest.raises(caldav_error.DAVError):
        await with_client(dav, mallory, mallory_opens)


async def test_a_wrong_password_gets_401_and_no_data(dav: DavTarget) -> None:
    user = await dav.new_user()
    async with httpx.AsyncClient() as http:
        anonymous = await http.request("PROPFIND", f"{dav.url}/", headers={"Depth": "0"})
        wrong = await http.request(
            "PROPFIND", f"{dav.url}/", headers={"Depth": "0"}, auth=(user.address, "wrong")
        )
    assert anonymous.status_code == wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    ("name", "body", "precondition"),
    [
        ("not-ical", b"this is not iCalendar\r\n", b"valid-calendar-data"),
        (
            "truncated",
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n",
            b"valid-calendar-data",
        ),
        (
            "no-uid",
            event("x", "20260105T090000Z").replace("UID:x\r\n", "").encode(),
            b"valid-calendar-object-resource",
        ),
        (
            "with-method",
            event("m", "20260105T090000Z")
            .replace("VERSION:2.0", "VERSION:2.0\r\nMETHOD:REQUEST")
            .encode(),
            b"valid-calendar-object-resource",
        ),
        (
            "bad-date",
            event("d", "2026-01-05 nine o'clock").encode(),
            b"valid-calendar-data",
        ),
    ],
)
async def test_malformed_icalendar_gets_403_with_the_precondition(
    dav: DavTarget, name: str, body: bytes, precondition: bytes
) -> None:
    user = await dav.new_user()
    url = f"{dav.url}/calendars/{user.address}/default/{name}.ics"
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        answer = await http.put(url, content=body, headers={"Content-Type": "text/calendar"})
        after = await http.get(url)
    assert answer.status_code == 403, answer.text
    assert precondition in answer.content
    assert b"urn:ietf:params:xml:ns:caldav" in answer.content
    assert after.status_code == 404
