"""A hostile LIST/LSUB pattern against a long mailbox name, and what it costs everyone else.

Issue #14: LightMail matched LIST and LSUB patterns with a backtracking regex
on the event loop, so ``LIST "" "*a*a*a*a*b"`` against a mailbox named with
500 ``a``s (which any user can create and subscribe) kept the whole node busy
for seconds. This starts ``python -m lightmail serve`` (SQLite + filesystem) as
a child on a free loopback port, with two users:

- the attacker creates and subscribes a mailbox of ``--length`` ``a``s
  (default 500), then sends ``LIST "" PATTERN`` and ``LSUB "" PATTERN``
  (``--pattern``, default ``*a*a*a*a*b``, which matches nothing there);
- meanwhile a bystander, another user, sends NOOP after NOOP.

It prints the time of each hostile command and the bystander's NOOP latency
while it ran (count, median, max), next to a plain ``LIST "" "*"``. Timings
depend on the machine; compare runs on one machine. To measure another
checkout (e.g. the commit before the fix), run this file with that checkout's
``src`` first on ``PYTHONPATH``; the server started here inherits it.

    uv run python bench/imap_list_pattern.py
    uv run python bench/imap_list_pattern.py --length 300 --pattern '*a*a*a*b'
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imap_load import ImapClient, ImapError, quote, running_lightmail, user_address, user_password

import lightmail


@dataclass(frozen=True, slots=True)
class Timing:
    seconds: float
    reply: bytes  # the tagged line
    noops: list[float]  # the bystander's NOOP round trips meanwhile, in seconds


async def send(client: ImapClient, tag: bytes, line: bytes) -> bytes:
    """``tag line``; the tagged reply (untagged lines are read and dropped)."""
    client.writer.write(tag + b" " + line + b"\r\n")
    await client.writer.drain()
    while True:
        answer = await client.read_line()
        if answer.startswith(tag + b" "):
            return answer.rstrip(b"\r\n")


async def noops(client: ImapClient, stop: asyncio.Event) -> list[float]:
    """NOOP after NOOP (10 ms apart) until ``stop``; at least one."""
    latencies: list[float] = []
    while True:
        started = time.perf_counter()
        reply = await send(client, b"N%d" % len(latencies), b"NOOP")
        latencies.append(time.perf_counter() - started)
        if b" OK " not in reply:
            raise ImapError(f"NOOP: {reply!r}")
        if stop.is_set():
            return latencies
        await asyncio.sleep(0.01)


async def timed(attacker: ImapClient, bystander: ImapClient, tag: bytes, line: bytes) -> Timing:
    """``line`` from the attacker, with the bystander's NOOPs meanwhile."""

    async def command() -> tuple[bytes, float]:
        started = time.perf_counter()
        reply = await send(attacker, tag, line)
        return reply, time.perf_counter() - started

    stop = asyncio.Event()
    hostile = asyncio.create_task(command())
    await asyncio.sleep(0)  # the attacker's command is written first
    watcher = asyncio.create_task(noops(bystander, stop))
    try:
        reply, seconds = await hostile
    finally:
        stop.set()
    return Timing(seconds, reply, await watcher)


def show(label: str, timing: Timing) -> None:
    noop = timing.noops
    print(
        f"{label:<34} {timing.seconds * 1000:>10.1f} ms   "
        f"bystander NOOPs: {len(noop):>4}, median {statistics.median(noop) * 1000:>8.1f} ms, "
        f"max {max(noop) * 1000:>8.1f} ms   -> {timing.reply.decode(errors='replace')}"
    )


async def run(args: argparse.Namespace) -> None:
    print(f"lightmail from {Path(lightmail.__file__).parent}")
    print(f"mailbox: {args.length} x 'a'; pattern: {args.pattern!r}")
    async with running_lightmail("LightMail (SQLite)", 2, {}) as target:
        attacker = await ImapClient.connect(target.host, target.port)
        bystander = await ImapClient.connect(target.host, target.port)
        try:
            await attacker.ok(b"LOGIN " + quote(user_address(0)) + b" " + quote(user_password(0)))
            await bystander.ok(b"LOGIN " + quote(user_address(1)) + b" " + quote(user_password(1)))
            name = b"a" * args.length
            await attacker.ok(b"CREATE " + name)
            await attacker.ok(b"SUBSCRIBE " + name)
            pattern = quote(args.pattern)
            commands = [
                ('plain LIST "" "*"', b'LIST "" "*"'),
                ("hostile LIST", b'LIST "" ' + pattern),
                ("hostile LSUB", b'LSUB "" ' + pattern),
            ]
            for i in range(args.repeat):
                for n, (label, line) in enumerate(commands):
                    async with asyncio.timeout(args.timeout):
                        timing = await timed(attacker, bystander, b"C%d.%d" % (i, n), line)
                    show(label, timing)
        finally:
            attacker.abort()
            bystander.abort()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=500, help="'a's in the mailbox name")
    parser.add_argument("--pattern", default="*a*a*a*a*b", help="the hostile LIST/LSUB pattern")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three commands")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds to wait for one command"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
