"""CalDAV under ``serve --workers 2``: both workers serve the shared listener."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.integration.test_workers import PASSWORD, new_user, paused, started
from tests.support.serving import serving, storage_env

EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:w\r\n"
    b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\nSUMMARY:Workers\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def test_an_event_put_through_one_worker_is_read_through_the_other(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    env = storage_env(*storage)
    address = await new_user(env)
    with serving(tmp_path, env, "--workers", "2") as served:
        started(served)
        pids = served.workers()
        url = f"http://127.0.0.1:{served.port('dav')}/calendars/{address}/default/w.ics"
        with paused(pids[1]):  # worker 0 takes the PUT
            async with httpx.AsyncClient(auth=(address, PASSWORD), timeout=30) as http:
                put = await http.put(url, content=EVENT)
        with paused(pids[0]):  # worker 1 the GET
            async with httpx.AsyncClient(auth=(address, PASSWORD), timeout=30) as http:
                got = await http.get(url)
        assert served.stop() == 0, served.log
    assert put.status_code == 201
    assert (got.status_code, got.content) == (200, EVENT)
    assert got.headers["etag"] == put.headers["etag"]
    assert "Traceback" not in served.log
