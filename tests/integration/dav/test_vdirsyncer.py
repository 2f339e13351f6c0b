"""vdirsyncer from Debian syncing a folder of files with CalDAV and with CardDAV, both ways.

The server runs in the test's event loop; vdirsyncer runs as a process with a
config in ``tmp_path``: a ``filesystem`` storage (one folder per collection, one
file per object, named after its UID, ``.ics`` or ``.vcf``) and a ``caldav`` or
``carddav`` storage logging in over plain HTTP on loopback, which the default
``[dav] plaintext_networks`` allows. Every test runs for both kinds of collection
(``kind``) on both backends: vdirsyncer takes the same path through both, and so
does the server.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
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


def event(uid: str, summary: str, start: str = "20260310T120000Z") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//LightMail tests//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def contact(uid: str, name: str) -> bytes:
    """A vCard 3.0, as most address books still write them."""
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
        f"EMAIL;TYPE=INTERNET:{uid}@example.org\r\nEND:VCARD\r\n"
    ).encode()


@dataclass(frozen=True)
class Kind:
    """What differs between syncing calendars and address books."""

    storage: str  # vdirsyncer's storage type
    space: str  # the DAV tree: /calendars/ or /addressbooks/
    fileext: str
    resourcetype: str  # what a collection of the kind is, besides DAV:collection
    make: Callable[[str, str], bytes]  # (uid, text) -> an object's bytes


KINDS = {
    "caldav": Kind("caldav", "calendars", ".ics", "{urn:ietf:params:xml:ns:caldav}calendar", event),
    "carddav": Kind(
        "carddav", "addressbooks", ".vcf", "{urn:ietf:params:xml:ns:carddav}addressbook", contact
    ),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[request.param]


@pytest.fixture(autouse=True)
def _vdirsyncer_installed() -> None:
    require("vdirsyncer", shutil.which("vdirsyncer") is not None, "run scripts/system-packages.sh")


@dataclass
class Vdirsyncer:
    """One user's pair: ``folder/<collection>/<uid><fileext>`` against the user's
    calendars or address books."""

    dav: DavTarget
    user: User
    root: Path
    kind: Kind
    pair_options: str = ""  # more lines for the [pair both] section

    @property
    def folder(self) -> Path:
        return self.root / self.kind.space

    def name(self, uid: str) -> str:
        return uid + self.kind.fileext

    def write_config(self) -> Path:
        config = self.root / "config"
        self.folder.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "[general]\n"
            f"status_path = {json.dumps(str(self.root / 'status'))}\n"
            "[pair both]\n"
            'a = "local"\n'
            'b = "remote"\n'
            'collections = ["from a", "from b"]\n'
            f"{self.pair_options}"
            "[storage local]\n"
            'type = "filesystem"\n'
            f"path = {json.dumps(str(self.folder))}\n"
            f"fileext = {json.dumps(self.kind.fileext)}\n"
            "[storage remote]\n"
            f"type = {json.dumps(self.kind.storage)}\n"
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

    def write(self, collection: str, uid: str, data: bytes) -> None:
        (self.folder / collection).mkdir(parents=True, exist_ok=True)
        (self.folder / collection / self.name(uid)).write_bytes(data)

    def files(self, collection: str = "default") -> dict[str, bytes]:
        folder = self.folder / collection
        return {
            path.name: path.read_bytes() for path in sorted(folder.glob("*" + self.kind.fileext))
        }

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(path.relative_to(self.folder)): path.read_bytes()
            for path in sorted(self.folder.rglob("*"))
            if path.is_file()
        }

    def collection_url(self, collection: str = "default") -> str:
        return f"{self.dav.url}/{self.kind.space}/{self.user.address}/{collection}/"

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(auth=(self.user.address, PASSWORD))


@pytest.fixture
async def pair(dav: DavTarget, kind: Kind, tmp_path: Path) -> Vdirsyncer:
    return Vdirsyncer(dav, await dav.new_user(), tmp_path / "vdirsyncer", kind)


async def test_objects_in_the_folder_are_uploaded_byte_for_byte(pair: Vdirsyncer) -> None:
    sent = {
        uid: pair.kind.make(uid, text) for uid, text in (("lunch-1", "Lunch"), ("rev-2", "Rev"))
    }
    for uid, data in sent.items():
        pair.write("default", uid, data)

    await pair.sync()

    async with pair.http() as http:
        got = {uid: (await http.get(pair.collection_url() + pair.name(uid))) for uid in sent}
    assert {uid: answer.content for uid, answer in got.items()} == sent


async def test_an_object_made_on_the_server_lands_in_the_folder(pair: Vdirsyncer) -> None:
    data = pair.kind.make("dentist-3", "Dentist")
    async with pair.http() as http:
        put = await http.put(pair.collection_url() + pair.name("dentist-3"), content=data)
    assert put.status_code == 201

    await pair.sync()

    assert pair.files() == {pair.name("dentist-3"): data}


async def test_a_folder_of_its_own_becomes_a_new_collection(pair: Vdirsyncer) -> None:
    data = pair.kind.make("standup-4", "Standup")
    pair.write("work", "standup-4", data)

    await pair.sync()

    async with pair.http() as http:
        got = await http.get(pair.collection_url("work") + pair.name("standup-4"))
        kinds = await http.request(
            "PROPFIND",
            pair.collection_url("work"),
            headers={"Depth": "0"},
            content=b'<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>',
        )
    assert got.content == data
    assert pair.files("default") == {}
    assert kinds.status_code == 207, kinds.text
    found = ET.fromstring(kinds.content).iterfind(".//{DAV:}resourcetype/*")  # noqa: S314 (ours)
    assert {node.tag for node in found} == {"{DAV:}collection", pair.kind.resourcetype}


async def test_edits_and_deletes_on_each_side_propagate(pair: Vdirsyncer) -> None:
    make, name = pair.kind.make, pair.name
    for uid in ("local-edit", "local-delete"):
        pair.write("default", uid, make(uid, uid))
    async with pair.http() as http:
        for uid in ("server-edit", "server-delete"):
            put = await http.put(pair.collection_url() + name(uid), content=make(uid, uid))
            assert put.status_code == 201
    await pair.sync()
    assert len(pair.files()) == 4

    local_edit = make("local-edit", "moved here")
    pair.write("default", "local-edit", local_edit)
    (pair.folder / "default" / name("local-delete")).unlink()
    server_edit = make("server-edit", "moved there")
    async with pair.http() as http:
        url = pair.collection_url()
        assert (await http.put(url + name("server-edit"), content=server_edit)).status_code == 204
        assert (await http.delete(url + name("server-delete"))).status_code == 204
    await pair.sync()

    assert pair.files() == {name("local-edit"): local_edit, name("server-edit"): server_edit}
    async with pair.http() as http:
        on_server = {
            uid: (await http.get(pair.collection_url() + name(uid)))
            for uid in ("local-edit", "local-delete", "server-edit")
        }
    assert on_server["local-edit"].content == local_edit
    assert on_server["local-delete"].status_code == 404
    assert on_server["server-edit"].content == server_edit


async def test_a_second_sync_changes_nothing(pair: Vdirsyncer) -> None:
    make = pair.kind.make
    pair.write("default", "here", make("here", "A"))
    pair.write("work", "work", make("work", "B"))
    async with pair.http() as http:
        put = await http.put(pair.collection_url() + pair.name("there"), content=make("there", "C"))
        assert put.status_code == 201
    first = Changes()
    await pair.sync()
    before = pair.snapshot()
    assert first(REQUESTS, method="PUT", status="201") == 2  # the metric sees vdirsyncer's
    assert first(REQUESTS, method="MKCOL", status="201") == 1
    changes = Changes()

    output = await pair.sync()

    assert pair.snapshot() == before
    assert sorted(before) == [
        f"default/{pair.name('here')}",
        f"default/{pair.name('there')}",
        f"work/{pair.name('work')}",
    ]
    writes = {key: changes(REQUESTS, method=key[0], status=key[1]) for key in _WRITES}
    assert writes == dict.fromkeys(_WRITES, 0)
    assert "Copying" not in output, output
    assert "Deleting" not in output, output


async def test_metasync_carries_the_display_name_each_way(pair: Vdirsyncer) -> None:
    pair.write("default", "a", pair.kind.make("a", "A"))
    await pair.sync()
    pair.pair_options = 'metadata = ["displayname"]\nconflict_resolution = "a wins"\n'
    (pair.folder / "default" / "displayname").write_text("Mine")

    await pair.run("metasync")

    propfind = b'<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>'
    async with pair.http() as http:
        named = await http.request(
            "PROPFIND", pair.collection_url(), headers={"Depth": "0"}, content=propfind
        )
        assert named.status_code == 207, named.text
        assert ET.fromstring(named.content).findtext(".//{DAV:}displayname") == "Mine"  # noqa: S314
        renamed = await http.request(
            "PROPPATCH",
            pair.collection_url(),
            content=b'<propertyupdate xmlns="DAV:"><set><prop><displayname>Theirs</displayname>'
            b"</prop></set></propertyupdate>",
        )
        assert renamed.status_code == 207, renamed.text

    await pair.run("metasync")

    assert (pair.folder / "default" / "displayname").read_text() == "Theirs"
