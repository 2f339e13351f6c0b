"""vdirsyncer from Debian syncing a folder of ``.ics`` files with CalDAV, both ways.

The server runs in the test's event loop; vdirsyncer runs as a process with a
config in ``tmp_path``: a ``filesystem`` storage (one folder per collection, one
file per event, named after its UID) and a ``caldav`` storage logging in over
plain HTTP on loopback, which the default ``[dav] plaintext_networks`` allows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lightmail.accounts.service import User
from tests.integration.dav.conftest import PASSWORD, DavTarget
from tests.support.metrics import Changes
from tests.support.require import require

REQUESTS = "lightmail_dav_requests_total"
_WRITES = (("PUT", "201"), ("PUT", "204"), ("DELETE", "204"), ("MKCOL", "201"))


def event(uid: str, start: str, summary: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//LightMail tests//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.fixture(autouse=True)
def _vdirsyncer_installed() -> None:
    require("vdirsyncer", shutil.which("vdirsyncer") is not None, "run scripts/system-packages.sh")


@dataclass
class Vdirsyncer:
    """One user's pair: ``folder/<collection>/<uid>.ics`` against the user's calendars."""

    dav: DavTarget
    user: User
    root: Path

    @property
    def folder(self) -> Path:
        return self.root / "calendars"

    def write_config(self) -> Path:
        config = self.root / "config"
        self.folder.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "[general]\n"
            f"status_path = {json.dumps(str(self.root / 'status'))}\n"
            "[pair cal]\n"
            'a = "cal_local"\n'
            'b = "cal_remote"\n'
            'collections = ["from a", "from b"]\n'
            "[storage cal_local]\n"
            'type = "filesystem"\n'
            f"path = {json.dumps(str(self.folder))}\n"
            'fileext = ".ics"\n'
            "[storage cal_remote]\n"
            'type = "caldav"\n'
            f"url = {json.dumps(self.dav.url + '/')}\n"
            f"username = {json.dumps(self.user.address)}\n"
            f"password = {json.dumps(PASSWORD)}\n"
        )
        return config

    async def run(self, *args: str) -> str:
        """``vdirsyncer <args>``, answering yes to every question; its output."""
        process = await asyncio.create_subprocess_exec(
            "vdirsyncer",
            "--config",
            str(self.write_config()),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"HOME": str(self.root), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        output, _ = await asyncio.wait_for(process.communicate(b"y\n" * 20), timeout=120)
        text = output.decode(errors="replace")
        assert process.returncode == 0, text
        return text

    async def sync(self) -> str:
        await self.run("discover")
        return await self.run("sync")

    def files(self, collection: str = "default") -> dict[str, bytes]:
        folder = self.folder / collection
        return {path.name: path.read_bytes() for path in sorted(folder.glob("*.ics"))}

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(path.relative_to(self.folder)): path.read_bytes()
            for path in sorted(self.folder.rglob("*"))
            if path.is_file()
        }

    def calendar_url(self, collection: str = "default") -> str:
        return f"{self.dav.url}/calendars/{self.user.address}/{collection}/"

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(auth=(self.user.address, PASSWORD))


@pytest.fixture
async def pair(dav: DavTarget, tmp_path: Path) -> Vdirsyncer:
    return Vdirsyncer(dav, await dav.new_user(), tmp_path / "vdirsyncer")


async def test_events_in_the_folder_are_uploaded_byte_for_byte(pair: Vdirsyncer) -> None:
    (pair.folder / "default").mkdir(parents=True)
    sent = {
        "lunch-1.ics": event("lunch-1", "20260310T120000Z", "Lunch"),
        "review-2.ics": event("review-2", "20260311T090000Z", "Review"),
    }
    for name, data in sent.items():
        (pair.folder / "default" / name).write_bytes(data)

    await pair.sync()

    async with pair.http() as http:
        got = {name: (await http.get(pair.calendar_url() + name)) for name in sent}
    assert {name: answer.content for name, answer in got.items()} == sent


async def test_an_event_made_on_the_server_lands_in_the_folder(pair: Vdirsyncer) -> None:
    data = event("dentist-3", "20260303T150000Z", "Dentist")
    async with pair.http() as http:
        put = await http.put(pair.calendar_url() + "dentist-3.ics", content=data)
    assert put.status_code == 201

    await pair.sync()

    assert pair.files() == {"dentist-3.ics": data}


async def test_a_folder_of_its_own_becomes_a_new_calendar(pair: Vdirsyncer) -> None:
    (pair.folder / "work").mkdir(parents=True)
    data = event("standup-4", "20260105T090000Z", "Standup")
    (pair.folder / "work" / "standup-4.ics").write_bytes(data)

    await pair.sync()

    async with pair.http() as http:
        got = await http.get(pair.calendar_url("work") + "standup-4.ics")
    assert got.content == data
    assert pair.files("default") == {}


async def test_edits_and_deletes_on_each_side_propagate(pair: Vdirsyncer) -> None:
    (pair.folder / "default").mkdir(parents=True)
    for uid in ("local-edit", "local-delete"):
        (pair.folder / "default" / f"{uid}.ics").write_bytes(event(uid, "20260401T080000Z", uid))
    async with pair.http() as http:
        for uid in ("server-edit", "server-delete"):
            put = await http.put(
                pair.calendar_url() + f"{uid}.ics", content=event(uid, "20260402T080000Z", uid)
            )
            assert put.status_code == 201
    await pair.sync()
    assert len(pair.files()) == 4

    local_edit = event("local-edit", "20260401T093000Z", "moved here")
    (pair.folder / "default" / "local-edit.ics").write_bytes(local_edit)
    (pair.folder / "default" / "local-delete.ics").unlink()
    server_edit = event("server-edit", "20260402T093000Z", "moved there")
    async with pair.http() as http:
        url = pair.calendar_url()
        assert (await http.put(url + "server-edit.ics", content=server_edit)).status_code == 204
        assert (await http.delete(url + "server-delete.ics")).status_code == 204
    await pair.sync()

    assert pair.files() == {"local-edit.ics": local_edit, "server-edit.ics": server_edit}
    async with pair.http() as http:
        on_server = {
            name: (await http.get(pair.calendar_url() + name))
            for name in ("local-edit.ics", "local-delete.ics", "server-edit.ics")
        }
    assert on_server["local-edit.ics"].content == local_edit
    assert on_server["local-delete.ics"].status_code == 404
    assert on_server["server-edit.ics"].content == server_edit


async def test_a_second_sync_changes_nothing(pair: Vdirsyncer) -> None:
    (pair.folder / "default").mkdir(parents=True)
    (pair.folder / "default" / "here.ics").write_bytes(event("here", "20260501T080000Z", "A"))
    (pair.folder / "work").mkdir()
    (pair.folder / "work" / "work.ics").write_bytes(event("work", "20260502T080000Z", "B"))
    async with pair.http() as http:
        put = await http.put(
            pair.calendar_url() + "there.ics", content=event("there", "20260503T080000Z", "C")
        )
        assert put.status_code == 201
    first = Changes()
    await pair.sync()
    before = pair.snapshot()
    assert first(REQUESTS, method="PUT", status="201") == 2  # the metric sees vdirsyncer's
    assert first(REQUESTS, method="MKCOL", status="201") == 1
    changes = Changes()

    output = await pair.sync()

    assert pair.snapshot() == before
    assert sorted(before) == ["default/here.ics", "default/there.ics", "work/work.ics"]
    writes = {key: changes(REQUESTS, method=key[0], status=key[1]) for key in _WRITES}
    assert writes == dict.fromkeys(_WRITES, 0)
    assert "Copying" not in output, output
    assert "Deleting" not in output, output
