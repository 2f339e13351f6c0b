"""A user's calendars through the API: list, create, delete, import and export ``.ics``."""

from __future__ import annotations

from pathlib import Path

import pytest
from icalendar import Calendar

from lightmail.cli import EXIT_REFUSED, main
from tests.integration.api.conftest import MAX_CALENDAR_IMPORT, ApiNode, user_path
from tests.integration.api.test_accounts import error

ICS = {"Content-Type": "text/calendar"}

ZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)


def event(uid: str, start: str = "20250102T100000", extra: str = "") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n"
        f"DTSTART;TZID=Europe/Berlin:{start}\r\nDURATION:PT1H\r\nSUMMARY:{uid}\r\n{extra}"
        "END:VEVENT\r\n"
    )


def vcalendar(*parts: str) -> bytes:
    body = "".join(parts)
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n".encode()
    )


def _calendars(address: str) -> str:
    return f"{user_path(address)}/calendars"


def _export(api_node: ApiNode, address: str, name: str = "default") -> Calendar:
    response = api_node.api.get(f"{_calendars(address)}/{name}/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    parsed = Calendar.from_ical(response.content)
    assert isinstance(parsed, Calendar)
    return parsed


def test_list_create_get_and_delete_calendars(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    listed = api.get(_calendars(address)).json()
    assert [c["name"] for c in listed["items"]] == ["default"]
    assert listed["next_cursor"] is None

    body = {"name": "work", "display_name": "Work", "color": "#ff0000", "components": ["VTODO"]}
    created = api.post(_calendars(address), json=body)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "name": "work",
        "display_name": "Work",
        "color": "#ff0000",
        "description": "",
        "components": ["VTODO"],
        "sync_token": 1,
    }
    error(api.post(_calendars(address), json={"name": "work"}), 409, "already_exists")
    error(api.post(_calendars(address), json={"name": ".."}), 422)
    assert api.get(f"{_calendars(address)}/work").json()["display_name"] == "Work"
    page = api.get(_calendars(address), params={"limit": 1}).json()
    assert [c["name"] for c in page["items"]] == ["default"]
    rest = api.get(_calendars(address), params={"cursor": page["next_cursor"]}).json()
    assert [c["name"] for c in rest["items"]] == ["work"]

    assert api.delete(f"{_calendars(address)}/work").status_code == 204
    error(api.get(f"{_calendars(address)}/work"), 404, "not_found")
    error(api.delete(f"{_calendars(address)}/work"), 404, "not_found")


def test_import_splits_by_uid_and_export_joins_with_each_zone_once(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    moved = event(
        "a@test", "20250102T120000", "RECURRENCE-ID;TZID=Europe/Berlin:20250102T100000\r\n"
    )
    data = vcalendar(
        "METHOD:PUBLISH\r\n",
        ZONE,
        event("a@test", extra="RRULE:FREQ=DAILY;COUNT=3\r\n"),
        event("b/odd uid"),
        moved,
    )
    response = api.post(f"{_calendars(address)}/default/import", content=data, headers=ICS)
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "replaced": 0}

    exported = _export(api_node, address)
    assert exported.get("METHOD") is None
    assert [str(z["TZID"]) for z in exported.walk("VTIMEZONE")] == ["Europe/Berlin"]
    events = exported.walk("VEVENT")
    assert sorted(str(e["UID"]) for e in events) == ["a@test", "a@test", "b/odd uid"]
    assert sum("RECURRENCE-ID" in e for e in events) == 1

    again = api.post(f"{_calendars(address)}/default/import", content=data, headers=ICS)
    assert again.json() == {"created": 0, "replaced": 2}
    assert len(_export(api_node, address).walk("VEVENT")) == 3


def test_an_invalid_import_stores_nothing(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    path = f"{_calendars(address)}/default/import"
    broken = event("bad@test").replace("DURATION:PT1H", "DTEND:not-a-date")
    for data, code in (
        (vcalendar(ZONE, event("good@test"), broken), "invalid_calendar"),
        (vcalendar(event("good@test"), "BEGIN:VEVENT\r\nSUMMARY:no uid\r\nEND:VEVENT\r\n"), None),
        (vcalendar(ZONE), "invalid_calendar"),
        (b"not a calendar", "invalid_calendar"),
    ):
        error(api.post(path, content=data, headers=ICS), 422, code)
    assert _export(api_node, address).walk("VEVENT") == []

    api.post(_calendars(address), json={"name": "tasks", "components": ["VTODO"]})
    refused = api.post(
        f"{_calendars(address)}/tasks/import", content=vcalendar(event("e@test")), headers=ICS
    )
    assert "e@test" in error(refused, 422, "invalid_calendar")["detail"]


def test_import_refuses_other_media_types_and_large_files(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    path = f"{_calendars(address)}/default/import"
    data = vcalendar(event("x@test"))
    error(api.post(path, content=data, headers={"Content-Type": "text/plain"}), 415)
    error(api.post(path, content=data), 415, "unsupported_media_type")
    padding = "X-PAD:" + "x" * 70 + "\r\n"
    big = vcalendar(event("big@test", extra=padding * (MAX_CALENDAR_IMPORT // 70)))
    assert len(big) > MAX_CALENDAR_IMPORT
    error(api.post(path, content=big, headers=ICS), 413, "too_large")

    def chunks() -> list[bytes]:
        return [big[i : i + 65536] for i in range(0, len(big), 65536)]

    streamed = api.post(path, content=iter(chunks()), headers=ICS)  # no Content-Length
    error(streamed, 413, "too_large")
    assert _export(api_node, address).walk("VEVENT") == []


def test_calendar_cli(
    api_node: ApiNode,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    api_node.use_for_cli(monkeypatch, tmp_path)
    address = api_node.new_user()

    assert main(["calendar", "create", address, "trips", "--display-name", "Trips"]) == 0
    assert capsys.readouterr().out == f"created calendar trips of {address}\n"
    assert main(["calendar", "list", address]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["default", "Calendar", "VEVENT,VTODO"],
        ["trips", "Trips", "VEVENT,VTODO"],
    ]

    source = tmp_path / "in.ics"
    source.write_bytes(vcalendar(ZONE, event("one@test"), event("two@test")))
    assert main(["calendar", "import", address, "trips", str(source)]) == 0
    assert capsys.readouterr().out.endswith(": 2 new, 0 replaced\n")
    target = tmp_path / "out.ics"
    assert main(["calendar", "export", address, "trips", str(target)]) == 0
    exported = Calendar.from_ical(target.read_bytes())
    assert sorted(str(e["UID"]) for e in exported.walk("VEVENT")) == ["one@test", "two@test"]
    assert len(exported.walk("VTIMEZONE")) == 1

    source.write_bytes(vcalendar(event("three@test"), "BEGIN:VEVENT\r\nEND:VEVENT\r\n"))
    assert main(["calendar", "import", address, "trips", str(source)]) == EXIT_REFUSED
    assert "without a UID" in capsys.readouterr().err
    assert main(["calendar", "import", address, "trips", str(tmp_path / "missing.ics")]) == (
        EXIT_REFUSED
    )
    assert "cannot read" in capsys.readouterr().err
    assert len(_export(api_node, address, "trips").walk("VEVENT")) == 2

    assert main(["calendar", "delete", address, "trips"]) == EXIT_REFUSED
    assert "--yes" in capsys.readouterr().err
    assert main(["calendar", "delete", address, "trips", "--yes"]) == 0
    assert capsys.readouterr().out == f"deleted calendar trips of {address}\n"
    assert main(["calendar", "export", address, "trips"]) == EXIT_REFUSED
    assert "no calendar trips" in capsys.readouterr().err
