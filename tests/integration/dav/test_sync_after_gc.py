"""sync-collection after the garbage collector purged removals (RFC 6578 section 3.7)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from lightmail.accounts.service import Accounts
from lightmail.clock import utcnow
from lightmail.config import GcSettings
from lightmail.gc import GarbageCollector
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.db.engine import Database
from tests.conftest import Backend, open_blobs
from tests.integration.dav.conftest import PASSWORD, running_dav

SYNC = (
    '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}'
    "</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
    "</D:sync-collection>"
)


def event(uid: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.fixture
async def own_backend(
    backend_name: str, own_storage: tuple[str, dict[str, Any]]
) -> AsyncIterator[Backend]:
    """A backend on a database of the test's own: the GC works on all of it."""
    url, spec = own_storage
    db = Database(url)
    await db.upgrade()
    blobs = open_blobs(spec)
    store = MailStore(db, blobs, InProcessNotificationBus())
    accounts = Accounts(store)
    domain = await accounts.add_domain(f"d{uuid.uuid4().hex[:8]}.example")
    try:
        yield Backend(backend_name, db, blobs, store, accounts, domain)
    finally:
        await blobs.close()
        await db.close()


async def test_a_full_sync_lists_every_object_and_an_old_token_is_refused(
    own_backend: Backend, tmp_path: Path
) -> None:
    user = await own_backend.new_user()
    async with (
        running_dav(own_backend, tmp_path) as dav,
        httpx.AsyncClient(auth=(user.address, PASSWORD)) as http,
    ):
        calendar = f"{dav.url}/calendars/{user.address}/default/"
        await http.put(f"{calendar}kept.ics", content=event("kept"))
        first = await http.request("REPORT", calendar, content=SYNC.format(token=""))
        old_token = first.text.split("<D:sync-token>")[1].split("<")[0]
        await http.put(f"{calendar}gone.ics", content=event("gone"))
        await http.delete(f"{calendar}gone.ics")
        settings = GcSettings(
            enabled=True, interval=300, batch_size=100, retention=0.0, orphan_grace=3600.0
        )
        gc = GarbageCollector(
            own_backend.db, own_backend.blobs, settings, clock=lambda: utcnow() + timedelta(1)
        )
        assert (await gc.run()).calendar_objects_purged == 1
        stale = await http.request("REPORT", calendar, content=SYNC.format(token=old_token))
        full = await http.request("REPORT", calendar, content=SYNC.format(token=""))
    assert stale.status_code == 403
    assert b"valid-sync-token" in stale.content
    assert full.status_code == 207
    assert b"kept.ics" in full.content
    assert b"gone.ics" not in full.content
