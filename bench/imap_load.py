"""IMAP load: concurrent clients doing a realistic session mix, LightMail against Dovecot.

Each of ``--clients`` clients (default 20) repeats a round until ``--duration``
seconds have passed (or for ``--rounds`` rounds): connect, LOGIN, SELECT
INBOX, FETCH 1:50 (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO
SUBJECT DATE)]), FETCH one whole message (BODY.PEEK[]), STORE +FLAGS (\\Seen)
on one message, UID SEARCH (UNSEEN or SUBJECT, alternately), APPEND a ~5 KB
message, LOGOUT. The client is a small raw IMAP client on asyncio streams, in
this process. It prints the operations per second and the p50/p99 latency of
each operation for each target, and the ratio of LightMail's ops/s to
Dovecot's.

Targets, each started here as a child process on a free loopback port and
seeded through IMAP APPEND with the same ``--messages`` messages per user
(``--users`` users; client i logs in as user i mod users):

- LightMail on SQLite + filesystem (``--backend sqlite``), once for each
  ``--workers`` value (``[server] workers``; default ``1,auto``),
- LightMail on MariaDB + SeaweedFS (``--backend s3``; a SeaweedFS started
  here, and the database ``lightmail_bench`` on 127.0.0.1:3306, created if
  missing, whose tables are dropped and re-created; not ``test``, whose tables
  a test run going on at the same time would drop under the benchmark;
  ``--mysql-url`` chooses another),
- the same with ``[blobs] cache_folder`` (``--backend s3-copies``, or
  ``all``): the seeding APPENDs leave a local copy of each message,
- Dovecot (``dovecot-imapd``, configured in a temporary folder, maildir).

Both servers verify the same argon2id password hash (argon2-cffi's defaults,
which LightMail uses), and both remember a verified password for 5 minutes
(LightMail's ``[auth] cache_ttl``, Dovecot's auth cache), so only a client's
first LOGIN is dominated by hashing.

    uv run python bench/imap_load.py                        # both backends + Dovecot, 30 s each
    uv run python bench/imap_load.py --clients 10 --duration 15
    uv run python bench/imap_load.py --backend sqlite --workers 1,2,auto --clients 50
    uv run python bench/imap_load.py --backend sqlite --no-dovecot --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import make_url

from lightmail.config import load_settings
from lightmail.config.values import worker_count
from lightmail.runtime import open_node
from lightmail.storage.db.engine import Database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dovecot import (
    dovecot_missing,
    free_port,
    process_tree,
    running_dovecot,
    tree_memory_kb,
)

from tests.support.mariadb import mariadb_listening, recreate_schema
from tests.support.s3server import S3Server, running_seaweedfs

DOMAIN = "bench.example"
BENCH_MYSQL_URL = "mysql+asyncmy://root@127.0.0.1:3306/lightmail_bench"
COMMAND_TIMEOUT = 60.0  # seconds; one command slower than this is an error
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")
_EXISTS = re.compile(rb"\* (\d+) EXISTS")

# --- a small IMAP client -------------------------------------------------------


class ImapError(Exception):
    """The server answered something the client did not expect, or went away."""


@dataclass(slots=True)
class Response:
    status: bytes  # OK, NO or BAD
    line: bytes  # the tagged line
    untagged: list[bytes]


class ImapClient:
    """One IMAP connection: commands one at a time, literals read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._tag = 0
        self._deflate: zlib._Compress | None = None  # after compress()
        self._inflating: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, host: str, port: int) -> ImapClient:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            client = cls(reader, writer)
            try:
                greeting = await client.read_line()
            except BaseException:
                client.abort()
                raise
        if not greeting.startswith(b"* OK"):
            client.abort()
            raise ImapError(f"greeting {greeting!r}")
        return client

    async def read_line(self) -> bytes:
        """One response line, with the literals it carries."""
        parts = []
        while True:
            try:
                line = await self.reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError as error:
                raise ImapError("connection closed") from error
            parts.append(line)
            literal = _LITERAL.search(line)
            if literal is None:
                return b"".join(parts)
            parts.append(await self.reader.readexactly(int(literal[1])))

    def _next_tag(self) -> bytes:
        self._tag += 1
        return b"A%d" % self._tag

    async def command(self, line: bytes, literal: bytes | None = None) -> Response:
        """Send ``line`` (and a synchronizing literal), read up to the tagged response."""
        async with asyncio.timeout(COMMAND_TIMEOUT):
            tag = self._next_tag()
            untagged: list[bytes] = []
            if literal is None:
                self.send(tag + b" " + line + b"\r\n")
            else:
                self.send(tag + b" " + line + b" {%d}\r\n" % len(literal))
                await self.writer.drain()
                while True:
                    answer = await self.read_line()
                    if answer.startswith(b"+"):
                        break
                    if answer.startswith(tag + b" "):
                        return Response(answer.split(b" ", 2)[1], answer, untagged)
                    untagged.append(answer)
                self.send(literal + b"\r\n")
            await self.writer.drain()
            while True:
                answer = await self.read_line()
                if answer.startswith(tag + b" "):
                    return Response(answer.split(b" ", 2)[1], answer, untagged)
                untagged.append(answer)

    async def ok(self, line: bytes, literal: bytes | None = None) -> Response:
        response = await self.command(line, literal)
        if response.status != b"OK":
            raise ImapError(f"{line.split(b' ')[0].decode()}: {response.line!r}")
        return response

    async def start_idle(self) -> None:
        """IDLE, up to the server's continuation request."""
        async with asyncio.timeout(COMMAND_TIMEOUT):
            tag = self._next_tag()
            self.send(tag + b" IDLE\r\n")
            await self.writer.drain()
            while True:
                answer = await self.read_line()
                if answer.startswith(b"+"):
                    return
                if answer.startswith(tag + b" "):
                    raise ImapError(f"IDLE: {answer!r}")

    async def login(self, user: str, password: str) -> Response:
        return await self.command(b"LOGIN " + quote(user) + b" " + quote(password))

    def send(self, data: bytes) -> None:
        """Queue ``data`` (deflated once COMPRESS is on); ``writer.drain()`` sends it."""
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.writer.write(data)

    async def compress(self) -> None:
        """COMPRESS DEFLATE (RFC 4978): what follows is deflated both ways; the
        responses are inflated by a task into a reader of their own."""
        await self.ok(b"COMPRESS DEFLATE")
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        raw, self.reader = self.reader, asyncio.StreamReader(limit=1 << 20)
        self._inflating = asyncio.create_task(_inflate(raw, self.reader))

    def abort(self) -> None:
        if self._inflating is not None:
            self._inflating.cancel()
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(5):
                await self.writer.wait_closed()


