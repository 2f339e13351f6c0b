"""LightMail as a cluster: LMTP throughput and the IMAP mixed load through 1 and 2 nodes
on a 3-node MariaDB Galera cluster, and through 1 node on a single MariaDB.

Setups (``--setups``, all three by default), each on SeaweedFS (one started
here, a fresh key prefix per setup) and a fresh schema:

- ``single``: one ``lightmail serve`` on the machine's MariaDB (127.0.0.1:3306,
  database ``lightmail_bench_cluster``, created if missing, its tables dropped
  and re-created; ``--mysql-url`` chooses another), without Redis: the node's
  own change events, as a node alone runs;
- ``galera-1``: one node on Galera node 1, with ``[notify] url`` on the
  machine's Redis (``--redis-url``, default ``redis://127.0.0.1:6379/11``: its
  own database number, so its channel and keys are apart from the tests');
- ``galera-2``: two nodes, A on Galera node 1 and B on Galera node 2, sharing
  SeaweedFS and Redis, the load split evenly between them.

The Galera cluster is started here with ``tests/support/galera.py`` (3
``mariadbd`` on loopback, rsync state transfer, ``innodb_flush_log_at_trx_commit=0``
as in the tests; the single MariaDB keeps the machine's own settings). Each
node runs ``[server] workers`` = ``--workers`` (default auto: one per CPU).

LMTP: Postfix's ``smtp-source -L`` (as ``bench/lmtp_throughput.py`` runs it)
sends ``--messages`` messages of ``--size`` bytes (default 1000 of 10240) to
``--users`` recipients (``1@bench.example`` ...), ``--clients`` sessions in
all. With two nodes each node gets half the sessions and half the messages,
both streams at once and to the same recipients, so the two nodes change the
same mailboxes' rows and Galera rolls some transactions back at certification
(LightMail runs them again: the "retries" printed, from each node's
``/metrics``). An untimed round per node comes first.

IMAP: ``bench/imap_load.py``'s client and round (LOGIN, SELECT, FETCH 1:50
headers, FETCH one body, STORE, UID SEARCH, APPEND 5 KB, LOGOUT), after
``--imap-messages`` messages per user are appended through the first node;
``--clients`` clients for ``--seconds`` seconds, client i logging in as user i
mod ``--imap-users`` (default 5). With two nodes client i goes to node
(i mod users + i // users) mod 2: about half the clients are on each node,
and with at least twice as many clients as users (the defaults: 10 and 5)
each user has sessions on both, which change the same mailbox's rows (STORE,
APPEND) through two Galera nodes, as a person's phone and laptop behind a
balancer would.

After every run the store is checked through the database: every user's INBOX
holds exactly what was acknowledged (each 250 and each APPEND OK stored once),
and its UIDs are 1 to n with UIDNEXT n + 1 (unique and consecutive, whichever
node delivered). The script prints each figure, the server CPU (every process
of every node), how busy the machine's CPUs were, the ratio of 2 nodes to 1 on
Galera, and each Galera figure against the single MariaDB.

    uv run python bench/cluster.py                                 # a few minutes
    uv run python bench/cluster.py --seconds 10 --messages 200 --users 20 --clients 4
    uv run python bench/cluster.py --setups galera-1,galera-2 --skip-imap --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import resource
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from lightmail.config import load_settings, parse_size
from lightmail.runtime import open_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import imap_load as imap
import lmtp_throughput as lmtp
from _dovecot import free_port

from tests.support.galera import GaleraCluster, galera_missing, running_galera
from tests.support.mariadb import mariadb_listening, recreate_schema
from tests.support.redis import listening
from tests.support.s3server import S3Server, running_seaweedfs

SETUPS = {
    "single": "1 node, single MariaDB",
    "galera-1": "1 node, Galera",
    "galera-2": "2 nodes, Galera",
}
DATABASE = "lightmail_bench_cluster"
MYSQL_URL = f"mysql+asyncmy://root@127.0.0.1:3306/{DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/11"
_RETRIES = re.compile(rb"^lightmail_db_transaction_retries_total ([0-9.e+]+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Node:
    """One running ``lightmail serve`` and its settings."""

    name: str
    pid: int
    imap: int
    lmtp: int
    api: int
    log: Path
    env: Mapping[str, str]


@dataclass(slots=True)
class Figure:
    """One run: its rate (messages/s or commands/s) and what went wrong."""

    rate: float
    detail: str
    failures: list[str] = field(default_factory=list)


# --- nodes ---------------------------------------------------------------------


async def _wait_running(process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 90
    while "lightmail is running" not in imap.log_tail(log, 1000):
        if process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"lightmail serve did not start:\n{imap.log_tail(log)}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def running_node(
    name: str, workdir: Path, settings: Mapping[str, str]
) -> AsyncIterator[Node]:
    """``python -m lightmail serve`` with IMAP, LMTP and the API on free ports."""
    await asyncio.to_thread(workdir.mkdir)
    ports = {"imap": free_port(), "lmtp": free_port(), "api": free_port()}
    env = imap.lightmail_env(
        workdir,
        ports["imap"],
        {
            "LIGHTMAIL_LMTP_LISTEN": f"127.0.0.1:{ports['lmtp']}",
            "LIGHTMAIL_API_LISTEN": f"127.0.0.1:{ports['api']}",
            **settings,
        },
    )
    log = workdir / "serve.log"
    async with imap.serve_process(name, workdir, env) as process:
        await _wait_running(process, log)
        yield Node(name, process.pid, ports["imap"], ports["lmtp"], ports["api"], log, env)


@asynccontextmanager
async def running_setup(
    label: str, urls: list[str], seaweed: S3Server, args: argparse.Namespace, redis: bool
) -> AsyncIterator[list[Node]]:
    """A fresh schema and users, then one node per database URL in ``urls``."""
    await imap.ensure_database(urls[0])
    await recreate_schema(urls[0])  # as `lightmail db upgrade`, on one database node
    common = {
        **imap.s3_env(urls[0], seaweed),  # one blob prefix for every node of the setup
        **imap.connection_limits(args.clients, args.imap_users),
        "LIGHTMAIL_SERVER_WORKERS": args.workers,
        **({"LIGHTMAIL_NOTIFY_URL": args.redis_url} if redis else {}),
    }
    async with open_node(load_settings(None, common)) as node:
        await node.accounts.add_domain(lmtp.DOMAIN)
        await asyncio.gather(
            *(
                node.accounts.add_user(address, "bench-password")
                for address in ([] if args.skip_lmtp else lmtp_users(args))
            ),
            *(
                node.accounts.add_user(imap.user_address(i), imap.user_password(i))
                for i in range(args.imap_users)
            ),
        )
    with tempfile.TemporaryDirectory(prefix="lightmail-bench-cluster-") as tmp:
        async with AsyncExitStack() as stack:
            nodes = [
                await stack.enter_async_context(
                    running_node(
                        f"{label}, node {'AB'[index]}",
                        Path(tmp) / f"node{index}",
                        {**common, "LIGHTMAIL_DATABASE_URL": url},
                    )
                )
                for index, url in enumerate(urls)
            ]
            print(
                f"\n== {label}: "
                + "; ".join(
                    f"{node.name[-6:]} pid {node.pid}, {url}"
                    for node, url in zip(nodes, urls, strict=True)
                )
                + " ==",
                flush=True,
            )
            yield nodes


def lmtp_users(args: argparse.Namespace) -> list[str]:
    return [lmtp.user_address(number) for number in range(1, args.users + 1)]


def server_cpu(nodes: list[Node]) -> float:
    return sum(imap.cpu_seconds(node.pid) for node in nodes)


def machine_ticks() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine, from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def retries(nodes: list[Node]) -> float:
    """Transactions run again after a Galera conflict, summed over the nodes' /metrics."""
    total = 0.0
    for node in nodes:
        url = f"http://127.0.0.1:{node.api}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            found = _RETRIES.search(response.read())
        total += float(found[1]) if found else 0.0
    return total


