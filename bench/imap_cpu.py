"""Server CPU time per IMAP command type, LightMail only.

A LightMail server (``--backend sqlite``: SQLite + filesystem; ``s3``:
MariaDB ``lightmail_bench`` + a SeaweedFS started here) gets ``--users``
users with ``--messages`` messages each in INBOX (through IMAP APPEND). Then
``--clients`` connections log in and SELECT INBOX once (LOGIN is not
measured: it is an argon2id hash by design), and each command type below is
sent ``--repeat`` times per connection, all connections at once, one type
after the other. For each type the script prints the server's CPU time
(user + system, from /proc) divided by the commands sent, in microseconds,
and the commands per second:

SELECT INBOX, NOOP, FETCH 1:50 FLAGS, FETCH 1:50 (UID FLAGS RFC822.SIZE
BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)]), FETCH n BODY.PEEK[], STORE
n +FLAGS / -FLAGS (\\Seen) (alternately), UID SEARCH UNSEEN, UID SEARCH
SUBJECT, STATUS INBOX (MESSAGES UNSEEN), APPEND of a 5 KB message (last, as
it grows the mailbox).

    uv run python bench/imap_cpu.py
    uv run python bench/imap_cpu.py --backend s3 --repeat 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import imap_load as load

from tests.support.mariadb import mariadb_listening
from tests.support.s3server import running_seaweedfs

# name -> the command line of the i-th repetition (the literal, if any, is made apart)
Command = Callable[[int, int], bytes]

COMMANDS: dict[str, Command] = {
    "SELECT INBOX": lambda i, exists: b"SELECT INBOX",
    "NOOP": lambda i, exists: b"NOOP",
    "FETCH 1:50 FLAGS": lambda i, exists: b"FETCH 1:%d FLAGS" % min(50, exists),
    "FETCH 1:50 headers": lambda i, exists: (
        b"FETCH 1:%d (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"
        % min(50, exists)
    ),
    "FETCH n BODY.PEEK[]": lambda i, exists: b"FETCH %d BODY.PEEK[]" % (i % exists + 1),
    "STORE n +/-FLAGS": lambda i, exists: (
        b"STORE %d %sFLAGS (\\Seen)" % (i // 2 % exists + 1, b"-" if i % 2 else b"+")
    ),
    "UID SEARCH UNSEEN": lambda i, exists: b"UID SEARCH UNSEEN",
    "UID SEARCH SUBJECT": lambda i, exists: b"UID SEARCH SUBJECT " + load.SUBJECT_WORD.encode(),
    "STATUS INBOX": lambda i, exists: b"STATUS INBOX (MESSAGES UNSEEN)",
    "APPEND 5K": lambda i, exists: b"APPEND INBOX",
}


async def measure(
    target: load.Target, clients: list[tuple[load.ImapClient, int]], name: str, repeat: int
) -> tuple[float, float]:
    """CPU microseconds per command and commands per second for one command type."""
    line_of = COMMANDS[name]
    rng = random.Random(7)
    bodies = (
        [load.make_message(rng, load.user_address(0), 20_000 + i, 5000) for i in range(repeat)]
        if name == "APPEND 5K"
        else None
    )

    async def drive(client: load.ImapClient, exists: int) -> None:
        for i in range(repeat):
            await client.ok(line_of(i, exists), None if bodies is None else bodies[i])

    cpu_before = load.cpu_seconds(target.pid)
    started = time.perf_counter()
    await asyncio.gather(*(drive(client, exists) for client, exists in clients))
    elapsed = time.perf_counter() - started
    cpu = load.cpu_seconds(target.pid) - cpu_before
    count = repeat * len(clients)
    return 1e6 * cpu / count, count / elapsed


@contextlib.asynccontextmanager
async def logged_in(
    target: load.Target, count: int, users: int
) -> AsyncIterator[list[tuple[load.ImapClient, int]]]:
    """``count`` connections, each logged in (as user i mod users) with INBOX selected."""
    clients: list[tuple[load.ImapClient, int]] = []
    try:
        for index in range(count):
            client = await load.ImapClient.connect(target.host, target.port)
            user = index % users
            address, password = load.user_address(user), load.user_password(user)
            await client.ok(b"LOGIN " + load.quote(address) + b" " + load.quote(password))
            exists = load.exists_of(await client.ok(b"SELECT INBOX"))
            clients.append((client, exists))
        yield clients
    finally:
        for client, _ in clients:
            with contextlib.suppress(Exception):
                await client.ok(b"LOGOUT")
            await client.close()


async def bench(target: load.Target, args: argparse.Namespace) -> None:
    print(f"server pid {target.pid}", flush=True)
    await load.seed(target, args.users, args.messages, 1)
    async with logged_in(target, args.clients, args.users) as clients:
        # a warm-up pass of every type, untimed
        for name in COMMANDS:
            if name != "APPEND 5K":
                await measure(target, clients, name, 2)
        print(f"{'command':<24}{'CPU us/cmd':>12}{'cmds/s':>10}")
        total_cpu = 0.0
        for name in args.only or COMMANDS:
            cpu_us, rate = await measure(target, clients, name, args.repeat)
            total_cpu += cpu_us
            print(f"{name:<24}{cpu_us:>12.0f}{rate:>10.0f}", flush=True)
        print(f"{'mean of the types':<24}{total_cpu / len(args.only or COMMANDS):>12.0f}")


async def run(args: argparse.Namespace) -> None:
    print(
        f"{args.clients} clients, {args.users} users, {args.messages} messages per user, "
        f"{args.repeat} commands of each type per client; backend {args.backend}"
    )
    limits = load.connection_limits(args.clients, args.users)
    if args.backend == "sqlite":
        async with load.running_lightmail(
            "LightMail (SQLite + filesystem)", args.users, limits
        ) as target:
            await bench(target, args)
        return
    if not mariadb_listening():
        raise SystemExit("--backend s3 needs MariaDB on 127.0.0.1:3306")
    with running_seaweedfs() as seaweed:
        env = {**limits, **load.s3_env(args.mysql_url, seaweed)}
        async with load.running_lightmail(
            "LightMail (MariaDB + SeaweedFS)", args.users, env, mysql_url=args.mysql_url
        ) as target:
            await bench(target, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "s3"), default="sqlite")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--messages", type=int, default=100, help="seeded per user (100)")
    parser.add_argument("--repeat", type=int, default=50, help="commands of each type per client")
    parser.add_argument("--only", action="append", choices=list(COMMANDS), help="these types only")
    parser.add_argument("--mysql-url", default=load.BENCH_MYSQL_URL)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
