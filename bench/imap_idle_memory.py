"""Server memory per idle IMAP connection: LightMail against Dovecot.

Opens ``--connections`` connections (default 2000), each LOGIN + SELECT INBOX
+ IDLE, spread over ``--users`` users (default 20) whose INBOX holds
``--messages`` messages (default 50, appended over IMAP, the same for both
servers), and prints how much the server's memory grew per connection:

- LightMail (SQLite + filesystem): the ``python -m lightmail serve`` started
  here, once for each ``--workers`` value (``[server] workers``; default
  ``1,auto``, labelled "..., workers N"), summed over the supervisor and its
  workers when there are several, with ``[imap] max_connections``,
  ``max_connections_per_ip`` and ``max_connections_per_user`` raised through
  ``LIGHTMAIL_IMAP_*`` for the run; with ``--compress``, once more per
  value with every connection under COMPRESS=DEFLATE (RFC 4978) after LOGIN,
  labelled "... COMPRESS=DEFLATE": what an idle compressed connection costs;
- Dovecot (``dovecot-imapd``, configured in a temporary folder by
  ``bench/_dovecot.py``): the sum over the master and all its children
  (``imap-login``, ``auth``, one ``imap`` process per connection, ...).

RSS is read from /proc; PSS (shared pages split between the processes that
map them) is shown beside it, since summing RSS counts Dovecot's shared
libraries once per process. "per connection" is (all open - before) / N;
"marginal" is (all open - half open) / (N/2), which leaves out one-time costs.
The open file limit of this process (and so of the servers it starts) is
raised to what the run needs.

    uv run python bench/imap_idle_memory.py                     # 2000 connections to each
    uv run python bench/imap_idle_memory.py --connections 500 --no-dovecot
    uv run python bench/imap_idle_memory.py --workers 1 --no-dovecot
    uv run python bench/imap_idle_memory.py --workers 1 --no-dovecot --compress
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dovecot import dovecot_missing, tree_memory_kb
from imap_load import (
    COMMAND_TIMEOUT,
    ImapClient,
    ImapError,
    Target,
    add_workers_option,
    dovecot_target,
    lightmail_name,
    quote,
    running_lightmail,
    seed,
    user_address,
    user_password,
)


@dataclass(frozen=True, slots=True)
class Memory:
    rss_kb: int
    pss_kb: int
    processes: int


@dataclass(frozen=True, slots=True)
class Measurement:
    target: Target
    connections: int
    before: Memory
    half: Memory
    full: Memory
    open_seconds: float
    still_idle: int  # connections that answered DONE with OK at the end


def memory(target: Target) -> Memory:
    rss, pss, processes = tree_memory_kb(target.pid)
    return Memory(rss, pss, processes)


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            sys.exit(f"need {needed} open files, the hard limit is {hard}: raise it (ulimit -Hn)")
        return
    if soft == resource.RLIM_INFINITY or soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def open_idle(target: Target, index: int, users: int, compress: bool) -> ImapClient:
    user = index % users
    client = await ImapClient.connect(target.host, target.port)
    try:
        await client.ok(b"LOGIN " + quote(user_address(user)) + b" " + quote(user_password(user)))
        if compress:
            await client.compress()
        await client.ok(b"SELECT INBOX")
        await client.start_idle()
    except BaseException:
        client.abort()
        raise
    return client


async def open_many(
    target: Target,
    first: int,
    count: int,
    args: argparse.Namespace,
    compress: bool,
    clients: list[ImapClient],
) -> None:
    """Open connections ``first`` .. ``first + count - 1``, ``parallel`` at a time."""
    semaphore = asyncio.Semaphore(args.parallel)
    started = time.monotonic()

    async def one(index: int) -> None:
        async with semaphore:
            clients.append(await open_idle(target, index, args.users, compress))
            if len(clients) % 250 == 0:
                print(
                    f"  {len(clients)} connections idling ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )

    await asyncio.gather(*(one(first + i) for i in range(count)))


async def end_idle(client: ImapClient) -> bool:
    """DONE, expect the IDLE's tagged OK, LOGOUT; True if the server still served it."""
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            client.send(b"DONE\r\n")
            await client.writer.drain()
            while True:
                line = await client.read_line()
                if line.startswith(b"A"):
                    ok = line.split(b" ", 2)[1] == b"OK"
                    break
            await client.command(b"LOGOUT")
        return ok
    except (OSError, ImapError, TimeoutError):
        return False
    finally:
        client.abort()


async def measure(target: Target, args: argparse.Namespace, compress: bool = False) -> Measurement:
    seconds = await seed(target, args.users, args.messages, seed_value=1)
    print(f"{target.name}: seeded {args.users * args.messages} messages in {seconds:.1f} s")
    await asyncio.sleep(args.settle)
    before = memory(target)
    clients: list[ImapClient] = []
    half_count = args.connections // 2
    try:
        started = time.monotonic()
        await open_many(target, 0, half_count, args, compress, clients)
        await asyncio.sleep(args.settle)
        half = memory(target)
        await open_many(target, half_count, args.connections - half_count, args, compress, clients)
        open_seconds = time.monotonic() - started - args.settle
        await asyncio.sleep(args.settle)
        full = memory(target)
        results = await asyncio.gather(*(end_idle(client) for client in clients))
        clients.clear()
    finally:
        for client in clients:
            client.abort()
    if compress:
        target = dataclasses.replace(target, name=target.name + " COMPRESS=DEFLATE")
    return Measurement(target, args.connections, before, half, full, open_seconds, sum(results))


