"""LMTP throughput (smtp-source), LightMail against Dovecot; peak RSS of a 50 MB delivery.

Throughput: Postfix's ``smtp-source -L`` (Debian's ``postfix`` package) sends
``--messages`` messages (default 1000) with a ``--size``-byte payload (default
10240, plus smtp-source's From/To/Date/Message-Id header) at each
``--concurrency`` (default 1 and 10 parallel sessions), spread evenly over
``--users`` users (default 100), and the script prints messages per second for:

- LightMail on SQLite + filesystem, without and with clamd,
- LightMail on MariaDB + SeaweedFS, without and with clamd,
- with ``--backend s3-copies`` (or ``all``), the same with ``[blobs]
  cache_folder``: each delivery also writes a local copy,
- Dovecot's LMTP (``dovecot-lmtpd``, configured in a temporary folder,
  maildir, users in a passwd-file),

each LightMail variant once for each ``--workers`` value (``[server]
workers``; default ``1,auto``, labelled "..., workers N"), and the ratio of
each LightMail run to Dovecot's. The server CPU it prints is that of the whole
server: with several workers, the supervisor and every worker (for Dovecot,
the master and its children); after it come the services the run kept busy
(``mariadbd``, ``weed``, ``clamd``: any process of that name on the machine).
With clamd, LightMail runs ``[antivirus] mode = reject`` against a clamd
started here with the project's one-signature EICAR database
(``tests/support/clamd.py``); after the timed runs one EICAR message must be
refused with ``554``, showing clamd was in the path.

Spreading: ``smtp-source -N`` numbers the recipients ``1@bench.example``,
``2@bench.example``, ... in one process, so one ``smtp-source -N -m USERS -s
CONCURRENCY`` sends exactly one message to each of the users ``1`` to
``USERS``; a run is ``MESSAGES / USERS`` such processes one after another (the
last messages of each process overlap less: a few percent at 10 sessions). By
default every message opens its own connection, as smtp-source does without
``-d`` (``--keep-connections`` passes ``-d``). Before the timed runs each
target gets one untimed round (one message per user). After each run the
messages are counted in the store (LightMail: INBOX of each user, through the
database; Dovecot: files in each maildir) and every user must hold exactly
what was sent, so a run that failed quietly is caught.

Peak RSS: a LightMail server in one process (``[server] workers = 1``, so
the process measured is the one that takes the delivery; ``--rss-backend``,
SQLite + filesystem by default) receives one small message, its peak RSS
(VmHWM) is reset with ``echo 5 > /proc/PID/clear_refs``, then it receives one
``--rss-size`` (50 MB) message from a small LMTP client here (asyncio streams,
dot-stuffed, sent in 64 KiB writes); the script prints how far VmHWM rose
above the RSS before.

LightMail runs as ``python -m lightmail serve`` children configured through
LIGHTMAIL_* variables; its users are made beforehand in this process. MariaDB
is the ``lightmail_bench`` database on 127.0.0.1:3306 (created if missing; its
tables are dropped and re-created; ``--mysql-url`` chooses another).

Where the mail goes: every server's folder is made under ``TMPDIR`` (``/tmp``
when unset), and the runs measure that file system as much as the servers. On
an ext4 without a journal (the root file system of our development machines)
an fsync is cheap, and creating a file costs anywhere from 20 to 900 us of
kernel time, growing with the files deleted there in the last minutes (the
previous target's folder, a test run): the figures swing by a third from run
to run, and the target that runs last (Dovecot) pays for the others. For
figures like a production disk's, point ``TMPDIR`` at a journalled file system,
for example a loop-mounted ext4 image (as root)::

    truncate -s 4G /var/tmp/bench.img && mkfs.ext4 -q /var/tmp/bench.img
    mkdir -p /mnt/bench && mount -o loop /var/tmp/bench.img /mnt/bench && chmod 1777 /mnt/bench
    TMPDIR=/mnt/bench uv run python bench/lmtp_throughput.py

    uv run python bench/lmtp_throughput.py                     # everything, a few minutes
    uv run python bench/lmtp_throughput.py --backend sqlite --antivirus off --no-dovecot
    uv run python bench/lmtp_throughput.py --backend s3 --antivirus off --workers 1,2,auto
    uv run python bench/lmtp_throughput.py --messages 3000 --concurrency 1,10,50
    uv run python bench/lmtp_throughput.py --only-rss --rss-size 200M
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lightmail.config import load_settings, parse_size
from lightmail.runtime import open_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dovecot import (
    DovecotServer,
    dovecot_missing,
    free_port,
    maildir_count,
    process_tree,
    running_dovecot_lmtp,
)
from imap_load import (
    add_backend_option,
    add_workers_option,
    backend_env,
    backends,
    cpu_seconds,
    ensure_database,
    lightmail_env,
    lightmail_name,
    log_tail,
    s3_env,
    serve_process,
    services_cpu,
    services_line,
)

from tests.support.clamd import EICAR, find_clamd, running_clamd
from tests.support.mariadb import mariadb_listening, recreate_schema
from tests.support.s3server import S3Server, running_seaweedfs

DOMAIN = "bench.example"
SENDER = "sender@example.net"
BENCH_MYSQL_URL = "mysql+asyncmy://root@127.0.0.1:3306/lightmail_bench"
SMTP_SOURCE_CANDIDATES = ("/usr/sbin/smtp-source", "/usr/local/sbin/smtp-source")
REPLY_TIMEOUT = 120.0  # seconds for one LMTP reply of our own client
CHUNK = 64 * 1024


def user_address(number: int) -> str:
    """The address smtp-source -N makes of its n-th recipient (numbered from 1)."""
    return f"{number}@{DOMAIN}"


def find_smtp_source() -> Path | None:
    found = shutil.which("smtp-source")
    for candidate in (found, *SMTP_SOURCE_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


# --- targets -------------------------------------------------------------------


Counts = Callable[[], Awaitable[dict[str, int]]]  # messages in each user's INBOX, by address


@dataclass(frozen=True, slots=True)
class Target:
    """One LMTP server under test and how to count what it stored."""

    key: str  # "sqlite, workers 1", "s3+clamd, workers auto", ..., or "dovecot"
    name: str
    host: str
    port: int
    pid: int  # the server process; for Dovecot the master, with its children
    counts: Counts
    log: Path
    env: Mapping[str, str] | None = None  # LightMail's settings, to look into its store


def lightmail_counts(env: Mapping[str, str], addresses: list[str]) -> Counts:
    """Count through a node opened in this process with the server's own settings."""
    settings = load_settings(None, dict(env))

    async def counts() -> dict[str, int]:
        async with open_node(settings) as node:
            found = {}
            for address in addresses:
                user = await node.accounts.get_user(address)
                found[address] = (await node.store.mailbox_status(user.id, "INBOX")).messages
            return found

    return counts