def load_generator_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (smtp-source)."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


@dataclass(slots=True)
class Meter:
    """From :meth:`start` to :meth:`stop`: the CPU of the nodes, of the database
    servers and of the load generator, how busy the machine was, and Galera retries."""

    nodes: list[Node]
    databases: list[int]  # the database servers' pids
    started: float = 0.0
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ticks: tuple[int, int] = (0, 0)
    retried: float = 0.0

    def _cpu(self) -> tuple[float, float, float]:
        databases = sum(imap.cpu_seconds(pid) for pid in self.databases)
        return server_cpu(self.nodes), databases, load_generator_cpu()

    async def start(self) -> None:
        self.retried = await asyncio.to_thread(retries, self.nodes)
        self.cpu, self.ticks = self._cpu(), machine_ticks()
        self.started = time.perf_counter()

    async def stop(self, count: int, unit: str) -> str:
        elapsed = time.perf_counter() - self.started
        cpu, databases, generator = (
            now - then for now, then in zip(self._cpu(), self.cpu, strict=True)
        )
        busy, total = (now - then for now, then in zip(machine_ticks(), self.ticks, strict=True))
        retried = await asyncio.to_thread(retries, self.nodes) - self.retried
        return (
            f"{count} {unit} in {elapsed:.1f} s; CPU s: LightMail {cpu:.1f} "
            f"({1000 * cpu / max(1, count):.2f} ms each), database {databases:.1f}, "
            f"load generator {generator:.1f}; machine CPUs {100 * busy / max(1, total):.0f}% "
            f"busy; {retried:.0f} transactions retried"
        )


