"""IMAP SORT and THREAD (RFC 5256) of one big folder, LightMail against Dovecot.

One user's INBOX gets ``--messages`` messages (default 10,000) in realistic
threads: a thread has 1 to 40 messages (most have few), replies carry
``Re:`` and a References chain (the last 10 ancestors) and In-Reply-To, some
threads lost their first message (a parent not in the folder), some replies
lost their references (gathered by subject only), mailing-list tags, display
names with RFC 2047 words, Date headers in several zones, a few without one.
The same messages, in the same order and with the same INTERNALDATE (a few
minutes after their Date), are APPENDed over IMAP to each target:

- LightMail on SQLite + filesystem (``python -m lightmail serve`` as a child),
- Dovecot (maildir; ``--no-dovecot`` leaves it out), when installed.

Each command then runs ``--repeat`` times (default 5) on one connection that
has the folder selected; the first run is reported apart (Dovecot builds its
sort and thread indexes then), with the median of the others, and whether
the two servers gave the same answer (the answers are sequence numbers, so
they are comparable).

    uv run python bench/imap_sort_thread.py                      # 10,000 messages
    uv run python bench/imap_sort_thread.py --messages 500 --repeat 2 --no-dovecot
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dovecot import dovecot_missing
from imap_load import (
    ImapClient,
    Target,
    dovecot_target,
    quote,
    running_lightmail,
    user_address,
    user_password,
)

COMMANDS = (
    b"SORT (DATE) UTF-8 ALL",
    b"SORT (REVERSE ARRIVAL) UTF-8 ALL",
    b"SORT (SUBJECT DATE) UTF-8 ALL",
    b"SORT (FROM) UTF-8 ALL",
    b"SORT (DISPLAYFROM) UTF-8 ALL",
    b"SORT (REVERSE SIZE) UTF-8 UNSEEN",
    b"THREAD REFERENCES UTF-8 ALL",
    b"THREAD ORDEREDSUBJECT UTF-8 ALL",
    b"SEARCH ALL",
)

_TOPICS = (
    "budget",
    "release",
    "lunch",
    "outage",
    "hiring",
    "roadmap",
    "invoice",
    "offsite",
    "backup",
    "migration",
    "review",
    "newsletter",
)
_NAMES = ("Ana", "Bo", "Chloé", "Dmitri", "Émile", "Fatima", "Günther", "Hana", "Ian", "Jo")
_ZONES = (0, 60, -300, 330, -480, 540)


def _display(name: str) -> str:
    if name.isascii():
        return name
    return "=?UTF-8?B?" + base64.b64encode(name.encode()).decode() + "?="


def folder(count: int, seed: int) -> Iterator[tuple[datetime, bytes]]:
    """``count`` messages in threads, with their INTERNALDATE, in the order they arrive."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    made = 0
    thread_number = 0
    pending: list[tuple[datetime, bytes]] = []
    while made < count:
        thread_number += 1
        size = min(count - made, 1 + int(rng.paretovariate(1.2)) % 40)
        topic = f"{rng.choice(_TOPICS)} {thread_number}"
        if rng.random() < 0.2:
            topic = f"[team-{rng.randint(1, 4)}] {topic}"
        when = start + timedelta(minutes=rng.randint(0, 60 * 24 * 365))
        ids: list[str] = []
        parents: list[int] = []
        lost_root = rng.random() < 0.05
        for position in range(size + (1 if lost_root else 0)):
            message_id = f"<t{thread_number}.{position}.{rng.getrandbits(32):08x}@example.org>"
            parent = rng.randrange(len(ids)) if ids else None
            ancestors: list[str] = []
            index = parent
            while index is not None:
                ancestors.append(ids[index])
                index = parents[index] if parents[index] >= 0 else None
            ancestors.reverse()
            ids.append(message_id)
            parents.append(-1 if parent is None else parent)
            when += timedelta(minutes=rng.randint(1, 600))
            if lost_root and position == 0:
                continue  # referenced by the others, never delivered
            pending.append((when, _message(rng, topic, message_id, ancestors, when, made)))
            made += 1
    arrivals = [
        (when + timedelta(minutes=rng.randint(0, 30)), message) for when, message in pending
    ]
    arrivals.sort(key=lambda item: item[0])
    yield from arrivals


