"""CalDAV PUT and calendar-query rates, LightMail against Radicale, on one calendar.

Two servers run side by side on this machine, each a child process on a free
loopback port with its data in a temporary folder:

- LightMail's DAV listener alone (``python -m lightmail serve``, ``[server]
  workers = 1``), on the embedded default, SQLite + a blob folder, or with
  ``--backend mariadb-seaweedfs`` on MariaDB (the database ``lightmail_bench``
  on 127.0.0.1:3306, its tables dropped and re-created; ``--mysql-url``
  chooses another) and a SeaweedFS started here;
- Radicale from PyPI (the dev group), its ``multifilesystem`` storage, users in
  an htpasswd file with plain passwords, logging at warning.

Each gets the same requests from httpx clients in this process, logged in with
HTTP Basic as one user: MKCALENDAR of one calendar, then ``--events`` PUTs
(default 10,000; ``If-None-Match: *``, about 400 bytes each, spread over the
year 2026, every 50th a weekly series of 10) from ``--clients`` concurrent
clients (default 10) over keep-alive connections, then ``--queries``
calendar-query REPORTs (default 300, Depth 1, the same concurrency), each a
VEVENT time-range over a 30-day window whose start moves through the year,
asking for ``getetag`` as syncing clients do (``--calendar-data`` asks for the
objects too). Every PUT must answer 201 and both servers must find the same
number of events for each window, or the run is marked failed.

It prints, per server, events/s and queries/s with the server process's CPU
seconds per phase, and the ratio LightMail / Radicale of each rate.

    uv run python bench/caldav_radicale.py                      # 10,000 events, a few minutes
    uv run python bench/caldav_radicale.py --events 1000 --queries 100
    uv run python bench/caldav_radicale.py --backend mariadb-seaweedfs --clients 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from lightmail.config import load_settings
from lightmail.runtime import open_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dovecot import free_port
from imap_load import (
    cpu_seconds,
    ensure_database,
    lightmail_env,
    log_tail,
    report_server_errors,
    s3_env,
    terminate,
)

from tests.support.mariadb import mariadb_listening, recreate_schema
from tests.support.s3server import S3Server, running_seaweedfs

USER = "bench@bench.example"
PASSWORD = "bench-password"
CALENDAR = "bench"
BENCH_MYSQL_URL = "mysql+asyncmy://root@127.0.0.1:3306/lightmail_bench"
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = timedelta(days=30)
READY_TIMEOUT = 60.0
_HREF = re.compile(rb"<(?:[\w.-]+:)?href>")


@dataclass(frozen=True, slots=True)
class Server:
    """One CalDAV server under test."""

    name: str
    calendar_url: str  # where the benchmark's calendar is made, ending in /
    pid: int
    log: Path


@dataclass
class Result:
    puts_per_second: float = 0.0
    queries_per_second: float = 0.0
    put_cpu: float = 0.0  # server CPU seconds
    query_cpu: float = 0.0
    found: list[int] = field(default_factory=list)  # events found by each query
    failures: list[str] = field(default_factory=list)


# --- the requests ------------------------------------------------------------------


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def event(index: int, events: int) -> bytes:
    """Event ``index`` of ``events``, the starts spread evenly over the year."""
    start = YEAR_START + timedelta(minutes=index * (365 * 24 * 60 // events))
    series = "RRULE:FREQ=WEEKLY;COUNT=10\r\n" if index % 50 == 0 else ""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//LightMail bench//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:bench-{index}@bench.example\r\nDTSTAMP:20251201T000000Z\r\n"
        f"DTSTART:{_utc(start)}\r\nDURATION:PT1H\r\n{series}"
        f"SUMMARY:Benchmark event {index}\r\n"
        "DESCRIPTION:A meeting the benchmark made\\, to give the object a body of\r\n"
        "  about the size a calendar client writes.\r\n"
        f"LOCATION:Room {index % 40}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def query(number: int, calendar_data: bool) -> bytes:
    """Query ``number``: a 30-day window starting on a day that moves through the year."""
    start = YEAR_START + timedelta(days=(number * 11) % 335)
    data = "<C:calendar-data/>" if calendar_data else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/>{data}</D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{_utc(start)}" end="{_utc(start + WINDOW)}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    ).encode()


def client(clients: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    return httpx.AsyncClient(auth=(USER, PASSWORD), limits=limits, timeout=120.0)


async def concurrently(clients: int, count: int, work: Callable[[int], Awaitable[None]]) -> float:
    """Run ``work(0)`` .. ``work(count - 1)`` on ``clients`` tasks; the seconds it took."""
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            await work(number)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started


async def bench(server: Server, args: argparse.Namespace) -> Result:
    result = Result()
    async with client(args.clients) as http:
        made = await http.request("MKCALENDAR", server.calendar_url)
        if made.status_code != 201:
            result.failures.append(f"MKCALENDAR: {made.status_code} {made.text[:200]}")
            return result
        statuses: dict[int, int] = {}

        async def put(index: int) -> None:
            answer = await http.put(
                f"{server.calendar_url}bench-{index}.ics",
                content=event(index, args.events),
                headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
            )
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        cpu = cpu_seconds(server.pid)
        elapsed = await concurrently(args.clients, args.events, put)
        result.put_cpu = cpu_seconds(server.pid) - cpu
        result.puts_per_second = args.events / elapsed
        if statuses != {201: args.events}:
            result.failures.append(f"PUT answers {statuses}")
        print(
            f"   PUT:   {args.events} events in {elapsed:.1f} s, server CPU {result.put_cpu:.1f} s"
        )

        found = [0] * args.queries

        async def report(number: int) -> None:
            answer = await http.request(
                "REPORT",
                server.calendar_url,
                content=query(number, args.calendar_data),
                headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            )
            if answer.status_code != 207:
                result.failures.append(f"REPORT {number}: {answer.status_code}")
            found[number] = len(_HREF.findall(answer.content))

        await report(0)  # untimed: the first query warms what either server caches
        cpu = cpu_seconds(server.pid)
        elapsed = await concurrently(args.clients, args.queries, report)
        result.query_cpu = cpu_seconds(server.pid) - cpu
        result.queries_per_second = args.queries / elapsed
        result.found = found
        print(
            f"   query: {args.queries} in {elapsed:.1f} s, server CPU {result.query_cpu:.1f} s, "
            f"{sum(found) / len(found):.0f} events per answer"
        )
    return result


# --- the servers ------------------------------------------------------------------


async def _wait_until_answering(
    url: str, process: asyncio.subprocess.Process, log: Path, name: str
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.options(url)).status_code < 500:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not answer within {READY_TIMEOUT:.0f} s:\n{log_tail(log)}")


@asynccontextmanager
async def _child(
    name: str, url: str, command: list[str], env: Mapping[str, str] | None, workdir: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        await _wait_until_answering(url, process, log_path, name)
        yield process
    finally:
        await terminate(process)


@asynccontextmanager
async def running_lightmail(
    backend: str, seaweed: S3Server | None, mysql_url: str
) -> AsyncIterator[Server]:
    """``lightmail serve`` with only its DAV listener; the user made beforehand."""
    with tempfile.TemporaryDirectory(prefix="lightmail-bench-dav-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        extra = {
            "LIGHTMAIL_IMAP_LISTEN": "",
            "LIGHTMAIL_DAV_LISTEN": f"127.0.0.1:{port}",
            "LIGHTMAIL_DAV_TLS_LISTEN": "",
            "LIGHTMAIL_SERVER_WORKERS": "1",
        }
        if backend == "mariadb-seaweedfs":
            assert seaweed is not None
            extra |= s3_env(mysql_url, seaweed)
            await ensure_database(mysql_url)
            await recreate_schema(mysql_url)
        env = lightmail_env(workdir, port, extra)
        async with open_node(load_settings(None, env)) as node:
            await node.accounts.add_domain(USER.partition("@")[2])
            await node.accounts.add_user(USER, PASSWORD)
        name = f"LightMail ({'SQLite + folder' if backend == 'sqlite' else 'MariaDB + SeaweedFS'})"
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "lightmail", "serve"]
        async with _child(name, f"{base}/", command, env, workdir) as process:
            yield Server(
                name, f"{base}/calendars/{USER}/{CALENDAR}/", process.pid, workdir / "server.log"
            )
        report_server_errors(name, workdir / "server.log")


@asynccontextmanager
async def running_radicale(clients: int) -> AsyncIterator[Server]:
    """Radicale with its file storage and one user in a plain htpasswd file."""
    with tempfile.TemporaryDirectory(prefix="radicale-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        (workdir / "users").write_text(f"{USER}:{PASSWORD}\n")
        config = workdir / "config"
        config.write_text(
            "[server]\n"
            f"hosts = 127.0.0.1:{port}\n"
            f"max_connections = {max(20, 2 * clients)}\n"
            "[auth]\n"
            "type = htpasswd\n"
            f"htpasswd_filename = {workdir / 'users'}\n"
            "htpasswd_encryption = plain\n"
            "[rights]\n"
            "type = owner_only\n"
            "[storage]\n"
            f"filesystem_folder = {workdir / 'collections'}\n"
            "[logging]\n"
            "level = warning\n"
        )
        name = "Radicale (multifilesystem)"
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "radicale", "--config", str(config)]
        async with _child(name, f"{base}/", command, None, workdir) as process:
            yield Server(name, f"{base}/{USER}/{CALENDAR}/", process.pid, workdir / "server.log")


# --- main ------------------------------------------------------------------------


async def run(args: argparse.Namespace, seaweed: S3Server | None) -> None:
    results: dict[str, Result] = {}
    print(f"== LightMail, {args.backend} ==")
    async with running_lightmail(args.backend, seaweed, args.mysql_url) as server:
        lightmail = await bench(server, args)
        results[server.name] = lightmail
    radicale = None
    if args.radicale:
        print("== Radicale ==")
        async with running_radicale(args.clients) as server:
            radicale = await bench(server, args)
            results[server.name] = radicale
    if radicale is not None and lightmail.found and radicale.found:
        pairs = zip(lightmail.found, radicale.found, strict=True)
        differ = [n for n, (mine, theirs) in enumerate(pairs) if mine != theirs]
        if differ:
            n = differ[0]
            lightmail.failures.append(
                f"{len(differ)} queries found other events than Radicale's, the first "
                f"#{n}: {lightmail.found[n]} against {radicale.found[n]}"
            )
    summary(args, results, lightmail, radicale)


def summary(
    args: argparse.Namespace,
    results: Mapping[str, Result],
    lightmail: Result,
    radicale: Result | None,
) -> None:
    print(
        f"\n== summary: {args.events} events in one calendar, {args.queries} calendar-queries "
        f"over 30 days, {args.clients} clients =="
    )
    width = max(len(name) for name in results) + 2
    print(f"{'server':<{width}}{'events/s':>10}{'queries/s':>11}{'CPU PUT':>9}{'CPU query':>11}")
    for name, result in results.items():
        mark = "!" if result.failures else ""
        print(
            f"{name + mark:<{width}}{result.puts_per_second:>10.1f}"
            f"{result.queries_per_second:>11.1f}{result.put_cpu:>8.1f}s{result.query_cpu:>10.1f}s"
        )
    if radicale is not None and radicale.puts_per_second and radicale.queries_per_second:
        print(
            f"{'ratio LightMail / Radicale':<{width}}"
            f"{lightmail.puts_per_second / radicale.puts_per_second:>10.2f}"
            f"{lightmail.queries_per_second / radicale.queries_per_second:>11.2f}"
        )
    for name, result in results.items():
        for failure in result.failures:
            print(f"!! {name}: {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="PUTs into one calendar")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients (10)")
    parser.add_argument("--queries", type=int, default=300, help="calendar-queries (300)")
    parser.add_argument(
        "--calendar-data", action="store_true", help="the queries ask for the objects too"
    )
    parser.add_argument(
        "--backend", choices=["sqlite", "mariadb-seaweedfs"], default="sqlite", help="LightMail's"
    )
    parser.add_argument("--radicale", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--mysql-url", default=BENCH_MYSQL_URL)
    args = parser.parse_args()
    if not 10 <= args.events <= 1_000_000:
        parser.error("--events must be from 10 to 1000000")
    if not 1 <= args.clients <= 500 or not 1 <= args.queries <= 100_000:
        parser.error("--clients must be from 1 to 500, --queries from 1 to 100000")
    if args.backend == "mariadb-seaweedfs":
        if not mariadb_listening():
            parser.error("--backend mariadb-seaweedfs needs MariaDB on 127.0.0.1:3306")
        with running_seaweedfs() as seaweed:
            asyncio.run(run(args, seaweed))
    else:
        asyncio.run(run(args, None))


if __name__ == "__main__":
    main()