async def _inflate(raw: asyncio.StreamReader, into: asyncio.StreamReader) -> None:
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    while data := await raw.read(65536):
        into.feed_data(inflate.decompress(data))
    into.feed_eof()


def quote(text: str) -> bytes:
    return b'"' + text.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def exists_of(response: Response) -> int:
    for line in response.untagged:
        match = _EXISTS.match(line)
        if match is not None:
            return int(match[1])
    raise ImapError("no EXISTS in the SELECT response")


# --- messages ------------------------------------------------------------------

_WORDS = [
    "account",
    "agenda",
    "budget",
    "coffee",
    "deadline",
    "draft",
    "estimate",
    "feedback",
    "forecast",
    "holiday",
    "meeting",
    "minutes",
    "notes",
    "office",
    "patch",
    "plan",
    "project",
    "quarter",
    "release",
    "report",
    "review",
    "roadmap",
    "sales",
    "schedule",
    "ship",
    "status",
    "summary",
    "team",
    "ticket",
    "travel",
    "update",
    "weekly",
]
SUBJECT_WORD = "invoice"  # in about a third of the subjects; searched with UID SEARCH SUBJECT
_SUBJECT_WORDS = [*_WORDS[:9], SUBJECT_WORD]


def make_message(rng: random.Random, to: str, index: int, size: int) -> bytes:
    """A plain-text message of about ``size`` bytes with realistic headers."""
    sender = f"{rng.choice(_WORDS)}.{rng.choice(_WORDS)}@example.org"
    subject = " ".join(rng.choice(_SUBJECT_WORDS) for _ in range(4)).capitalize()
    date = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=7 * index)
    head = (
        f"Return-Path: <{sender}>\r\n"
        f"From: {sender.split('@')[0].title()} <{sender}>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {format_datetime(date)}\r\n"
        f"Message-ID: <{rng.getrandbits(64):016x}.{index}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    lines = []
    length = len(head)
    while length < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 12))).capitalize() + "."
        lines.append(line)
        length += len(line) + 2
    return head + "\r\n".join(lines).encode() + b"\r\n"