def maildir_counts(server: DovecotServer, addresses: list[str]) -> Counts:
    async def counts() -> dict[str, int]:
        return {address: maildir_count(server, address) for address in addresses}

    return counts


@asynccontextmanager
async def running_lightmail(
    key: str,
    name: str,
    users: int,
    extra_env: Mapping[str, str],
    *,
    mysql_url: str | None = None,
) -> AsyncIterator[Target]:
    """``python -m lightmail serve`` with LMTP only on a free port; ``users`` users made first."""
    with tempfile.TemporaryDirectory(prefix="lightmail-bench-lmtp-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = lightmail_env(
            workdir,
            port,
            {
                "LIGHTMAIL_IMAP_LISTEN": "",
                "LIGHTMAIL_LMTP_LISTEN": f"127.0.0.1:{port}",
                "LIGHTMAIL_API_LISTEN": "",
                "LIGHTMAIL_DAV_LISTEN": "",
                **extra_env,
            },
        )
        if mysql_url is not None:
            await ensure_database(mysql_url)
            await recreate_schema(mysql_url)
        addresses = [user_address(number) for number in range(1, users + 1)]
        async with open_node(load_settings(None, env)) as node:
            await node.accounts.add_domain(DOMAIN)
            await asyncio.gather(
                *(node.accounts.add_user(address, "bench-password") for address in addresses)
            )
        log_path = workdir / "serve.log"
        async with serve_process(name, workdir, env) as process:
            await _wait_for_lmtp(port, process, log_path)
            yield Target(
                key,
                name,
                "127.0.0.1",
                port,
                process.pid,
                lightmail_counts(env, addresses),
                log_path,
                env,
            )