def report(m: Measurement) -> None:
    n = m.connections
    half = n // 2
    rest = n - half
    print(f"\n== {m.target.name}: {n} connections (LOGIN + SELECT INBOX + IDLE) ==")
    print(
        f"opened in {m.open_seconds:.0f} s ({n / m.open_seconds:.0f}/s); "
        f"still idling at the end: {m.still_idle}"
    )
    print(f"{'':<22} {'processes':>9} {'RSS MiB':>9} {'PSS MiB':>9}")
    for label, mem in (("before", m.before), (f"{half} open", m.half), (f"{n} open", m.full)):
        print(f"{label:<22} {mem.processes:>9} {mem.rss_kb / 1024:>9.1f} {mem.pss_kb / 1024:>9.1f}")
    print(
        f"{'per connection KiB':<22} {'':>9} {(m.full.rss_kb - m.before.rss_kb) / n:>9.1f} "
        f"{(m.full.pss_kb - m.before.pss_kb) / n:>9.1f}"
    )
    print(
        f"{'marginal KiB':<22} {'':>9} {(m.full.rss_kb - m.half.rss_kb) / rest:>9.1f} "
        f"{(m.full.pss_kb - m.half.pss_kb) / rest:>9.1f}"
    )


def per_connection(m: Measurement, pss: bool) -> float:
    after = m.full.pss_kb if pss else m.full.rss_kb
    before = m.before.pss_kb if pss else m.before.rss_kb
    return (after - before) / m.connections


async def run(args: argparse.Namespace) -> None:
    lightmail: list[Measurement] = []
    per_user = math.ceil(args.connections / args.users) + 10
    limits = {
        "LIGHTMAIL_IMAP_MAX_CONNECTIONS": str(args.connections + 100),
        "LIGHTMAIL_IMAP_MAX_CONNECTIONS_PER_IP": str(args.connections + 100),
        "LIGHTMAIL_IMAP_MAX_CONNECTIONS_PER_USER": str(per_user),
    }
    if args.lightmail:
        for workers in args.workers:
            env = {**limits, "LIGHTMAIL_SERVER_WORKERS": workers}
            name = lightmail_name("sqlite", workers)
            async with running_lightmail(name, args.users, env) as target:
                lightmail.append(await measure(target, args))
                report(lightmail[-1])
            if args.compress:  # a server of its own, so the first run leaves nothing behind
                async with running_lightmail(name, args.users, env) as target:
                    lightmail.append(await measure(target, args, compress=True))
                    report(lightmail[-1])
    dovecot: Measurement | None = None
    if args.dovecot:
        with dovecot_target(args.users, args.connections, args.dovecot_login) as target:
            dovecot = await measure(target, args)
            report(dovecot)
    summary([*lightmail, *([dovecot] if dovecot else [])], dovecot)


def summary(measurements: list[Measurement], dovecot: Measurement | None) -> None:
    """KiB per connection of every target, and each LightMail run's ratio to Dovecot's."""
    width = max(len(m.target.name) for m in measurements) + 2
    ratios = "" if dovecot is None else f"{'RSS ratio':>10} {'PSS ratio':>10}"
    print("\n== summary: server memory growth per idle connection ==")
    print(f"{'target':<{width}}{'RSS KiB':>9} {'PSS KiB':>9} {ratios}".rstrip())
    for m in measurements:
        rss, pss = per_connection(m, pss=False), per_connection(m, pss=True)
        cells = ""
        if dovecot is not None and m is not dovecot:
            cells = (
                f"{rss / per_connection(dovecot, pss=False):>10.2f} "
                f"{pss / per_connection(dovecot, pss=True):>10.2f}"
            )
        print(f"{m.target.name:<{width}}{rss:>9.1f} {pss:>9.1f} {cells}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50, help="messages in each INBOX")
    parser.add_argument("--parallel", type=int, default=8, help="connections opened at once")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before each reading")
    add_workers_option(parser)
    parser.add_argument(
        "--compress",
        action="store_true",
        help="also measure LightMail with each connection under COMPRESS=DEFLATE (RFC 4978)",
    )
    parser.add_argument("--lightmail", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--dovecot", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--dovecot-login",
        choices=["performance", "security"],
        default="performance",
        help="Dovecot's imap-login: a few processes for all clients, or one per connection",
    )
    args = parser.parse_args()
    if not 2 <= args.connections <= 50_000 or args.users < 1 or args.messages < 1:
        parser.error("--connections from 2 to 50000, --users and --messages at least 1")
    if not 1 <= args.parallel <= 1000 or not 0 <= args.settle <= 60:
        parser.error("--parallel from 1 to 1000, --settle from 0 to 60")
    if not args.lightmail and not args.dovecot:
        parser.error("--no-lightmail and --no-dovecot leave nothing to measure")
    if args.dovecot and (missing := dovecot_missing("imap")) is not None:
        parser.error(f"{missing} (or --no-dovecot)")
    # This process holds every client socket; the server started from it inherits the limit.
    raise_fd_limit(2 * args.connections + 1000)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
