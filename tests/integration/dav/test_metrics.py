"""CalDAV requests are counted by method and status, and timed by method."""

from __future__ import annotations

import httpx

from tests.integration.dav.conftest import PASSWORD, DavTarget
from tests.support.metrics import Changes

REQUESTS = "lightmail_dav_requests_total"
SECONDS = "lightmail_dav_request_seconds_count"

EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:m@test\r\n"
    b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def test_requests_are_counted_by_method_and_status(dav: DavTarget) -> None:
    user = await dav.new_user()
    changes = Changes()
    event_url = f"{dav.url}/calendars/{user.address}/default/m.ics"
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        assert (await http.put(event_url, content=EVENT)).status_code == 201
        assert (
            await http.put(event_url, content=EVENT, headers={"If-None-Match": "*"})
        ).status_code == 412
        assert (await http.get(event_url)).status_code == 200
        assert (
            await http.request("PROPFIND", f"{dav.url}/", headers={"Depth": "0"})
        ).status_code == 207
        assert (await http.request("FROBNICATE", f"{dav.url}/")).status_code == 405
        assert (await http.options(f"{dav.url}/")).status_code == 200
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(event_url)).status_code == 401

    expected = {
        ("PUT", "201"): 1,
        ("PUT", "412"): 1,
        ("GET", "200"): 1,
        ("GET", "401"): 1,
        ("PROPFIND", "207"): 1,
        ("other", "405"): 1,
        ("OPTIONS", "200"): 1,
    }
    for (method, status), count in expected.items():
        assert changes(REQUESTS, method=method, status=status) == count, (method, status)
    for method, count in (("PUT", 2), ("GET", 2), ("PROPFIND", 1), ("other", 1)):
        assert changes(SECONDS, method=method) == count, method
