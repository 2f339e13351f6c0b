"""A user's address books through the API and the CLI: list, create, delete, import and
export ``.vcf``."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightmail.cli import EXIT_REFUSED, main
from tests.integration.api.conftest import MAX_CALENDAR_IMPORT, ApiNode, user_path
from tests.integration.api.test_accounts import error

VCF = {"Content-Type": "text/vcard"}


def card(uid: str, fn: str = "Someone", extra: str = "") -> bytes:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\n{extra}END:VCARD\r\n".encode()


def _books(address: str) -> str:
    return f"{user_path(address)}/addressbooks"


def _exported_uids(api_node: ApiNode, address: str, name: str = "default") -> list[str]:
    response = api_node.api.get(f"{_books(address)}/{name}/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/vcard")
    assert response.headers["content-disposition"].endswith(f'{name}.vcf"')
    return sorted(
        line.removeprefix("UID:") for line in response.text.splitlines() if line.startswith("UID:")
    )


def test_list_create_get_and_delete_address_books(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    listed = api.get(_books(address)).json()
    assert [b["name"] for b in listed["items"]] == ["default"]
    created = api.post(_books(address), json={"name": "work", "display_name": "Work"})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "name": "work",
        "display_name": "Work",
        "description": "",
        "sync_token": 1,
    }
    error(api.post(_books(address), json={"name": "work"}), 409, "already_exists")
    error(api.post(_books(address), json={"name": "a/b"}), 422)
    # A calendar of the same name is another collection.
    assert api.post(f"{user_path(address)}/calendars", json={"name": "work"}).status_code == 201
    assert api.get(f"{_books(address)}/work").json()["display_name"] == "Work"
    assert api.delete(f"{_books(address)}/work").status_code == 204
    error(api.get(f"{_books(address)}/work"), 404, "not_found")
    assert api.get(f"{user_path(address)}/calendars/work").status_code == 200


def test_import_replaces_by_uid_and_refuses_bad_files(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    path = f"{_books(address)}/default/import"
    first = api.post(path, content=card("a") + card("b"), headers=VCF)
    assert first.json() == {"created": 2, "replaced": 0}
    again = api.post(path, content=card("a", "Renamed") + card("c"), headers=VCF)
    assert again.json() == {"created": 1, "replaced": 1}
    assert _exported_uids(api_node, address) == ["a", "b", "c"]

    no_uid = b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nEND:VCARD\r\n"
    error(api.post(path, content=card("d") + no_uid, headers=VCF), 422, "invalid_vcard")
    error(api.post(path, content=b"\xff\xfe", headers=VCF), 422, "invalid_vcard")
    error(api.post(path, content=card("d"), headers={"Content-Type": "text/calendar"}), 415)
    big = card("big", extra=("NOTE:" + "x" * 70 + "\r\n") * (MAX_CALENDAR_IMPORT // 70))
    error(api.post(path, content=big, headers=VCF), 413, "too_large")
    assert _exported_uids(api_node, address) == ["a", "b", "c"]


def test_addressbook_cli(
    api_node: ApiNode,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    api_node.use_for_cli(monkeypatch, tmp_path)
    address = api_node.new_user()

    assert main(["addressbook", "create", address, "team", "--display-name", "Team"]) == 0
    assert capsys.readouterr().out == f"created address book team of {address}\n"
    assert main(["addressbook", "list", address]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["default", "Contacts", "VCARD"],
        ["team", "Team", "VCARD"],
    ]
    source = tmp_path / "in.vcf"
    source.write_bytes(card("one") + card("two"))
    assert main(["addressbook", "import", address, "team", str(source)]) == 0
    assert capsys.readouterr().out.endswith(": 2 new, 0 replaced\n")
    target = tmp_path / "out.vcf"
    assert main(["addressbook", "export", address, "team", str(target)]) == 0
    assert target.read_bytes().count(b"BEGIN:VCARD") == 2
    assert capsys.readouterr().out.startswith("exported address book team")
    assert main(["calendar", "list", address]) == 0
    (calendar,) = capsys.readouterr().out.splitlines()  # address books are not calendars
    assert calendar.startswith("default\tCalendar\t")

    assert main(["addressbook", "delete", address, "team"]) == EXIT_REFUSED
    assert "--yes" in capsys.readouterr().err
    assert main(["addressbook", "delete", address, "team", "--yes"]) == 0
    assert capsys.readouterr().out == f"deleted address book team of {address}\n"
    assert main(["addressbook", "export", address, "team"]) == EXIT_REFUSED
    assert "no address book team" in capsys.readouterr().err