# --- the store's check -------------------------------------------------------------


async def check_store(node: Node, expected: Mapping[str, int]) -> list[str]:
    """Each user's INBOX holds ``expected`` messages with UIDs 1..n and UIDNEXT n + 1."""
    problems: list[str] = []
    async with open_node(load_settings(None, dict(node.env))) as opened:
        for address, want in expected.items():
            user = await opened.accounts.get_user(address)
            inbox = await opened.store.get_mailbox(user.id, "INBOX")
            uids = [info.uid for info in await opened.store.list_messages(inbox)]
            if len(uids) != want:
                problems.append(f"{address} holds {len(uids)} messages, {want} acknowledged")
            elif uids != list(range(1, want + 1)) or inbox.uidnext != want + 1:
                problems.append(f"{address}: UIDs not 1..{want} (UIDNEXT {inbox.uidnext})")
    if len(problems) > 5:
        problems[5:] = [f"... and {len(problems) - 5} more"]
    return problems


# --- LMTP ----------------------------------------------------------------------------


def lmtp_target(node: Node, args: argparse.Namespace) -> lmtp.Target:
    counts = lmtp.lightmail_counts(node.env, lmtp_users(args))
    return lmtp.Target(node.name, node.name, "127.0.0.1", node.lmtp, node.pid, counts, node.log)


async def lmtp_stream(
    smtp_source: Path, target: lmtp.Target, args: argparse.Namespace, rounds: int, sessions: int
) -> tuple[int, str | None]:
    """``rounds`` smtp-source rounds (one message to every user each) through one node."""
    delivered = 0
    for _ in range(rounds):
        failure = await lmtp.smtp_source_round(
            smtp_source, target, args.users, sessions, args.size, False, args.round_timeout
        )
        if failure is not None:
            return delivered, f"{target.name}: {failure}"
        delivered += args.users
    return delivered, None


