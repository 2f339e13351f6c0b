"""Hostile keyword STORE: server memory and time for ``STORE 1:* +FLAGS.SILENT (kw0 ... kwN)``.

Starts ``python -m lightmail serve`` (SQLite + filesystem) as a child on a
free loopback port, APPENDs ``--messages`` small messages (default 5000,
pipelined with LITERAL+) to one user's INBOX, then sends
``STORE 1:* +FLAGS.SILENT (kw0 ... kw<K-1>)`` with ``--keywords`` keywords
(default 1000), the attack of issue #14. It prints:

- the server's RSS before the STORE (after seeding and a settle pause),
- its peak RSS during the STORE (``VmHWM``, reset just before it through
  ``/proc/PID/clear_refs``),
- its RSS ``--settle`` seconds after the STORE answered (retained),
- the STORE's answer and how long it took, and how long a SELECT takes after.

    uv run python bench/imap_keywords.py                        # 5000 messages, 1000 keywords
    uv run python bench/imap_keywords.py --messages 1000 --keywords 200
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imap_load import ImapClient, quote, running_lightmail, user_address, user_password

MESSAGE = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: keyword bench\r\n"
    b"\r\n"
    b"Hello.\r\n"
)
STORE_TIMEOUT = 900.0  # seconds; the unpatched server takes long


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB, from /proc."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current RSS (Linux 4.0 and later)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def pipelined_append(client: ImapClient, count: int, batch: int = 200) -> int:
    """APPEND ``count`` messages with non-synchronizing literals; the number refused."""
    refused = 0
    done = 0
    while done < count:
        n = min(batch, count - done)
        tags = []
        for _ in range(n):
            tag = client._next_tag()
            tags.append(tag)
            client.writer.write(tag + b" APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
        await client.writer.drain()
        waiting = set(tags)
        while waiting:
            line = await client.read_line()
            tag = line.split(b" ", 1)[0]
            if tag in waiting:
                waiting.discard(tag)
                if line.split(b" ", 2)[1] != b"OK":
                    refused += 1
        done += n
    return refused


async def timed_command(client: ImapClient, line: bytes) -> tuple[float, bytes, list[bytes]]:
    """Send one command, wait (up to STORE_TIMEOUT) for its tagged answer."""
    tag = client._next_tag()
    started = time.perf_counter()
    client.writer.write(tag + b" " + line + b"\r\n")
    await client.writer.drain()
    untagged: list[bytes] = []
    async with asyncio.timeout(STORE_TIMEOUT):
        while True:
            answer = await client.read_line()
            if answer.startswith(tag + b" "):
                return time.perf_counter() - started, answer.strip(), untagged
            untagged.append(answer)


async def run(args: argparse.Namespace) -> None:
    async with running_lightmail("LightMail (SQLite + filesystem)", 1, {}) as target:
        client = await ImapClient.connect(target.host, target.port)
        try:
            await client.ok(b"LOGIN " + quote(user_address(0)) + b" " + quote(user_password(0)))
            started = time.perf_counter()
            refused = await pipelined_append(client, args.messages)
            print(
                f"seeded {args.messages - refused} messages in "
                f"{time.perf_counter() - started:.1f} s ({refused} refused)"
            )
            await client.ok(b"SELECT INBOX")
            await asyncio.sleep(args.settle)
            before = status_kb(target.pid)["VmRSS"]
            reset_peak(target.pid)
            keywords = b" ".join(b"kw%d" % i for i in range(args.keywords))
            seconds, answer, _ = await timed_command(
                client, b"STORE 1:* +FLAGS.SILENT (" + keywords + b")"
            )
            peak = status_kb(target.pid)["VmHWM"]
            await asyncio.sleep(args.settle)
            retained = status_kb(target.pid)["VmRSS"]
            select_seconds, _, untagged = await timed_command(client, b"SELECT INBOX")
            flags = next((u for u in untagged if u.startswith(b"* FLAGS")), b"")
            await client.ok(b"LOGOUT")
        finally:
            await client.close()
    print(f"\n== STORE 1:* +FLAGS.SILENT ({args.keywords} keywords) on {args.messages} messages ==")
    print(f"answer:            {answer.decode(errors='replace')[:120]}")
    print(f"STORE time:        {seconds:.2f} s")
    print(f"RSS before:        {before / 1024:.1f} MiB")
    print(f"peak RSS (STORE):  {peak / 1024:.1f} MiB")
    print(f"RSS after {args.settle:.0f} s:    {retained / 1024:.1f} MiB")
    print(f"SELECT after:      {select_seconds:.2f} s, FLAGS line {len(flags)} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages in the INBOX")
    parser.add_argument("--keywords", type=int, default=1000, help="keywords in the STORE")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before readings")
    args = parser.parse_args()
    if not 1 <= args.messages <= 1_000_000 or not 1 <= args.keywords <= 100_000:
        parser.error("--messages from 1 to 1000000, --keywords from 1 to 100000")
    if not 0 <= args.settle <= 60:
        parser.error("--settle from 0 to 60")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
