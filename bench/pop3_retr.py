"""POP3 RETR throughput: 1,000 messages of 10 KB, LightMail against Dovecot.

Two runs per target, each retrieving ``--messages`` (default 1000) messages of
``--size`` bytes (default 10240, CRLF line ends, a few lines starting with a
dot so byte-stuffing is exercised):

- one connection: one user holding all ``--messages`` messages RETRs them in
  order, one command at a time;
- ``--connections`` (default 20) concurrent connections: as many users with
  ``--messages / --connections`` messages each; each connection RETRs its
  user's messages.

The clock covers the RETRs only: every connection is opened and logged in
(USER/PASS) first, the clock starts, the RETRs run, the clock stops, then
QUIT. Every RETR must answer ``+OK N octets`` with N the size of the message
seeded, and the multi-line response, un-stuffed, must be exactly N bytes.
Before the timed runs each user's maildrop is opened once (USER/PASS, STAT,
QUIT), which lets Dovecot build its index of the new maildir.

Targets, each a child process on a free loopback port, holding the same
messages:

- LightMail on SQLite + filesystem (``--backend sqlite``),
- LightMail on MariaDB + SeaweedFS (``--backend s3``; the ``lightmail_bench``
  database on 127.0.0.1:3306, created if missing, tables dropped and
  re-created; ``--mysql-url`` chooses another),
- the same with ``[blobs] cache_folder`` (``--backend s3-copies``): the
  server starts with no copies, so the timed runs are made twice, "first
  read" (each RETR reads S3 and writes a copy) and "read again" (each RETR
  reads its copy), as for mail read soon after this node delivered it,
- Dovecot's POP3 (``dovecot-pop3d``, configured in a temporary folder,
  maildir; ``--no-dovecot`` leaves it out).

LightMail runs as ``python -m lightmail serve`` with POP3 only, once for each
``--workers`` value (``[server] workers``; default ``1,auto``, labelled
"..., workers N"); its users and messages are made beforehand in this process
(``node.store.deliver``). Dovecot's messages are written into each user's
``Maildir/new``. It prints seconds, messages/s and the server's CPU time (the
whole server: the supervisor and every worker; Dovecot's master and its
children) per target and run, then the CPU the services the run kept busy
spent meanwhile (``mariadbd``, ``weed``: any process of that name on the
machine), and each LightMail run's time as a ratio of Dovecot's.

    uv run python bench/pop3_retr.py                      # both backends + Dovecot
    uv run python bench/pop3_retr.py --backend sqlite --no-dovecot
    uv run python bench/pop3_retr.py --backend all        # and MariaDB + SeaweedFS + copies
    uv run python bench/pop3_retr.py --backend s3 --workers 1,2,auto
    uv run python bench/pop3_retr.py --messages 5000 --connections 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from lightmail.config import load_settings
from lightmail.mailstore.store import Recipient
from lightmail.runtime import open_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dovecot import dovecot_missing, free_port, running_dovecot_pop3
from imap_load import (
    add_backend_option,
    add_workers_option,
    backend_env,
    backends,
    cpu_seconds,
    dovecot_users,
    ensure_database,
    lightmail_env,
    lightmail_name,
    log_tail,
    serve_process,
    services_cpu,
    services_line,
    user_address,
    user_password,
)

from tests.support.mariadb import mariadb_listening, recreate_schema
from tests.support.s3server import S3Server, running_seaweedfs

DOMAIN = "bench.example"  # imap_load's user_address uses it too
BENCH_MYSQL_URL = "mysql+asyncmy://root@127.0.0.1:3306/lightmail_bench"
REPLY_TIMEOUT = 60.0  # seconds for one POP3 response
_OCTETS = re.compile(rb"\+OK (\d+) octets")

# --- the messages ----------------------------------------------------------------


def make_message(to: str, number: int, size: int, rng: random.Random) -> bytes:
    """A text message of exactly ``size`` bytes, CRLF line ends, some lines starting with '.'."""
    header = (
        f"From: Bench Sender <sender@example.net>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: POP3 bench message {number}\r\n"
        f"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
        f"Message-ID: <pop3-bench-{number}-{to}>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n"
        f"\r\n"
    ).encode()
    words = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
    parts = [header]
    length = len(header)
    while True:
        line = " ".join(rng.choice(words) for _ in range(11)).encode()
        if rng.random() < 0.05:
            line = b"." + line  # sent as ".." on the wire
        if length + len(line) + 2 > size - 80:
            break
        parts.append(line + b"\r\n")
        length += len(line) + 2
    parts.append(b"x" * (size - length - 2) + b"\r\n")  # the last line makes it exact
    message = b"".join(parts)
    assert len(message) == size, (len(message), size)
    return message


@dataclass(frozen=True, slots=True)
class Layout:
    """Who holds what: user 0 for the single connection, users 1..N for the concurrent run."""

    messages: int
    connections: int
    size: int

    @property
    def users(self) -> int:
        return 1 + self.connections

    def count(self, user: int) -> int:
        if user == 0:
            return self.messages
        return self.messages // self.connections

    def maildrop(self, user: int) -> Iterator[bytes]:
        rng = random.Random(user)
        for number in range(self.count(user)):
            yield make_message(user_address(user), number, self.size, rng)


# --- a small POP3 client -----------------------------------------------------------


class Pop3Error(Exception):
    """The server answered something unexpected, or went away."""


class Pop3Client:
    """One POP3 connection (RFC 1939), commands one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> Pop3Client:
        async with asyncio.timeout(REPLY_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        client = cls(reader, writer)
        try:
            greeting = await client.line()
            if not greeting.startswith(b"+OK"):
                raise Pop3Error(f"greeting {greeting!r}")
        except BaseException:
            client.abort()
            raise
        return client

    async def line(self) -> bytes:
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                return await self.reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as error:
            raise Pop3Error("connection closed") from error

    async def command(self, line: bytes) -> bytes:
        """Send ``line``; the status line, which must be +OK."""
        self.writer.write(line + b"\r\n")
        reply = await self.line()
        if not reply.startswith(b"+OK"):
            shown = b"PASS ..." if line.startswith(b"PASS ") else line
            raise Pop3Error(f"{shown.decode()}: {reply.decode(errors='replace').strip()}")
        return reply

    async def login(self, user: str, password: str) -> None:
        await self.command(b"USER " + user.encode())
        await self.command(b"PASS " + password.encode())

    async def stat(self) -> tuple[int, int]:
        count, octets = (await self.command(b"STAT")).split()[1:3]
        return int(count), int(octets)

    async def retr(self, number: int) -> tuple[int, int]:
        """RETR ``number``: (octets announced, bytes received after un-stuffing)."""
        status = await self.command(b"RETR %d" % number)
        announced = _OCTETS.match(status)
        if announced is None:
            raise Pop3Error(f"RETR {number}: no octet count in {status!r}")
        received = 0
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                while True:
                    line = await self.reader.readuntil(b"\r\n")
                    if line == b".\r\n":
                        break
                    if line.startswith(b"."):
                        received += len(line) - 1
                    else:
                        received += len(line)
        except asyncio.IncompleteReadError as error:
            raise Pop3Error(f"RETR {number}: connection closed") from error
        return int(announced[1]), received

    async def quit(self) -> None:
        with contextlib.suppress(OSError, Pop3Error, TimeoutError):
            await self.command(b"QUIT")
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(5):
                await self.writer.wait_closed()

    def abort(self) -> None:
        self.writer.transport.abort()


# --- targets -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    key: str  # "sqlite, workers 1", "s3, workers auto", ..., or "dovecot"
    name: str
    host: str
    port: int
    pid: int  # the server process; for Dovecot the master, with its children
    log: Path


async def seed_lightmail(env: Mapping[str, str], layout: Layout) -> float:
    """Users and their messages, through a node in this process; the seconds it took."""
    started = time.perf_counter()
    async with open_node(load_settings(None, dict(env))) as node:
        await node.accounts.add_domain(DOMAIN)
        users = await asyncio.gather(
            *(
                node.accounts.add_user(user_address(i), user_password(i))
                for i in range(layout.users)
            )
        )

        async def fill(index: int) -> None:
            recipient = Recipient(users[index].id, user_address(index))
            for message in layout.maildrop(index):
                outcomes = await node.store.deliver([recipient], _chunks(message))
                if len(outcomes) != 1 or outcomes[0].error is not None:
                    raise RuntimeError(f"seeding {user_address(index)}: {outcomes!r}")

        await asyncio.gather(*(fill(i) for i in range(layout.users)))
    return time.perf_counter() - started


async def _chunks(message: bytes) -> AsyncIterator[bytes]:
    yield message


@asynccontextmanager
async def running_lightmail(
    key: str,
    name: str,
    layout: Layout,
    extra_env: Mapping[str, str],
    *,
    mysql_url: str | None = None,
) -> AsyncIterator[Target]:
    """``python -m lightmail serve`` with POP3 only on a free port, seeded beforehand."""
    with tempfile.TemporaryDirectory(prefix="lightmail-bench-pop3-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = lightmail_env(
            workdir,
            port,
            {
                "LIGHTMAIL_IMAP_LISTEN": "",
                "LIGHTMAIL_LMTP_LISTEN": "",
                "LIGHTMAIL_POP3_LISTEN": f"127.0.0.1:{port}",
                "LIGHTMAIL_API_LISTEN": "",
                "LIGHTMAIL_DAV_LISTEN": "",
                "LIGHTMAIL_POP3_MAX_CONNECTIONS_PER_IP": str(layout.connections + 100),
                **extra_env,
            },
        )
        if mysql_url is not None:
            await ensure_database(mysql_url)
            await recreate_schema(mysql_url)
        seconds = await seed_lightmail(env, layout)
        print(
            f"{name}: seeded {layout.messages * 2} messages for {layout.users} users "
            f"in {seconds:.1f} s (in-process deliver)"
        )
        log_path = workdir / "serve.log"
        async with serve_process(name, workdir, env) as process:
            await _wait_for_pop3(port, process, log_path)
            yield Target(key, name, "127.0.0.1", port, process.pid, log_path)


async def _wait_for_pop3(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(
                f"lightmail serve exited with {process.returncode}:\n{log_tail(log)}"
            )
        try:
            client = await Pop3Client.connect("127.0.0.1", port)
        except (OSError, Pop3Error, TimeoutError):
            await asyncio.sleep(0.1)
        else:
            await client.quit()
            return
    raise RuntimeError(f"lightmail serve did not answer within 60 s:\n{log_tail(log)}")


@contextlib.contextmanager
def dovecot_target(layout: Layout) -> Iterator[Target]:
    started = time.perf_counter()
    maildrops = {user_address(i): list(layout.maildrop(i)) for i in range(layout.users)}
    with running_dovecot_pop3(
        dovecot_users(layout.users), maildrops, max_connections=layout.connections + 10
    ) as server:
        print(
            f"Dovecot POP3: wrote {layout.messages * 2} messages to {layout.users} maildirs "
            f"and started in {time.perf_counter() - started:.1f} s"
        )
        yield Target(
            "dovecot",
            "Dovecot POP3 (maildir)",
            server.host,
            server.port,
            server.pid,
            server.workdir / "dovecot.log",
        )


# --- the runs ----------------------------------------------------------------------


@dataclass
class Run:
    connections: int
    messages: int = 0  # RETRs that returned the expected octets
    elapsed: float = 0.0
    server_cpu: float = 0.0
    services: str = ""  # the CPU MariaDB and SeaweedFS spent meanwhile
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed if self.elapsed else 0.0


async def open_session(target: Target, user: int, expected: int, size: int) -> Pop3Client:
    client = await Pop3Client.connect(target.host, target.port)
    try:
        await client.login(user_address(user), user_password(user))
        count, octets = await client.stat()
        if (count, octets) != (expected, expected * size):
            raise Pop3Error(
                f"{user_address(user)}: STAT {count} {octets}, expected {expected} "
                f"{expected * size}"
            )
    except BaseException:
        client.abort()
        raise
    return client


async def warm_up(target: Target, layout: Layout) -> None:
    async def one(user: int) -> None:
        client = await open_session(target, user, layout.count(user), layout.size)
        await client.quit()

    await asyncio.gather(*(one(user) for user in range(layout.users)))


async def retr_run(target: Target, layout: Layout, users: Sequence[int]) -> Run:
    """Log ``users`` in, one connection each; time the RETR of all their messages."""
    run = Run(len(users))
    clients = await asyncio.gather(
        *(open_session(target, user, layout.count(user), layout.size) for user in users),
        return_exceptions=True,
    )
    opened = [client for client in clients if isinstance(client, Pop3Client)]
    for client in clients:
        if not isinstance(client, Pop3Client):
            run.failures.append(f"login: {client!r}")
    if run.failures:
        for client in opened:
            client.abort()
        return run

    async def retrieve(client: Pop3Client, user: int) -> None:
        for number in range(1, layout.count(user) + 1):
            try:
                announced, received = await client.retr(number)
            except (OSError, Pop3Error, TimeoutError) as error:
                run.failures.append(f"{user_address(user)} RETR {number}: {error!r}")
                return
            if announced != layout.size or received != layout.size:
                run.failures.append(
                    f"{user_address(user)} RETR {number}: +OK {announced} octets, "
                    f"{received} bytes received, {layout.size} expected"
                )
            else:
                run.messages += 1

    cpu_before, services_before = cpu_seconds(target.pid), services_cpu()
    started = time.perf_counter()
    await asyncio.gather(
        *(retrieve(client, user) for client, user in zip(opened, users, strict=True))
    )
    run.elapsed = time.perf_counter() - started
    run.server_cpu = cpu_seconds(target.pid) - cpu_before
    run.services = services_line(services_before, services_cpu(), run.messages)
    await asyncio.gather(*(client.quit() for client in opened))
    return run


async def bench_target(target: Target, layout: Layout) -> dict[int, Run]:
    print(f"\n== {target.name} (127.0.0.1:{target.port}) ==")
    await warm_up(target, layout)
    runs: dict[int, Run] = {}
    plans = {1: [0], layout.connections: list(range(1, layout.users))}
    for connections, users in plans.items():
        run = await retr_run(target, layout, users)
        runs[connections] = run
        print(
            f"{connections:>3} connection(s): {run.messages} RETRs in {run.elapsed:.3f} s "
            f"= {run.rate:.0f} msg/s; server CPU {run.server_cpu:.2f} s "
            f"({1000 * run.server_cpu / max(1, run.messages):.3f} ms/msg)"
            + (f"; meanwhile {run.services}" if run.services else "")
        )
        for failure in run.failures[:5]:
            print(f"   !! {failure}")
        if len(run.failures) > 5:
            print(f"   !! ... {len(run.failures) - 5} more failures")
    return runs


def summary(layout: Layout, results: Mapping[str, tuple[str, dict[int, Run]]]) -> None:
    columns = [1, layout.connections]
    print(
        f"\n== summary: RETR of {layout.messages} messages of {layout.size} bytes "
        f"(seconds / messages per second) =="
    )
    header = "".join(f"{f'{c} conn s':>12}{f'{c} conn msg/s':>15}" for c in columns)
    width = max(len("ratio LightMail / Dovecot"), *(len(name) for name, _ in results.values())) + 2
    print(f"{'target':<{width}}{header}")
    for name, runs in results.values():
        cells = ""
        for connections in columns:
            run = runs[connections]
            mark = "!" if run.failures else ""
            cells += f"{f'{run.elapsed:.3f}{mark}':>12}{f'{run.rate:.0f}{mark}':>15}"
        print(f"{name:<{width}}{cells}")
    dovecot = results.get("dovecot")
    if dovecot is None:
        return
    ratio_header = "".join(f"{f'{c} conn':>27}" for c in columns)
    print(f"\n{'ratio LightMail / Dovecot':<{width}}{ratio_header}")
    print("(time; above 1 = slower)")
    for key, (name, runs) in results.items():
        if key == "dovecot":
            continue
        cells = ""
        for connections in columns:
            mine, theirs = runs[connections], dovecot[1][connections]
            if theirs.elapsed and mine.elapsed and not (mine.failures or theirs.failures):
                cells += f"{f'{mine.elapsed / theirs.elapsed:.2f}x':>27}"
            else:
                cells += f"{'-':>27}"
        print(f"{name:<{width}}{cells}")
    if any(run.failures for _, runs in results.values() for run in runs.values()):
        print("(! = some RETRs failed or returned the wrong size; see above)")


async def run(args: argparse.Namespace, seaweed: S3Server | None) -> None:
    layout = Layout(args.messages, args.connections, args.size)
    results: dict[str, tuple[str, dict[int, Run]]] = {}
    for workers, backend in [(w, b) for w in args.workers for b in backends(args.backend)]:
        key, name = f"{backend}, workers {workers}", lightmail_name(backend, workers)
        env = {"LIGHTMAIL_SERVER_WORKERS": workers, **backend_env(backend, args.mysql_url, seaweed)}
        mysql_url = None if backend == "sqlite" else args.mysql_url
        copies = backend == "s3-copies"
        if copies:  # the server empties its copies at start: the first read of each is from S3
            name = lightmail_name(backend, workers, ", first read")
        async with running_lightmail(key, name, layout, env, mysql_url=mysql_url) as target:
            results[key] = (name, await bench_target(target, layout))
            if copies:  # the same messages again: each read a copy
                key, name = f"{key}, again", name.replace("first read", "read again")
                results[key] = (name, await bench_target(replace(target, name=name), layout))
    if args.dovecot:
        with dovecot_target(layout) as target:
            results["dovecot"] = (target.name, await bench_target(target, layout))
    summary(layout, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages",
        type=int,
        default=1000,
        help="messages per run (1000), a multiple of --connections",
    )
    parser.add_argument(
        "--connections", type=int, default=20, help="connections of the concurrent run (20)"
    )
    parser.add_argument("--size", type=int, default=10240, help="bytes per message (10240)")
    add_backend_option(parser)
    add_workers_option(parser)
    parser.add_argument("--dovecot", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--mysql-url", default=BENCH_MYSQL_URL)
    args = parser.parse_args()
    if not 2 <= args.connections <= 1000:
        parser.error("--connections must be from 2 to 1000")
    if args.messages < args.connections or args.messages % args.connections:
        parser.error("--messages must be a positive multiple of --connections")
    if args.messages > 1_000_000:
        parser.error("--messages must be at most 1000000")
    if not 400 <= args.size <= 64 << 20:
        parser.error("--size must be from 400 bytes to 64 MiB")
    if args.backend != "sqlite" and not mariadb_listening():
        parser.error("--backend s3 needs MariaDB on 127.0.0.1:3306")
    if args.dovecot and (missing := dovecot_missing("pop3")) is not None:
        parser.error(f"{missing} (or --no-dovecot)")
    print(
        f"POP3 RETR: {args.messages} messages of {args.size} bytes over 1 connection "
        f"(1 user) and over {args.connections} connections "
        f"({args.connections} users x {args.messages // args.connections})"
    )
    if args.backend != "sqlite":
        with running_seaweedfs() as seaweed:
            asyncio.run(run(args, seaweed))
    else:
        asyncio.run(run(args, None))


if __name__ == "__main__":
    main()