async def bench_lmtp(
    smtp_source: Path, nodes: list[Node], databases: list[int], args: argparse.Namespace
) -> Figure:
    targets = [lmtp_target(node, args) for node in nodes]
    sessions = max(1, args.clients // len(nodes))
    warm = await asyncio.gather(*(lmtp_stream(smtp_source, t, args, 1, sessions) for t in targets))
    meter = Meter(nodes, databases)
    await meter.start()
    rounds = args.messages // (args.users * len(nodes))
    runs = await asyncio.gather(
        *(lmtp_stream(smtp_source, t, args, rounds, sessions) for t in targets)
    )
    detail = await meter.stop(sum(count for count, _ in runs), "messages")
    elapsed = time.perf_counter() - meter.started
    failures = [failure for _, failure in [*warm, *runs] if failure is not None]
    sent = sum(count for count, _ in [*warm, *runs]) // args.users
    failures += await check_store(nodes[0], dict.fromkeys(lmtp_users(args), sent))
    figure = Figure(sum(count for count, _ in runs) / elapsed, detail, failures)
    print(
        f"LMTP, {sessions} smtp-source session(s) per node: {figure.rate:.1f} msg/s; {detail}",
        flush=True,
    )
    for failure in figure.failures:
        print(f"   !! {failure}")
    return figure


# --- IMAP ----------------------------------------------------------------------------


def merge(stats: list[imap.Stats]) -> imap.Stats:
    total = imap.Stats()
    for one in stats:
        for operation, values in one.latencies.items():
            total.latencies[operation] += values
        total.errors.update(one.errors)
        total.first_errors += one.first_errors[: 10 - len(total.first_errors)]
        total.rounds += one.rounds
    return total


async def bench_imap(nodes: list[Node], databases: list[int], args: argparse.Namespace) -> Figure:
    targets = [imap.Target(node.name, "127.0.0.1", node.imap, node.pid) for node in nodes]
    users = args.imap_users
    seconds = await imap.seed(targets[0], users, args.imap_messages, 1)
    print(f"seeded {users * args.imap_messages} messages through node A in {seconds:.1f} s")
    stats = [imap.Stats() for _ in range(args.clients)]
    meter = Meter(nodes, databases)
    await meter.start()
    deadline = time.monotonic() + args.seconds

    async def client(index: int) -> None:
        target = targets[(index % users + index // users) % len(targets)]
        rng = random.Random(7919 + index)
        done = 0
        while time.monotonic() < deadline:
            await imap.one_round(target, index, done, users, rng, stats[index])
            done += 1

    await asyncio.gather(*(client(index) for index in range(args.clients)))
    total = merge(stats)
    detail = await meter.stop(total.operations, "commands")
    elapsed = time.perf_counter() - meter.started
    expected = dict.fromkeys((imap.user_address(i) for i in range(users)), args.imap_messages)
    for index, one in enumerate(stats):
        expected[imap.user_address(index % users)] += len(one.latencies["APPEND 5K"])
    failures = [f"{count} x {op} failed" for op, count in total.errors.items()]
    failures += total.first_errors[:3]
    failures += await check_store(nodes[0], expected)
    figure = Figure(total.operations / elapsed, detail, failures)
    print(f"IMAP, {args.clients} clients: {figure.rate:.1f} commands/s; {detail}", flush=True)
    shown = ("LOGIN", "SELECT", "STORE +FLAGS", "APPEND 5K")
    p50_p99 = (
        f"{op} {1000 * imap.percentile(values, 0.5):.0f}/{1000 * imap.percentile(values, 0.99):.0f}"
        for op, values in total.latencies.items()
        if values and op in shown
    )
    print(f"   {total.rounds} rounds; p50/p99 ms: " + ", ".join(p50_p99))
    for failure in figure.failures:
        print(f"   !! {failure}")
    return figure


# --- main ----------------------------------------------------------------------------


async def bench_setup(
    key: str,
    urls: list[str],
    databases: list[int],
    seaweed: S3Server,
    args: argparse.Namespace,
    smtp_source: Path | None,
) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    async with running_setup(SETUPS[key], urls, seaweed, args, key != "single") as nodes:
        if smtp_source is not None:
            figures["lmtp"] = await bench_lmtp(smtp_source, nodes, databases, args)
        if not args.skip_imap:
            figures["imap"] = await bench_imap(nodes, databases, args)
    return figures


def summary(results: dict[str, dict[str, Figure]], args: argparse.Namespace) -> None:
    kinds = [kind for kind in ("lmtp", "imap") if any(kind in r for r in results.values())]
    heads = {"lmtp": "LMTP msg/s", "imap": "IMAP cmds/s"}
    lmtp_run = f"LMTP {args.messages} x {args.size} bytes to {args.users} users"
    runs = [] if args.skip_lmtp else [lmtp_run]
    runs += [] if args.skip_imap else [f"IMAP {args.seconds:g} s, {args.imap_users} users"]
    print(
        f"\n== summary: {'; '.join(runs)}; {args.clients} clients; "
        f"workers {args.workers} per node =="
    )
    print(f"{'':<34}" + "".join(f"{heads[kind]:>14}" for kind in kinds))
    for key, figures in results.items():
        cells = ""
        for kind in kinds:
            figure = figures.get(kind)
            mark = "!" if figure is not None and figure.failures else ""
            cells += f"{(f'{figure.rate:.1f}' + mark) if figure else '-':>14}"
        print(f"{SETUPS[key]:<34}{cells}")
    ratios = [
        ("2 nodes / 1 node, Galera", "galera-2", "galera-1"),
        ("1 node Galera / single MariaDB", "galera-1", "single"),
        ("2 nodes Galera / single MariaDB", "galera-2", "single"),
    ]
    for label, top, bottom in ratios:
        if top in results and bottom in results:
            cells = ""
            for kind in kinds:
                mine, theirs = results[top].get(kind), results[bottom].get(kind)
                if mine is None or theirs is None or theirs.rate == 0:
                    cells += f"{'-':>14}"
                else:
                    cells += f"{mine.rate / theirs.rate:>14.2f}"
            print(f"{label:<34}{cells}")
    if any(f.failures for figures in results.values() for f in figures.values()):
        print("(! = errors, or the store did not hold exactly what was acknowledged; see above)")


async def run(
    args: argparse.Namespace,
    seaweed: S3Server,
    galera: GaleraCluster | None,
    smtp_source: Path | None,
) -> None:
    results: dict[str, dict[str, Figure]] = {}
    for key in args.setups:
        if key == "single":
            urls, databases = [args.mysql_url], system_mariadb()
        else:
            assert galera is not None
            urls = [node.url(DATABASE) for node in galera.nodes[: 1 if key == "galera-1" else 2]]
            databases = [node.process.pid for node in galera.nodes if node.process is not None]
        results[key] = await bench_setup(key, urls, databases, seaweed, args, smtp_source)
    summary(results, args)


def system_mariadb() -> list[int]:
    """The machine's MariaDB server (shared with whatever else uses it), if its pid
    file is readable."""
    with contextlib.suppress(OSError, ValueError):
        return [int(Path("/run/mysqld/mysqld.pid").read_text())]
    return []


def setups_list(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values or any(value not in SETUPS for value in values):
        raise argparse.ArgumentTypeError(f"comma-separated, of {', '.join(SETUPS)}")
    return [key for key in SETUPS if key in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", type=setups_list, default=list(SETUPS), help="(all three)")
    parser.add_argument("--seconds", type=float, default=30.0, help="IMAP load per setup (30)")
    parser.add_argument("--messages", type=int, default=1000, help="LMTP messages per setup")
    parser.add_argument("--users", type=int, default=100, help="LMTP recipients (100)")
    parser.add_argument("--size", type=parse_size, default=10240, help="LMTP payload (10240)")
    parser.add_argument("--clients", type=int, default=10, help="IMAP clients, LMTP sessions")
    parser.add_argument("--imap-users", type=int, default=5, help="IMAP users (5)")
    parser.add_argument("--imap-messages", type=int, default=100, help="seeded per IMAP user")
    parser.add_argument("--workers", default="auto", help="[server] workers of each node (auto)")
    parser.add_argument("--skip-imap", action="store_true")
    parser.add_argument("--skip-lmtp", action="store_true")
    parser.add_argument("--round-timeout", type=float, default=300.0, help="per smtp-source")
    parser.add_argument("--mysql-url", default=MYSQL_URL, help="the single MariaDB's database")
    parser.add_argument("--redis-url", default=REDIS_URL, help="[notify] url of the Galera setups")
    args = parser.parse_args()
    imap.workers_list(args.workers)  # auto or a count
    if args.skip_imap and args.skip_lmtp:
        parser.error("nothing to run: both --skip-imap and --skip-lmtp")
    if args.clients < 1 or args.users < 1 or args.imap_users < 1 or args.imap_messages < 1:
        parser.error("--clients, --users, --imap-users and --imap-messages must be at least 1")
    if not args.skip_lmtp and (args.messages < 2 * args.users or args.messages % (2 * args.users)):
        parser.error("--messages must be a positive multiple of twice --users (two nodes)")
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds must be above 0 and at most 3600")
    smtp_source = None if args.skip_lmtp else lmtp.find_smtp_source()
    if not args.skip_lmtp and smtp_source is None:
        parser.error("smtp-source not found: apt-get install postfix (or --skip-lmtp)")
    if "single" in args.setups and not mariadb_listening():
        parser.error("the single setup needs MariaDB on 127.0.0.1:3306")
    galera_setups = {"galera-1", "galera-2"} & set(args.setups)
    if galera_setups and (missing := galera_missing()) is not None:
        parser.error(missing)
    if galera_setups and not listening(urlsplit(args.redis_url).port or 6379):
        parser.error(f"the Galera setups need Redis at {args.redis_url}")
    with running_seaweedfs() as seaweed, contextlib.ExitStack() as stack:
        galera = None
        if galera_setups:
            started = time.monotonic()
            galera = stack.enter_context(running_galera())
            print(f"Galera cluster of 3 synced in {time.monotonic() - started:.0f} s", flush=True)
        asyncio.run(run(args, seaweed, galera, smtp_source))


if __name__ == "__main__":
    main()