async def _wait_for_lmtp(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(
                f"lightmail serve exited with {process.returncode}:\n{log_tail(log)}"
            )
        try:
            client = await LmtpClient.connect("127.0.0.1", port)
        except (OSError, LmtpError, TimeoutError):
            await asyncio.sleep(0.1)
        else:
            await client.quit()
            return
    raise RuntimeError(f"lightmail serve did not answer within 60 s:\n{log_tail(log)}")


@contextlib.contextmanager
def dovecot_target(users: int, process_limit: int) -> Iterator[Target]:
    addresses = [user_address(number) for number in range(1, users + 1)]
    with running_dovecot_lmtp(addresses, process_limit=process_limit) as server:
        yield Target(
            "dovecot",
            "Dovecot LMTP (maildir)",
            server.host,
            server.port,
            server.pid,
            maildir_counts(server, addresses),
            server.workdir / "dovecot.log",
        )


# --- a small LMTP client -------------------------------------------------------


class LmtpError(Exception):
    """The server answered something unexpected, or went away."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str


class LmtpClient:
    """One LMTP connection (RFC 2033), commands one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> LmtpClient:
        async with asyncio.timeout(REPLY_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        try:
            greeting = await client.reply()
            if greeting.code != 220:
                raise LmtpError(f"greeting {greeting}")
            lhlo = await client.command(b"LHLO bench.localhost")
            if lhlo.code != 250:
                raise LmtpError(f"LHLO: {lhlo}")
        except BaseException:
            client.writer.transport.abort()
            raise
        return client

    async def reply(self) -> Reply:
        """One reply, with its continuation lines."""
        texts = []
        async with asyncio.timeout(REPLY_TIMEOUT):
            while True:
                try:
                    line = await self.reader.readuntil(b"\r\n")
                except asyncio.IncompleteReadError as error:
                    raise LmtpError("connection closed") from error
                if len(line) < 5 or not line[:3].isdigit():
                    raise LmtpError(f"bad reply line {line!r}")
                texts.append(line[4:].decode(errors="replace").strip())
                if line[3:4] != b"-":
                    return Reply(int(line[:3]), " / ".join(texts))

    async def command(self, line: bytes) -> Reply:
        self.writer.write(line + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def send(
        self, sender: str, recipients: list[str], message: Iterable[bytes]
    ) -> list[Reply]:
        """One transaction; the replies of the recipients refused at RCPT, then one per accepted."""
        mail = await self.command(b"MAIL FROM:<" + sender.encode() + b">")
        if mail.code != 250:
            raise LmtpError(f"MAIL: {mail}")
        replies: list[Reply] = []
        accepted = 0
        for recipient in recipients:
            rcpt = await self.command(b"RCPT TO:<" + recipient.encode() + b">")
            if rcpt.code == 250:
                accepted += 1
            else:
                replies.append(rcpt)
        if not accepted:
            await self.command(b"RSET")
            return replies
        data = await self.command(b"DATA")
        if data.code != 354:
            raise LmtpError(f"DATA: {data}")
        for chunk in dot_stuffed(message):
            self.writer.write(chunk)
            await self.writer.drain()
        self.writer.write(b".\r\n")
        await self.writer.drain()
        for _ in range(accepted):
            replies.append(await self.reply())
        return replies

    async def quit(self) -> None:
        with contextlib.suppress(OSError, LmtpError, TimeoutError):
            await self.command(b"QUIT")
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(5):
                await self.writer.wait_closed()


def dot_stuffed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The message as DATA sends it: a "." doubled at every line start, CRLF at the end."""
    at_line_start = True
    last = b"\n"
    for chunk in chunks:
        if not chunk:
            continue
        stuffed = chunk.replace(b"\n.", b"\n..")
        if at_line_start and stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        at_line_start = stuffed.endswith(b"\n")
        last = stuffed[-1:]
        yield stuffed
    if last != b"\n":
        yield b"\r\n"


LARGE_HEADER = (
    b"From: Bench <bench@example.org>\r\nTo: <%s>\r\n"
    b"Subject: large attachment\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
    b".a line that starts with a dot, sent as '..a line'\r\n.\r\n..\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
)
LARGE_TRAILER = b"\r\n--b1--\r\n"
_BASE64_LINE = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n"


def large_message(to: str, size: int) -> Iterator[bytes]:
    """A multipart message of about ``size`` bytes, generated in 64 KiB chunks."""
    header = LARGE_HEADER % to.encode()
    yield header
    block = _BASE64_LINE * (CHUNK // len(_BASE64_LINE))
    sent = len(header) + len(LARGE_TRAILER)
    while sent + len(block) <= size:
        yield block
        sent += len(block)
    yield LARGE_TRAILER


def small_message(to: str, body: bytes = b"Hello.\r\n") -> Iterator[bytes]:
    yield (
        b"From: <" + SENDER.encode() + b">\r\nTo: <" + to.encode() + b">\r\n"
        b"Subject: bench\r\nMessage-ID: <" + uuid.uuid4().hex.encode() + b"@example.net>\r\n\r\n"
    )
    yield body


async def deliver_one(target: Target, to: str, message: Iterable[bytes]) -> Reply:
    client = await LmtpClient.connect(target.host, target.port)
    try:
        [reply] = await client.send(SENDER, [to], message)
        return reply
    finally:
        await client.quit()


# --- throughput ----------------------------------------------------------------


@dataclass(slots=True)
class RunResult:
    concurrency: int
    messages: int
    elapsed: float
    server_cpu: float
    services: str = ""  # the CPU MariaDB, SeaweedFS and clamd spent meanwhile
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed if self.elapsed > 0 else 0.0


async def smtp_source_round(
    smtp_source: Path,
    target: Target,
    users: int,
    concurrency: int,
    size: int,
    keep_connections: bool,
    limit: float,
) -> str | None:
    """One smtp-source process: one message to each user. None if it went well, else why not."""
    command = [
        str(smtp_source),
        "-L",
        "-N",
        "-s",
        str(concurrency),
        "-m",
        str(users),
        "-l",
        str(size),
        "-f",
        SENDER,
        "-t",
        f"@{DOMAIN}",
        "-M",
        "bench.localhost",
        *(["-d"] if keep_connections else []),
        f"127.0.0.1:{target.port}",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(limit):
            output, _ = await process.communicate()
    except TimeoutError:
        return f"smtp-source did not finish within {limit:.0f} s"
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if process.returncode != 0:
        text = output.decode(errors="replace").strip().splitlines()
        return f"smtp-source exited with {process.returncode}: {' | '.join(text[-3:])}"
    return None


async def throughput(
    smtp_source: Path,
    target: Target,
    args: argparse.Namespace,
    concurrency: int,
    expected: dict[str, int],
) -> RunResult:
    rounds = args.messages // args.users
    cpu_before = cpu_seconds(target.pid)
    services_before = services_cpu()
    result = RunResult(concurrency, 0, 0.0, 0.0)
    started = time.perf_counter()
    for _ in range(rounds):
        failure = await smtp_source_round(
            smtp_source,
            target,
            args.users,
            concurrency,
            args.size,
            args.keep_connections,
            args.round_timeout,
        )
        if failure is not None:
            result.failures.append(failure)
            break
        result.messages += args.users
    result.elapsed = time.perf_counter() - started
    result.server_cpu = cpu_seconds(target.pid) - cpu_before
    result.services = services_line(services_before, services_cpu(), result.messages)
    for address in expected:
        expected[address] += result.messages // args.users
    return result


async def verify_counts(target: Target, expected: Mapping[str, int]) -> list[str]:
    """Compare every user's INBOX with what was sent; the differences, as text."""
    counts = await target.counts()
    wrong = {a: (counts.get(a, 0), n) for a, n in expected.items() if counts.get(a, 0) != n}
    if not wrong:
        return []
    total_stored, total_sent = sum(counts.values()), sum(expected.values())
    examples = ", ".join(f"{a}: {got} of {want}" for a, (got, want) in list(wrong.items())[:5])
    return [
        f"{len(wrong)} users hold the wrong number of messages "
        f"({total_stored} stored, {total_sent} sent); e.g. {examples}"
    ]


async def bench_target(
    smtp_source: Path, target: Target, args: argparse.Namespace, clamd: bool
) -> dict[int, RunResult]:
    addresses = [user_address(number) for number in range(1, args.users + 1)]
    expected = dict.fromkeys(addresses, 0)
    print(f"\n== {target.name} (127.0.0.1:{target.port}) ==")
    warm = await smtp_source_round(
        smtp_source,
        target,
        args.users,
        max(args.concurrency),
        args.size,
        args.keep_connections,
        args.round_timeout,
    )
    if warm is not None:
        print(f"!! warm-up failed: {warm}")
    else:
        for address in expected:
            expected[address] += 1
    results: dict[int, RunResult] = {}
    for concurrency in args.concurrency:
        result = await throughput(smtp_source, target, args, concurrency, expected)
        result.failures.extend(await verify_counts(target, expected))
        results[concurrency] = result
        print(
            f"concurrency {concurrency:>3}: {result.messages} messages in {result.elapsed:.2f} s "
            f"= {result.rate:.1f} msg/s; server CPU {result.server_cpu:.1f} s "
            f"({1000 * result.server_cpu / max(1, result.messages):.2f} ms/msg)"
            + (f"; meanwhile {result.services}" if result.services else "")
        )
        for failure in result.failures:
            print(f"   !! {failure}")
        if result.failures and result.messages == 0:
            break
    warnings = [
        line
        for line in target.log.read_text(errors="replace").splitlines()
        if " WARNING " in line or ": Warning: " in line or ": Error: " in line
    ]
    if warnings:
        print(f"server log: {len(warnings)} warning/error lines; the first: {warnings[0]}")
    if clamd:
        reply = await deliver_one(
            target, addresses[0], small_message(addresses[0], EICAR + b"\r\n")
        )
        verdict = "refused as expected" if reply.code == 554 else "NOT refused"
        print(f"EICAR check: {reply.code} {reply.text} ({verdict})")
        if reply.code != 554:
            for result in results.values():
                result.failures.append(f"EICAR not refused: {reply.code} {reply.text}")
        else:
            problems = await verify_counts(target, expected)
            for problem in problems:
                print(f"   !! after the EICAR check: {problem}")
    return results


# --- peak RSS -------------------------------------------------------------------


def reset_peak_rss(pid: int) -> None:
    """Make the kernel's peak RSS (VmHWM) of ``pid`` start again from its current RSS."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} in /proc/{pid}/status")


async def peak_rss(target: Target, size: int) -> None:
    address = user_address(1)
    pids = process_tree(target.pid)
    if len(pids) != 1:
        print(f"!! the server has {len(pids) - 1} child processes; only its own RSS is measured")
    # Warm-up: imports, pools, the first delivery's code paths.
    for _ in range(3):
        reply = await deliver_one(target, address, large_message(address, 256 * 1024))
        if reply.code != 250:
            print(f"!! warm-up delivery refused: {reply.code} {reply.text}")
            return
    before_kb = status_kb(target.pid, "VmRSS")
    reset_peak_rss(target.pid)
    reset_kb = status_kb(target.pid, "VmHWM")
    sent = sum(len(chunk) for chunk in large_message(address, size))
    started = time.perf_counter()
    reply = await deliver_one(target, address, large_message(address, size))
    elapsed = time.perf_counter() - started
    peak_kb = status_kb(target.pid, "VmHWM")
    after_kb = status_kb(target.pid, "VmRSS")
    counts = await target.counts()
    stored = 0
    if target.env is not None:
        async with open_node(load_settings(None, dict(target.env))) as node:
            user = await node.accounts.get_user(address)
            inbox = await node.store.get_mailbox(user.id, "INBOX")
            infos = await node.store.list_messages(inbox)
            stored = max((info.size for info in infos), default=0)
    print(f"\n== peak RSS: one {size / 2**20:.0f} MiB message, {target.name} ==")
    print(f"delivery:        {reply.code} {reply.text}")
    print(f"time:            {elapsed:.2f} s ({sent / 2**20 / elapsed:.0f} MiB/s)")
    print(f"RSS before:      {before_kb / 1024:.1f} MiB (VmHWM after reset {reset_kb / 1024:.1f})")
    print(f"peak RSS (HWM):  {peak_kb / 1024:.1f} MiB; RSS after {after_kb / 1024:.1f} MiB")
    print(f"peak RSS growth: {(peak_kb - before_kb) / 1024:.1f} MiB")
    print(f"stored message:  {stored} bytes (sent {sent} before dot-stuffing)")
    if stored < sent:
        print("!! the stored message is shorter than the one sent")
    if counts.get(address) != 4:
        print(f"!! {address} holds {counts.get(address)} messages, expected 4")


# --- main ----------------------------------------------------------------------


def lightmail_variants(args: argparse.Namespace) -> list[tuple[str, bool]]:
    clamd = {"off": [False], "on": [True], "both": [False, True]}[args.antivirus]
    return [(backend, with_clamd) for backend in backends(args.backend) for with_clamd in clamd]


async def run(args: argparse.Namespace, smtp_source: Path | None, seaweed: S3Server | None) -> None:
    results: dict[str, tuple[str, dict[int, RunResult]]] = {}
    base_env = {"LIGHTMAIL_LMTP_MAX_MESSAGE_SIZE": str(max(64 << 20, 2 * args.rss_size))}
    if not args.only_rss:
        assert smtp_source is not None
        runs = [
            (workers, backend, with_clamd)
            for workers in args.workers
            for backend, with_clamd in lightmail_variants(args)
        ]
        for workers, backend, with_clamd in runs:
            key = backend + ("+clamd" if with_clamd else "") + f", workers {workers}"
            name = lightmail_name(backend, workers, " + clamd" if with_clamd else "")
            env = {
                **base_env,
                "LIGHTMAIL_SERVER_WORKERS": workers,
                **backend_env(backend, args.mysql_url, seaweed),
            }
            mysql_url = None if backend == "sqlite" else args.mysql_url
            with contextlib.ExitStack() as stack:
                if with_clamd:
                    clamd_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                    clamd = stack.enter_context(running_clamd(clamd_dir, stream_max_length="25M"))
                    env.update(
                        {
                            "LIGHTMAIL_ANTIVIRUS_MODE": "reject",
                            "LIGHTMAIL_ANTIVIRUS_CLAMD": f"unix:{clamd.unix.path}",
                            "LIGHTMAIL_ANTIVIRUS_STREAM_MAX_LENGTH": "25M",
                        }
                    )
                async with running_lightmail(
                    key, name, args.users, env, mysql_url=mysql_url
                ) as target:
                    results[key] = (name, await bench_target(smtp_source, target, args, with_clamd))
        if args.dovecot:
            with dovecot_target(args.users, max(args.concurrency) + 10) as target:
                results["dovecot"] = (
                    target.name,
                    await bench_target(smtp_source, target, args, False),
                )
        summary(args, results)
    if args.rss_size > 0:
        env = {**base_env, "LIGHTMAIL_SERVER_WORKERS": "1"}
        mysql_url = None
        if args.rss_backend == "s3":
            assert seaweed is not None
            env.update(s3_env(args.mysql_url, seaweed))
            mysql_url = args.mysql_url
        name = lightmail_name(args.rss_backend, "1")
        async with running_lightmail(args.rss_backend, name, 1, env, mysql_url=mysql_url) as target:
            await peak_rss(target, args.rss_size)


def summary(
    args: argparse.Namespace, results: Mapping[str, tuple[str, dict[int, RunResult]]]
) -> None:
    print(
        f"\n== summary: messages/s, {args.messages} messages of {args.size} bytes "
        f"to {args.users} users per run, smtp-source -L"
        + (" -d" if args.keep_connections else "")
        + " =="
    )
    columns = "".join(f"{'c=' + str(c):>10}" for c in args.concurrency)
    width = max(len("ratio LightMail / Dovecot"), *(len(name) for name, _ in results.values())) + 2
    print(f"{'target':<{width}}{columns}")
    for name, runs in results.values():
        cells = ""
        for concurrency in args.concurrency:
            run_ = runs.get(concurrency)
            if run_ is None:
                cells += f"{'-':>10}"
            else:
                mark = "!" if run_.failures else ""
                cells += f"{f'{run_.rate:.1f}{mark}':>10}"
        print(f"{name:<{width}}{cells}")
    dovecot = results.get("dovecot")
    if dovecot is not None:
        print(f"\n{'ratio LightMail / Dovecot':<{width}}{columns}")
        for key, (name, runs) in results.items():
            if key == "dovecot":
                continue
            cells = ""
            for concurrency in args.concurrency:
                mine, theirs = runs.get(concurrency), dovecot[1].get(concurrency)
                if mine is None or theirs is None or theirs.rate == 0:
                    cells += f"{'-':>10}"
                else:
                    cells += f"{mine.rate / theirs.rate:>10.2f}"
            print(f"{name:<{width}}{cells}")
    if any(run_.failures for _, runs in results.values() for run_ in runs.values()):
        print("(! = the run failed or the stored counts were wrong; see above)")


def concurrency_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(value < 1 or value > 1000 for value in values):
        raise argparse.ArgumentTypeError("comma-separated session counts from 1 to 1000")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--concurrency", type=concurrency_list, default=[1, 10], help="sessions, e.g. 1,10"
    )
    parser.add_argument(
        "--messages", type=int, default=1000, help="messages per run, a multiple of --users"
    )
    parser.add_argument("--users", type=int, default=100, help="recipients (100)")
    parser.add_argument("--size", type=parse_size, default=10240, help="payload bytes (10240)")
    add_backend_option(parser)
    parser.add_argument(
        "--antivirus",
        choices=["off", "on", "both"],
        default="both",
        help="LightMail without clamd, with it (mode=reject), or both (default)",
    )
    add_workers_option(parser)
    parser.add_argument("--dovecot", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--keep-connections",
        action="store_true",
        help="smtp-source -d: several messages per connection",
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=300.0,
        help="seconds one smtp-source process may take (300)",
    )
    parser.add_argument(
        "--rss-size", type=parse_size, default=parse_size("50M"), help="0: no RSS measurement"
    )
    parser.add_argument("--rss-backend", choices=["sqlite", "s3"], default="sqlite")
    parser.add_argument("--only-rss", action="store_true", help="skip the throughput runs")
    parser.add_argument("--mysql-url", default=BENCH_MYSQL_URL)
    args = parser.parse_args()
    if not 1 <= args.users <= 100_000:
        parser.error("--users must be from 1 to 100000")
    if args.messages < args.users or args.messages % args.users:
        parser.error("--messages must be a positive multiple of --users")
    if args.messages // args.users > 10_000:
        parser.error("--messages / --users must be at most 10000")
    if not 1 <= args.size <= 1 << 30 or args.rss_size < 0:
        parser.error("--size must be from 1 byte to 1G, --rss-size at least 0")
    if args.only_rss and args.rss_size == 0:
        parser.error("--only-rss needs --rss-size above 0")
    if args.rss_size and os.geteuid() != 0:
        print("note: resetting VmHWM needs the right to write /proc/PID/clear_refs")
    smtp_source = None
    if not args.only_rss:
        smtp_source = find_smtp_source()
        if smtp_source is None:
            parser.error("smtp-source not found: apt-get install postfix")
        if args.antivirus != "off" and find_clamd() is None:
            parser.error("clamd not found: apt-get install clamav-daemon (or --antivirus off)")
        if args.dovecot and (missing := dovecot_missing("lmtp")) is not None:
            parser.error(f"{missing} (or --no-dovecot)")
    needs_s3 = (not args.only_rss and args.backend != "sqlite") or (
        args.rss_size > 0 and args.rss_backend == "s3"
    )
    if needs_s3 and not mariadb_listening():
        parser.error("the MariaDB + SeaweedFS runs need MariaDB on 127.0.0.1:3306")
    if not args.only_rss:
        print(
            f"LMTP throughput: {args.messages} messages of {args.size} bytes to {args.users} users "
            f"per run, concurrency {', '.join(map(str, args.concurrency))}"
        )
    if needs_s3:
        with running_seaweedfs() as seaweed:
            asyncio.run(run(args, smtp_source, seaweed))
    else:
        asyncio.run(run(args, smtp_source, None))


if __name__ == "__main__":
    main()