def user_address(index: int) -> str:
    return f"user{index}@{DOMAIN}"


def user_password(index: int) -> str:
    return f"bench-password-{index}"


# --- servers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    host: str
    port: int
    pid: int  # the server process; for Dovecot the master, with its children


def cpu_seconds(root: int) -> float:
    """CPU time of ``root``, its live descendants and their waited-for children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / ticks


SERVICES = ("mariadbd", "weed", "clamd")  # what a LightMail run may lean on


def services_cpu() -> dict[str, float]:
    """CPU time of every running process named in :data:`SERVICES`, by name: what a
    run on MariaDB + SeaweedFS (or with clamd) also costs the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = dict.fromkeys(SERVICES, 0.0)
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        name = stat.partition("(")[2].rpartition(")")[0]
        if name in total:
            fields = stat.rpartition(")")[2].split()
            total[name] += sum(int(value) for value in fields[11:13]) / ticks  # utime stime
    return total


def services_line(before: Mapping[str, float], after: Mapping[str, float], count: int) -> str:
    """``mariadbd 1.10 ms/msg, weed 1.52 ms/msg`` for the services that worked, or ""."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    return ", ".join(
        f"{name} {1000 * seconds / max(1, count):.2f} ms/msg"
        for name, seconds in used.items()
        if seconds >= 0.01
    )


BACKEND_NAMES = {
    "sqlite": "SQLite + filesystem",
    "s3": "MariaDB + SeaweedFS",
    "s3-copies": "MariaDB + SeaweedFS + local copies",  # [blobs] cache_folder
}


def workers_list(text: str) -> list[str]:
    """``--workers``: comma-separated ``[server] workers`` values (``auto`` or a count)."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    for value in values:
        try:
            worker_count(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{value!r}: not auto or 1 to 1024") from error
    if not values:
        raise argparse.ArgumentTypeError("comma-separated worker counts, e.g. 1,auto")
    return values


def add_workers_option(parser: argparse.ArgumentParser) -> None:
    """``--workers``, as every benchmark that compares LightMail's process counts takes it."""
    parser.add_argument(
        "--workers",
        type=workers_list,
        default=["1", "auto"],
        help="LightMail's [server] workers, comma-separated; each is a run (1,auto)",
    )


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """``--backend``, as every benchmark that runs LightMail on each backend takes it."""
    parser.add_argument(
        "--backend",
        choices=[*BACKEND_NAMES, "both", "all"],
        default="both",
        help="both: sqlite and s3; all: also s3-copies ([blobs] cache_folder)",
    )


def backends(choice: str) -> list[str]:
    """The backends ``--backend choice`` runs, in order."""
    return {"both": ["sqlite", "s3"], "all": list(BACKEND_NAMES)}.get(choice, [choice])


def backend_env(backend: str, mysql_url: str, seaweed: S3Server | None) -> dict[str, str]:
    """LIGHTMAIL_* settings for ``backend``: none for SQLite; :func:`s3_env` for
    ``s3``; and a cache folder in the server's data folder for ``s3-copies``."""
    if backend == "sqlite":
        return {}
    assert seaweed is not None
    env = s3_env(mysql_url, seaweed)
    if backend == "s3-copies":
        env["LIGHTMAIL_BLOBS_CACHE_FOLDER"] = "{data_dir}/blob-copies"
    return env


def lightmail_name(backend: str, workers: str, extra: str = "") -> str:
    """A run's label: ``LightMail (SQLite + filesystem + clamd, workers 1)``."""
    return f"LightMail ({BACKEND_NAMES[backend]}{extra}, workers {workers})"


def lightmail_env(workdir: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a LightMail server: this one, less LIGHTMAIL_*, plus settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LIGHTMAIL_")}
    env.update(
        {
            "LIGHTMAIL_SERVER_DATA_DIR": str(workdir / "data"),
            "LIGHTMAIL_SERVER_HOSTNAME": "localhost",
            "LIGHTMAIL_IMAP_LISTEN": f"127.0.0.1:{port}",
            "LIGHTMAIL_IMAP_TLS_LISTEN": "",
            "LIGHTMAIL_POP3_LISTEN": "",
            "LIGHTMAIL_POP3_TLS_LISTEN": "",
            "LIGHTMAIL_LMTP_LISTEN": "",
            "LIGHTMAIL_API_LISTEN": "",
            "LIGHTMAIL_DAV_LISTEN": "",
            **extra,
        }
    )
    return env


@asynccontextmanager
async def running_lightmail(
    name: str,
    users: int,
    extra_env: Mapping[str, str],
    *,
    mysql_url: str | None = None,
) -> AsyncIterator[Target]:
    """``python -m lightmail serve`` as a child, with ``users`` users made beforehand."""
    with tempfile.TemporaryDirectory(prefix="lightmail-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = lightmail_env(workdir, port, extra_env)
        if mysql_url is not None:
            await ensure_database(mysql_url)
            await recreate_schema(mysql_url)
        async with open_node(load_settings(None, env)) as node:
            await node.accounts.add_domain(DOMAIN)
            await asyncio.gather(
                *(node.accounts.add_user(user_address(i), user_password(i)) for i in range(users))
            )
        async with serve_process(name, workdir, env) as process:
            await _wait_for_greeting(port, process, workdir / "serve.log")
            yield Target(name, "127.0.0.1", port, process.pid)


@asynccontextmanager
async def serve_process(
    name: str, workdir: Path, env: Mapping[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m lightmail serve`` in ``workdir`` (so no ./config.ini of the
    caller's) with ``env``, its output in ``workdir/serve.log``; stopped at the end,
    then its log's tail if it exited badly, and its ERROR records."""
    log = workdir / "serve.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lightmail",
            "serve",
            env=dict(env),
            cwd=workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield process
    finally:
        await terminate(process)
        if process.returncode not in (0, -signal.SIGKILL):
            print(f"!! {name}: serve exited with {process.returncode}; log tail:")
            print(log_tail(log))
        report_server_errors(name, log)


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d ")


def report_server_errors(name: str, log: Path) -> None:
    """Print how many ERROR records the server logged, and the first one whole."""
    blocks: list[list[str]] = []
    inside = False
    for line in log.read_text(errors="replace").splitlines():
        if _TIMESTAMP.match(line):
            inside = " ERROR " in line or " CRITICAL " in line
            if inside:
                blocks.append([])
        if inside:
            blocks[-1].append(line)
    if blocks:
        kinds = Counter(block[0].split(": ", 2)[-1] for block in blocks)
        print(f"!! {name}: {len(blocks)} ERROR records in the server log:")
        for text, count in kinds.most_common(5):
            print(f"   {count} x ...: {text}")
        print("   the first one:")
        print("\n".join("   " + line for line in blocks[0][:60]))


async def ensure_database(url: str) -> None:
    """CREATE DATABASE ``url``'s database if it is missing (through the ``mysql`` one)."""
    parsed = make_url(url)
    name = parsed.database or ""
    if not re.fullmatch(r"\w+", name):
        raise ValueError(f"unexpected database name {name!r}")
    server = Database(parsed.set(database="mysql").render_as_string(hide_password=False))
    try:
        async with server.write() as conn:
            query = text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name")
            if (await conn.execute(query, {"name": name})).first() is None:
                await conn.execute(text(f"CREATE DATABASE `{name}`"))
    finally:
        await server.close()


async def _wait_for_greeting(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(
                f"lightmail serve exited with {process.returncode}:\n{log_tail(log)}"
            )
        try:
            client = await ImapClient.connect("127.0.0.1", port)
        except (OSError, ImapError):
            await asyncio.sleep(0.1)
        else:
            await client.close()
            return
    raise RuntimeError(f"lightmail serve did not answer within 60 s:\n{log_tail(log)}")


async def terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await process.wait()
        except TimeoutError:
            print("!! lightmail serve did not stop within 20 s of SIGTERM: killed")
            process.kill()
            await process.wait()


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def dovecot_users(users: int, scheme: str = "argon2id") -> dict[str, str]:
    """passwd-file entries: argon2id with the parameters LightMail hashes with, or
    ``plain`` (no hashing at all, to see what the rest costs)."""
    if scheme == "plain":
        return {user_address(i): "{PLAIN}" + user_password(i) for i in range(users)}
    hasher = PasswordHasher()
    return {user_address(i): "{ARGON2ID}" + hasher.hash(user_password(i)) for i in range(users)}


@contextlib.contextmanager
def dovecot_target(
    users: int, max_connections: int, login_mode: str, scheme: str = "argon2id"
) -> Iterator[Target]:
    with running_dovecot(
        dovecot_users(users, scheme), max_connections=max_connections, login_mode=login_mode
    ) as server:
        name = f"Dovecot (maildir, {login_mode} login, {scheme} passwords)"
        yield Target(name, server.host, server.port, server.pid)


# --- seeding and load ------------------------------------------------------------


async def seed(target: Target, users: int, messages: int, seed_value: int) -> float:
    """APPEND ``messages`` messages to each user's INBOX (same content for every target).

    A refused APPEND is reported and skipped; the others still go in.
    """
    failures: list[bytes] = []

    async def one(index: int) -> None:
        rng = random.Random(seed_value * 1_000_003 + index)
        client = await ImapClient.connect(target.host, target.port)
        try:
            await client.ok(
                b"LOGIN " + quote(user_address(index)) + b" " + quote(user_password(index))
            )
            for number in range(messages):
                size = rng.choice((1500, 3000, 5000, 8000, 12000, 30000))
                body = make_message(rng, user_address(index), number, size)
                response = await client.command(b"APPEND INBOX", body)
                if response.status != b"OK":
                    failures.append(response.line.strip())
            await client.ok(b"LOGOUT")
        finally:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(users)))
    if failures:
        print(f"!! {target.name}: {len(failures)} of {users * messages} seeding APPENDs failed:")
        for line, count in Counter(failures).most_common(3):
            print(f"   {count} x {line.decode(errors='replace')}")
    return time.perf_counter() - started


OPERATIONS = (
    "CONNECT",
    "LOGIN",
    "SELECT",
    "FETCH 1:50 headers",
    "FETCH BODY.PEEK[]",
    "STORE +FLAGS",
    "UID SEARCH UNSEEN",
    "UID SEARCH SUBJECT",
    "APPEND 5K",
    "LOGOUT",
)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    rounds: int = 0

    def error(self, operation: str, text: str) -> None:
        self.errors[operation] += 1
        if len(self.first_errors) < 10:
            self.first_errors.append(f"{operation}: {text}")

    @property
    def operations(self) -> int:
        """Completed IMAP commands (connecting is not one)."""
        return sum(len(values) for op, values in self.latencies.items() if op != "CONNECT")


class _RoundFailed(Exception):
    pass


async def one_round(
    target: Target,
    client_index: int,
    round_number: int,
    users: int,
    rng: random.Random,
    stats: Stats,
) -> None:
    user = client_index % users

    async def timed(operation: str, line: bytes, literal: bytes | None = None) -> Response:
        started = time.perf_counter()
        try:
            response = await client.command(line, literal)
        except (OSError, ImapError, TimeoutError) as error:
            stats.error(operation, repr(error))
            raise _RoundFailed from error
        elapsed = time.perf_counter() - started
        if response.status != b"OK":
            stats.error(operation, response.line.decode(errors="replace").strip())
            raise _RoundFailed
        stats.latencies[operation].append(elapsed)
        return response

    started = time.perf_counter()
    try:
        client = await ImapClient.connect(target.host, target.port)
    except (OSError, ImapError, TimeoutError) as error:
        stats.error("CONNECT", repr(error))
        return
    stats.latencies["CONNECT"].append(time.perf_counter() - started)
    try:
        await timed(
            "LOGIN", b"LOGIN " + quote(user_address(user)) + b" " + quote(user_password(user))
        )
        exists = exists_of(await timed("SELECT", b"SELECT INBOX"))
        if exists == 0:
            raise ImapError("empty INBOX")
        await timed(
            "FETCH 1:50 headers",
            b"FETCH 1:%d (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"
            % min(50, exists),
        )
        await timed("FETCH BODY.PEEK[]", b"FETCH %d BODY.PEEK[]" % rng.randint(1, exists))
        await timed("STORE +FLAGS", b"STORE %d +FLAGS (\\Seen)" % rng.randint(1, exists))
        if round_number % 2:
            await timed("UID SEARCH UNSEEN", b"UID SEARCH UNSEEN")
        else:
            await timed("UID SEARCH SUBJECT", b"UID SEARCH SUBJECT " + SUBJECT_WORD.encode())
        message = make_message(rng, user_address(user), 10_000 + round_number, 5000)
        await timed("APPEND 5K", b"APPEND INBOX", message)
        await timed("LOGOUT", b"LOGOUT")
        stats.rounds += 1
    except _RoundFailed:
        pass
    except ImapError as error:
        stats.error("SELECT", str(error))
    finally:
        await client.close()


@dataclass(frozen=True, slots=True)
class Result:
    target: Target
    stats: Stats
    elapsed: float
    server_cpu: float

    @property
    def ops_per_second(self) -> float:
        return self.stats.operations / self.elapsed


async def load(
    target: Target, clients: int, users: int, duration: float, rounds: int | None, seed_value: int
) -> Result:
    stats = Stats()
    deadline = time.monotonic() + duration

    async def client(index: int) -> None:
        rng = random.Random(seed_value * 7919 + index)
        done = 0
        while (done < rounds) if rounds is not None else (time.monotonic() < deadline):
            await one_round(target, index, done, users, rng, stats)
            done += 1

    cpu_before = cpu_seconds(target.pid)
    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return Result(target, stats, elapsed, cpu_seconds(target.pid) - cpu_before)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def report(result: Result) -> None:
    stats = result.stats
    rss_kb = tree_memory_kb(result.target.pid)[0]
    print(f"\n== {result.target.name} ==")
    print(
        f"{stats.rounds} rounds, {stats.operations} commands in {result.elapsed:.1f} s: "
        f"{result.ops_per_second:.1f} ops/s, {stats.rounds / result.elapsed:.2f} rounds/s; "
        f"server CPU {result.server_cpu:.1f} s "
        f"({1000 * result.server_cpu / max(1, stats.operations):.2f} ms/op); "
        f"server RSS now {rss_kb / 1024:.0f} MiB"
    )
    print(f"{'operation':<20} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for operation in OPERATIONS:
        values = stats.latencies[operation]
        if not values and not stats.errors[operation]:
            continue
        p50 = f"{1000 * percentile(values, 0.5):8.2f}" if values else f"{'-':>8}"
        p99 = f"{1000 * percentile(values, 0.99):8.2f}" if values else f"{'-':>8}"
        print(f"{operation:<20} {len(values):>6} {p50} {p99} {stats.errors[operation]:>6}")
    if stats.first_errors:
        print("first errors:")
        for text in stats.first_errors:
            print(f"  {text}")


async def bench_target(target: Target, args: argparse.Namespace) -> Result:
    seconds = await seed(target, args.users, args.messages, args.seed)
    total = args.users * args.messages
    print(
        f"{target.name}: seeded {total} messages over IMAP in {seconds:.1f} s "
        f"({total / seconds:.0f} APPEND/s, {args.users} connections)"
    )
    result = await load(target, args.clients, args.users, args.duration, args.rounds, args.seed)
    report(result)
    return result


def connection_limits(clients: int, users: int) -> dict[str, str]:
    """LIGHTMAIL_* settings that let ``clients`` connections of ``users`` users in."""
    return {
        "LIGHTMAIL_IMAP_MAX_CONNECTIONS_PER_IP": str(clients + users + 100),
        "LIGHTMAIL_IMAP_MAX_CONNECTIONS_PER_USER": str(clients + 50),
    }


def s3_env(mysql_url: str, seaweed: S3Server) -> dict[str, str]:
    """LIGHTMAIL_* settings for MariaDB at ``mysql_url`` and a fresh prefix in SeaweedFS."""
    return {
        "LIGHTMAIL_DATABASE_URL": mysql_url,
        "LIGHTMAIL_BLOBS_URL": f"s3://{seaweed.bucket}/bench-{uuid.uuid4().hex[:12]}",
        "LIGHTMAIL_BLOBS_ENDPOINT": seaweed.endpoint,
        "LIGHTMAIL_BLOBS_REGION": seaweed.region,
        "LIGHTMAIL_BLOBS_ACCESS_KEY": seaweed.access_key,
        "LIGHTMAIL_BLOBS_SECRET_KEY": seaweed.secret_key,
    }


async def run(args: argparse.Namespace, seaweed: S3Server | None) -> None:
    results: dict[str, Result] = {}
    limits = connection_limits(args.clients, args.users)
    for workers in args.workers:
        env = {**limits, "LIGHTMAIL_SERVER_WORKERS": workers}
        for backend in backends(args.backend):
            async with running_lightmail(
                lightmail_name(backend, workers),
                args.users,
                {**env, **backend_env(backend, args.mysql_url, seaweed)},
                mysql_url=None if backend == "sqlite" else args.mysql_url,
            ) as target:
                results[f"{backend}, workers {workers}"] = await bench_target(target, args)
    dovecot: Result | None = None
    if args.dovecot:
        with dovecot_target(
            args.users, args.clients + args.users + 100, args.dovecot_login, args.dovecot_passwords
        ) as target:
            dovecot = await bench_target(target, args)

    print("\n== summary ==")
    print(f"{'target':<52} {'ops/s':>8} {'rounds/s':>9} {'errors':>7}")
    for result in [*results.values(), *([dovecot] if dovecot else [])]:
        print(
            f"{result.target.name:<52} {result.ops_per_second:>8.1f} "
            f"{result.stats.rounds / result.elapsed:>9.2f} "
            f"{sum(result.stats.errors.values()):>7}"
        )
    if dovecot is not None:
        for key, result in results.items():
            ratio = result.ops_per_second / dovecot.ops_per_second
            print(f"ratio LightMail/Dovecot ops/s, {key}: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per target (30)")
    parser.add_argument("--rounds", type=int, help="rounds per client instead of --duration")
    parser.add_argument("--users", type=int, default=10, help="users; client i is user i %% users")
    parser.add_argument("--messages", type=int, default=200, help="messages seeded per user")
    add_backend_option(parser)
    parser.add_argument("--dovecot", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--dovecot-login",
        choices=["performance", "security"],
        default="performance",
        help="Dovecot's imap-login: a few processes for all clients, or one per connection",
    )
    parser.add_argument(
        "--dovecot-passwords",
        choices=["argon2id", "plain"],
        default="argon2id",
        help="Dovecot's passwd-file hashes; its auth cache did not spare passwd-file logins"
        " the hash, so plain shows what the rest of a round costs",
    )
    add_workers_option(parser)
    parser.add_argument("--mysql-url", default=BENCH_MYSQL_URL)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.clients < 1 or args.users < 1 or args.messages < 1:
        parser.error("--clients, --users and --messages must be at least 1")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.duration <= 0 or args.duration > 3600:
        parser.error("--duration must be above 0 and at most 3600")
    if args.backend != "sqlite" and not mariadb_listening():
        parser.error("--backend s3 needs MariaDB on 127.0.0.1:3306")
    if args.dovecot and (missing := dovecot_missing("imap")) is not None:
        parser.error(f"{missing} (or --no-dovecot)")
    print(
        f"{args.clients} clients, {args.users} users, {args.messages} messages seeded per user, "
        + (f"{args.rounds} rounds per client" if args.rounds else f"{args.duration:g} s per target")
    )
    if args.backend != "sqlite":
        with running_seaweedfs() as seaweed:
            asyncio.run(run(args, seaweed))
    else:
        asyncio.run(run(args, None))


if __name__ == "__main__":
    main()
