"""IMAP SEARCH fairness: one heavy SEARCH, and another user's NOOP latency meanwhile.

Issue #14: ``SEARCH TEXT q0 ... TEXT q4999`` on 5,000 messages took a core for
86 s in one command, and every other session of the node waited. This starts
``python -m lightmail serve`` as a child process (SQLite + filesystem in a
temporary folder), seeds user 0 with ``--messages`` plain-text messages of about
4 KB (``--distinct`` different ones, copied to reach the count), and then:

* user 0 sends one heavy SEARCH, of ``--kind``
  ``text``: ``SEARCH TEXT q0 TEXT q1 ... TEXT q<keys-1>`` (nothing matches, so every
  needle scans every message), or
  ``uidset``: ``UID SEARCH UID n,n-2,...,1`` with ``--keys`` numbers (one key whose
  evaluation needs no message body, so nothing waits on the blob store);
* the SEARCH runs twice: alone, for its wall time and the server's CPU time; then
  again while user 1, already logged in, sends a NOOP every ``--noop-interval``
  ms (one at a time, as an interactive client would), for the NOOP latency.

It prints the SEARCH's reply, wall time and the server's CPU seconds, and the
NOOP latency p50 and max (and how many NOOPs were sent) while it ran again.

    uv run python bench/imap_search_fairness.py                       # 1000 messages, 100 TEXT keys
    uv run python bench/imap_search_fairness.py --kind uidset --keys 2000
    uv run python bench/imap_search_fairness.py --messages 5000 --keys 5000

To compare with an older commit, check it out in a worktree and put its source
first on the path: ``git worktree add /tmp/base <commit>``, then
``PYTHONPATH=/tmp/base/src uv run python bench/imap_search_fairness.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from lightmail.config import load_settings
from lightmail.mailstore.store import Recipient
from lightmail.runtime import open_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dovecot import free_port
from imap_load import (
    DOMAIN,
    ImapClient,
    Target,
    _wait_for_greeting,
    cpu_seconds,
    lightmail_env,
    make_message,
    serve_process,
    user_address,
    user_password,
)


@asynccontextmanager
async def seeded_lightmail(messages: int, distinct: int, seed: int) -> AsyncIterator[Target]:
    """``lightmail serve`` as a child; user 0 has ``messages`` messages, user 1 none."""
    with tempfile.TemporaryDirectory(prefix="lightmail-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = lightmail_env(workdir, port, {"LIGHTMAIL_IMAP_MAX_LINE_LENGTH": "1M"})
        started = time.monotonic()
        async with open_node(load_settings(None, env)) as node:
            await node.accounts.add_domain(DOMAIN)
            owner = await node.accounts.add_user(user_address(0), user_password(0))
            await node.accounts.add_user(user_address(1), user_password(1))
            rng = random.Random(seed)
            for index in range(min(distinct, messages)):
                message = make_message(rng, user_address(0), index, 4096)

                async def one(data: bytes = message) -> AsyncIterator[bytes]:
                    yield data

                await node.store.deliver([Recipient(owner.id, owner.address)], one())
            inbox = await node.store.get_mailbox(owner.id, "INBOX")
            while True:
                uids = [m.uid for m in await node.store.list_messages(inbox)]
                if len(uids) >= messages:
                    break
                await node.store.copy(owner.id, inbox, uids[: messages - len(uids)], "INBOX")
        seconds = time.monotonic() - started
        print(f"seeded {messages} messages ({distinct} distinct) in {seconds:.1f} s")
        async with serve_process("LightMail", workdir, env) as process:
            await _wait_for_greeting(port, process, workdir / "serve.log")
            yield Target("LightMail (SQLite + filesystem)", "127.0.0.1", port, process.pid)


@dataclass(frozen=True, slots=True)
class Outcome:
    reply: bytes
    seconds: float  # the SEARCH alone
    cpu: float  # the server's, during the SEARCH alone
    seconds_with_noops: float
    noop_latencies: list[float]  # of every NOOP sent while the second SEARCH ran


def search_command(kind: str, keys: int) -> bytes:
    if kind == "text":
        return b"SEARCH " + b" ".join(b"TEXT q%d" % n for n in range(keys))
    return b"UID SEARCH UID " + b",".join(b"%d" % n for n in range(2 * keys - 1, 0, -2))


async def measure(target: Target, command: bytes, noop_interval: float) -> Outcome:
    searcher = await ImapClient.connect(target.host, target.port)
    bystander = await ImapClient.connect(target.host, target.port)
    try:
        await searcher.ok(b"LOGIN " + user_address(0).encode() + b" " + user_password(0).encode())
        await searcher.ok(b"SELECT INBOX")
        await bystander.ok(b"LOGIN " + user_address(1).encode() + b" " + user_password(1).encode())
        await bystander.ok(b"NOOP")

        cpu_before = cpu_seconds(target.pid)
        started = time.perf_counter()
        response = await searcher.command(command)
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(target.pid) - cpu_before

        started = time.perf_counter()
        search = asyncio.create_task(searcher.command(command))
        latencies: list[float] = []
        while not search.done():
            sent = time.perf_counter()
            await bystander.ok(b"NOOP")
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(max(0.0, sent + noop_interval - time.perf_counter()))
        await search
        seconds_with_noops = time.perf_counter() - started
        return Outcome(response.line.strip()[:100], seconds, cpu, seconds_with_noops, latencies)
    finally:
        await searcher.close()
        await bystander.close()


async def run(args: argparse.Namespace) -> None:
    command = search_command(args.kind, args.keys)
    print(
        f"{args.kind} search with {args.keys} keys/numbers ({len(command)} octets) "
        f"on {args.messages} messages"
    )
    async with seeded_lightmail(args.messages, args.distinct, args.seed) as target:
        outcome = await measure(target, command, args.noop_interval / 1000)
    print(f"SEARCH reply:         {outcome.reply.decode(errors='replace')}")
    print(f"SEARCH alone:         {outcome.seconds:.2f} s, server CPU {outcome.cpu:.2f} s")
    latencies = sorted(outcome.noop_latencies)
    print(
        f"SEARCH again, with another user's NOOPs: {outcome.seconds_with_noops:.2f} s; "
        f"{len(latencies)} NOOPs sent meanwhile, latency "
        f"p50 {1000 * statistics.median(latencies):.1f} ms, max {1000 * latencies[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["text", "uidset"], default="text")
    parser.add_argument("--keys", type=int, default=100, help="TEXT keys, or UID numbers (100)")
    parser.add_argument("--messages", type=int, default=1000, help="messages searched (1000)")
    parser.add_argument("--distinct", type=int, default=100, help="different messages (100)")
    parser.add_argument(
        "--noop-interval", type=float, default=10.0, help="ms between NOOP sends (10)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if min(args.keys, args.messages, args.distinct) < 1:
        parser.error("--keys, --messages and --distinct must be at least 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
