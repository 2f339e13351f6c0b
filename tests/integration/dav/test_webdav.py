"""The WebDAV side of CalDAV, as raw requests: PROPFIND, PROPPATCH, MKCALENDAR, extended
MKCOL, DELETE of a calendar, and the REPORTs with their filters."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.dav.conftest import PASSWORD, DavTarget

NS = {
    "D": "DAV:",
    "C": "urn:ietf:params:xml:ns:caldav",
    "A": "http://apple.com/ns/ical/",
    "CS": "http://calendarserver.org/ns/",
}
DECLARED = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())
XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>'


def event(uid: str, start: str, summary: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\n"
        f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@dataclass
class Session:
    http: httpx.AsyncClient
    home: str  # URL of the user's calendar home

    async def dav(self, method: str, url: str, body: str = "", depth: str = "0") -> httpx.Response:
        return await self.http.request(method, url, content=body.encode(), headers={"Depth": depth})

    async def props(self, url: str, *names: str) -> dict[str, str]:
        """The text of each property found on ``url`` (PROPFIND Depth 0)."""
        wanted = "".join(f"<{name}/>" for name in names)
        answer = await self.dav(
            "PROPFIND",
            url,
            f"{XML_HEAD}<D:propfind {DECLARED}><D:prop>{wanted}</D:prop></D:propfind>",
        )
        assert answer.status_code == 207, answer.text
        root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
        found = root.findall("D:response/D:propstat[D:status='HTTP/1.1 200 OK']/D:prop/*", NS)
        return {node.tag: "".join(node.itertext()) for node in found}


@pytest.fixture
async def session(dav: DavTarget) -> AsyncIterator[Session]:
    user = await dav.new_user()
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        yield Session(http, f"{dav.url}/calendars/{user.address}/")


async def test_mkcalendar_sets_properties_and_proppatch_changes_them(session: Session) -> None:
    url = f"{session.home}team/"
    made = await session.dav(
        "MKCALENDAR",
        url,
        f'{XML_HEAD}<C:mkcalendar xmlns:D="DAV:" xmlns:C="{NS["C"]}" xmlns:A="{NS["A"]}">'
        "<D:set><D:prop><D:displayname>Team</D:displayname>"
        "<C:calendar-description>Our plans</C:calendar-description>"
        '<C:supported-calendar-component-set><C:comp name="VTODO"/>'
        "</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>",
    )
    again = await session.dav("MKCALENDAR", url)
    patched = await session.dav(
        "PROPPATCH",
        url,
        f'{XML_HEAD}<D:propertyupdate xmlns:D="DAV:" xmlns:A="{NS["A"]}" xmlns:C="{NS["C"]}">'
        "<D:set><D:prop><A:calendar-color>#00ff00ff</A:calendar-color></D:prop></D:set>"
        "<D:remove><D:prop><C:calendar-description/></D:prop></D:remove>"
        "</D:propertyupdate>",
    )
    refused = await session.dav(
        "PROPPATCH",
        url,
        f'{XML_HEAD}<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        "<D:displayname>Renamed</D:displayname><D:getetag>x</D:getetag>"
        "</D:prop></D:set></D:propertyupdate>",
    )

    assert (made.status_code, again.status_code) == (201, 405)
    assert patched.status_code == 207
    assert b"HTTP/1.1 403" in refused.content
    assert b"HTTP/1.1 424" in refused.content
    props = await session.props(
        url,
        "D:displayname",
        "A:calendar-color",
        "C:calendar-description",
        "C:supported-calendar-component-set",
    )
    assert props["{DAV:}displayname"] == "Team"  # the refused PROPPATCH changed nothing
    assert props["{http://apple.com/ns/ical/}calendar-color"] == "#00ff00ff"
    assert props[f"{{{NS['C']}}}calendar-description"] == ""
    todo_only = await session.http.put(f"{url}e.ics", content=event("e", "20260105T090000Z", "E"))
    assert todo_only.status_code == 403
    assert b"supported-calendar-component" in todo_only.content


async def test_extended_mkcol_makes_a_calendar_and_refuses_a_plain_collection(
    session: Session,
) -> None:
    calendar = await session.dav(
        "MKCOL",
        f"{session.home}viamkcol/",
        f'{XML_HEAD}<D:mkcol xmlns:D="DAV:" xmlns:C="{NS["C"]}"><D:set><D:prop>'
        "<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>"
        "<D:displayname>Via MKCOL</D:displayname></D:prop></D:set></D:mkcol>",
    )
    plain = await session.dav("MKCOL", f"{session.home}folder/")
    assert (calendar.status_code, plain.status_code) == (201, 403)
    props = await session.props(f"{session.home}viamkcol/", "D:displayname", "D:resourcetype")
    assert props["{DAV:}displayname"] == "Via MKCOL"


async def test_propfind_depth_1_lists_calendars_with_ctag_and_sync_token(
    session: Session,
) -> None:
    default = f"{session.home}default/"
    before = await session.props(default, "D:sync-token")
    await session.http.put(f"{default}a.ics", content=event("a", "20260105T090000Z", "A"))
    after = await session.props(
        default,
        "D:sync-token",
        "CS:getctag",
        "D:current-user-privilege-set",
        "D:supported-report-set",
    )
    listing = await session.dav(
        "PROPFIND",
        session.home,
        f'{XML_HEAD}<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>',
        depth="1",
    )
    infinite = await session.dav("PROPFIND", session.home, depth="infinity")

    token = after["{DAV:}sync-token"]
    assert token != before["{DAV:}sync-token"]
    assert after["{http://calendarserver.org/ns/}getctag"] == token
    privileges = await session.dav(
        "PROPFIND",
        default,
        f'{XML_HEAD}<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-privilege-set/>'
        "</D:prop></D:propfind>",
    )
    granted = ET.fromstring(privileges.content).findall(".//D:privilege/*", NS)  # noqa: S314
    assert {"{DAV:}read", "{DAV:}write-content", "{DAV:}bind"} <= {n.tag for n in granted}
    assert listing.status_code == 207
    hrefs = [node.text for node in ET.fromstring(listing.content).iter("{DAV:}href")]  # noqa: S314
    home_path = "/" + session.home.split("//", 1)[1].split("/", 1)[1]
    assert hrefs == [home_path, f"{home_path}default/"]
    assert infinite.status_code == 403
    assert b"propfind-finite-depth" in infinite.content


async def test_multiget_and_query_reports(session: Session) -> None:
    default = f"{session.home}default/"
    for uid, start, summary in (
        ("a", "20260105T090000Z", "Alpha review"),
        ("b", "20260106T090000Z", "Beta"),
        ("c", "20260301T090000Z", "Gamma review"),
    ):
        await session.http.put(f"{default}{uid}.ics", content=event(uid, start, summary))
    path = default.split("//", 1)[1].split("/", 1)[1]
    multiget = await session.dav(
        "REPORT",
        default,
        f'{XML_HEAD}<C:calendar-multiget xmlns:D="DAV:" xmlns:C="{NS["C"]}">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
        f"<D:href>/{path}a.ics</D:href><D:href>/{path}missing.ics</D:href>"
        "</C:calendar-multiget>",
        depth="1",
    )
    query = await session.dav(
        "REPORT",
        default,
        f'{XML_HEAD}<C:calendar-query xmlns:D="DAV:" xmlns:C="{NS["C"]}">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT"><C:time-range start="20260101T000000Z" '
        'end="20260201T000000Z"/><C:prop-filter name="SUMMARY"><C:text-match>REVIEW'
        "</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter>"
        "</C:calendar-query>",
        depth="1",
    )
    unsupported = await session.dav(
        "REPORT",
        default,
        f'{XML_HEAD}<C:calendar-query xmlns:D="DAV:" xmlns:C="{NS["C"]}">'
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:comp-filter name="VALARM"/></C:comp-filter></C:comp-filter></C:filter>'
        "</C:calendar-query>",
        depth="1",
    )

    assert multiget.status_code == 207
    responses = ET.fromstring(multiget.content).findall("D:response", NS)  # noqa: S314
    assert len(responses) == 2
    assert "SUMMARY:Alpha review" in (responses[0].findtext(".//C:calendar-data", "", NS))
    assert responses[1].findtext("D:status", "", NS) == "HTTP/1.1 404 Not Found"
    hrefs = [n.text for n in ET.fromstring(query.content).iter("{DAV:}href")]  # noqa: S314
    assert hrefs == [f"/{path}a.ics"]
    assert unsupported.status_code == 403
    assert b"supported-filter" in unsupported.content


async def test_deleting_a_calendar_removes_it_and_its_objects(session: Session) -> None:
    await session.dav("MKCALENDAR", f"{session.home}old/")
    await session.http.put(f"{session.home}old/x.ics", content=event("x", "20260105T090000Z", "X"))
    deleted = await session.http.delete(f"{session.home}old/")
    gone = await session.http.get(f"{session.home}old/x.ics")
    home_delete = await session.http.delete(session.home)
    assert (deleted.status_code, gone.status_code, home_delete.status_code) == (204, 404, 403)


async def test_query_with_expand_answers_each_instance_in_utc(session: Session) -> None:
    default = f"{session.home}default/"
    weekly = event("w", "20260105T090000Z", "Weekly").replace(
        b"DURATION:PT1H\r\n", b"DURATION:PT1H\r\nRRULE:FREQ=WEEKLY\r\n"
    )
    await session.http.put(f"{default}w.ics", content=weekly)
    answer = await session.dav(
        "REPORT",
        default,
        f'{XML_HEAD}<C:calendar-query xmlns:D="DAV:" xmlns:C="{NS["C"]}">'
        '<D:prop><C:calendar-data><C:expand start="20260112T000000Z" end="20260126T000000Z"/>'
        '</C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT"><C:time-range start="20260112T000000Z" '
        'end="20260126T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
        "</C:calendar-query>",
        depth="1",
    )
    data = ET.fromstring(answer.content).findtext(".//C:calendar-data", "", NS)  # noqa: S314
    assert answer.status_code == 207
    assert "RRULE" not in data
    assert data.count("BEGIN:VEVENT") == 2
    assert "RECURRENCE-ID:20260112T090000Z" in data
    assert "DTSTART:20260119T090000Z" in data


async def test_calendar_data_keeps_its_crlf_line_ends_through_an_xml_parser(
    session: Session,
) -> None:
    """An XML parser turns a literal CR LF into LF; vdirsyncer then stored every
    event with LF line ends and a different hash than the server's copy."""
    default = f"{session.home}default/"
    stored = event("crlf", "20260105T090000Z", "Line ends").replace(
        b"SUMMARY:Line ends\r\n", b"SUMMARY:Line ends\r\nDESCRIPTION:a folded\r\n  line\r\n"
    )
    assert (await session.http.put(f"{default}crlf.ics", content=stored)).status_code == 201
    path = default.split("//", 1)[1].split("/", 1)[1]
    multiget = await session.dav(
        "REPORT",
        default,
        f'{XML_HEAD}<C:calendar-multiget xmlns:D="DAV:" xmlns:C="{NS["C"]}">'
        f"<D:prop><C:calendar-data/></D:prop><D:href>/{path}crlf.ics</D:href>"
        "</C:calendar-multiget>",
        depth="1",
    )
    data = ET.fromstring(multiget.content).findtext(".//C:calendar-data", "", NS)  # noqa: S314
    assert multiget.status_code == 207
    assert data.encode() == stored
    assert b"\r" not in multiget.content