def _message(
    rng: random.Random,
    topic: str,
    message_id: str,
    ancestors: list[str],
    when: datetime,
    number: int,
) -> bytes:
    name = rng.choice(_NAMES)
    address = f"{name.lower().encode('ascii', 'ignore').decode() or 'x'}{rng.randint(1, 9)}"
    fields = [
        f"From: {_display(name)} <{address}@example.org>",
        f"To: {rng.choice(_NAMES)} <team@example.org>",
    ]
    if rng.random() < 0.3:
        fields.append(f"Cc: {rng.choice(_NAMES).lower()}@example.net")
    subject = topic if not ancestors else rng.choice(("Re: ", "RE: ", "Re: Re: ", "AW: ")) + topic
    if rng.random() < 0.02:
        subject += " (fwd)"
    fields.append(f"Subject: {subject}")
    if rng.random() > 0.01:
        zone = timezone(timedelta(minutes=rng.choice(_ZONES)))
        fields.append(f"Date: {format_datetime(when.astimezone(zone))}")
    fields.append(f"Message-ID: {message_id}")
    if ancestors and rng.random() > 0.05:
        fields.append(f"In-Reply-To: {ancestors[-1]}")
        fields.append("References: " + "\r\n ".join(ancestors[-10:]))
    body = f"Message {number} about {topic}.\r\n" * rng.randint(1, 40)
    return ("\r\n".join(fields) + "\r\n\r\n" + body).encode()


@dataclass
class Timing:
    answer: bytes = b""
    first: float = 0.0
    rest: list[float] = field(default_factory=list)


async def seed(target: Target, messages: list[tuple[datetime, bytes]]) -> float:
    client = await ImapClient.connect(target.host, target.port)
    started = time.perf_counter()
    try:
        await client.ok(b"LOGIN " + quote(user_address(0)) + b" " + quote(user_password(0)))
        for arrival, message in messages:
            internaldate = arrival.strftime("%d-%b-%Y %H:%M:%S +0000").encode()
            await client.ok(b'APPEND INBOX "' + internaldate + b'"', message)
        # A fifth of the messages read, for UNSEEN.
        await client.ok(b"SELECT INBOX")
        await client.ok(b"STORE 1:%d +FLAGS.SILENT (\\Seen)" % (len(messages) * 4 // 5))
        await client.ok(b"LOGOUT")
    finally:
        await client.close()
    return time.perf_counter() - started


async def measure(target: Target, repeat: int) -> dict[bytes, Timing]:
    client = await ImapClient.connect(target.host, target.port)
    timings: dict[bytes, Timing] = {}
    try:
        await client.ok(b"LOGIN " + quote(user_address(0)) + b" " + quote(user_password(0)))
        await client.ok(b"SELECT INBOX")
        for command in COMMANDS:
            timing = timings[command] = Timing()
            for run in range(repeat):
                started = time.perf_counter()
                response = await client.ok(command)
                seconds = time.perf_counter() - started
                if run == 0:
                    timing.first = seconds
                    timing.answer = b"".join(response.untagged)
                else:
                    timing.rest.append(seconds)
    finally:
        await client.close()
    return timings


async def bench(
    target: Target, messages: list[tuple[datetime, bytes]], repeat: int
) -> dict[bytes, Timing]:
    seconds = await seed(target, messages)
    print(f"{target.name}: {len(messages)} messages APPENDed in {seconds:.1f} s")
    return await measure(target, repeat)


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:9.1f}"


async def run(args: argparse.Namespace) -> None:
    messages = list(folder(args.messages, args.seed))
    results: dict[str, dict[bytes, Timing]] = {}
    async with running_lightmail("LightMail (SQLite + filesystem)", 1, {}) as target:
        results["LightMail"] = await bench(target, messages, args.repeat)
    if args.dovecot:
        with dovecot_target(1, 10, "performance", "plain") as target:
            results["Dovecot"] = await bench(target, messages, args.repeat)
    print(f"\n== {args.messages} messages; ms: first run, median of the {args.repeat - 1} after ==")
    header = f"{'command':<36}" + "".join(f"{name:>22}" for name in results)
    print(header + ("   same answer" if len(results) == 2 else ""))
    for command in COMMANDS:
        line = f"{command.decode():<36}"
        for timings in results.values():
            timing = timings[command]
            rest = statistics.median(timing.rest) if timing.rest else timing.first
            line += f"{_ms(timing.first)} {_ms(rest)}  "
        if len(results) == 2:
            answers = {timings[command].answer for timings in results.values()}
            line += "   yes" if len(answers) == 1 else "   NO"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages (10000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (5)")
    parser.add_argument("--dovecot", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.messages < 1 or args.repeat < 1:
        parser.error("--messages and --repeat must be at least 1")
    if args.dovecot and (missing := dovecot_missing("imap")) is not None:
        parser.error(f"{missing} (or --no-dovecot)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