async def test_writes_below_a_missing_collection_get_409_conflict(session: Session) -> None:
    """RFC 4918 sections 9.7.1 and 9.3.1: a missing intermediate collection is 409, and
    the server makes none of it; a calendar holds no collection (RFC 4791 5.3.1)."""
    data = event("orphan", "20260105T090000Z", "Orphan")
    put_missing = await session.http.put(f"{session.home}nope/orphan.ics", content=data)
    put_deeper = await session.http.put(f"{session.home}default/sub/orphan.ics", content=data)
    mkcalendar_missing = await session.dav("MKCALENDAR", f"{session.home}nope/sub/")
    mkcol_missing = await session.dav(
        "MKCOL",
        f"{session.home}nope/sub/",
        f'{XML_HEAD}<D:mkcol xmlns:D="DAV:" xmlns:C="{NS["C"]}"><D:set><D:prop>'
        "<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>"
        "</D:prop></D:set></D:mkcol>",
    )
    plain_mkcol_missing = await session.dav("MKCOL", f"{session.home}nope/sub")
    mkcalendar_deeper = await session.dav("MKCALENDAR", f"{session.home}default/a/b/")
    mkcalendar_inside = await session.dav("MKCALENDAR", f"{session.home}default/sub/")
    get_nested = await session.http.get(f"{session.home}default/sub/orphan.ics")
    delete_nested = await session.http.delete(f"{session.home}nope/sub/")

    assert [
        put_missing.status_code,
        put_deeper.status_code,
        mkcalendar_missing.status_code,
        mkcol_missing.status_code,
        plain_mkcol_missing.status_code,
        mkcalendar_deeper.status_code,
    ] == [409] * 6
    assert mkcalendar_inside.status_code == 403
    assert b"calendar-collection-location-ok" in mkcalendar_inside.content
    assert (get_nested.status_code, delete_nested.status_code) == (404, 404)
    listing = await session.dav(
        "PROPFIND",
        session.home,
        f'{XML_HEAD}<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>',
        depth="1",
    )
    hrefs = ET.fromstring(listing.content).findall("D:response/D:href", NS)  # noqa: S314
    assert [(n.text or "").rsplit("/", 2)[1] for n in hrefs[1:]] == ["default"]  # none made
    assert (await session.http.get(f"{session.home}nope/orphan.ics")).status_code == 404
