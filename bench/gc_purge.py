"""Garbage collector purge rate: soft-deleted messages on MariaDB + SeaweedFS, by batch size.

For each ``--batch-sizes`` value (default 100 and 1000) the script drops and
re-creates the tables of the ``lightmail_bench`` database on 127.0.0.1:3306
(created if missing; ``--mysql-url`` chooses another), takes a fresh prefix in
a SeaweedFS started here, and makes ``--messages`` (default 100,000)
soft-deleted messages over ``messages / --messages-per-blob`` real blobs
(default one blob per message) with ``tests/support/gcdata.py``: that setup is
timed on its own. Then one :meth:`GarbageCollector.run` (retention 0, the
orphan sweep included, which finds nothing) is timed, and the script prints
messages and blobs purged per second, the run's seconds, and the p50/p90 of
one batch (claim, blob deletes, row deletes) taken from the collector's
per-batch log line. After each run the database and the prefix must be empty.

    uv run python bench/gc_purge.py                                   # 2 x 100,000, a few minutes
    uv run python bench/gc_purge.py --messages 10000 --batch-sizes 100,500,1000
    uv run python bench/gc_purge.py --messages-per-blob 4             # as after COPY: 4 rows a blob
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from lightmail.accounts.service import Accounts
from lightmail.clock import utcnow
from lightmail.config import GcSettings
from lightmail.gc import GarbageCollector
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import MESSAGE_PREFIX, S3BlobStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from imap_load import ensure_database

from tests.support.gcdata import create_deleted_messages
from tests.support.mariadb import mariadb_listening, recreate_schema
from tests.support.s3server import S3Server, running_seaweedfs

BENCH_MYSQL_URL = "mysql+asyncmy://root@127.0.0.1:3306/lightmail_bench"


@dataclass(frozen=True, slots=True)
class Result:
    batch_size: int
    messages: int
    blobs: int
    setup_seconds: float
    purge_seconds: float
    batch_seconds: list[float]


class BatchTimes(logging.Handler):
    """Collects the seconds of each purge batch from the collector's one log line per batch."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("gc: purged") and isinstance(record.args, tuple):
            seconds = record.args[-1]  # "... in %.2f s"
            if isinstance(seconds, float):
                self.seconds.append(seconds)


async def bench_one(
    args: argparse.Namespace, seaweed: S3Server, batch_size: int, times: BatchTimes
) -> Result:
    await ensure_database(args.mysql_url)
    await recreate_schema(args.mysql_url)
    db = Database(args.mysql_url)
    blobs = S3BlobStore(
        seaweed.bucket,
        f"bench-gc-{uuid.uuid4().hex[:12]}",
        endpoint=seaweed.endpoint,
        region=seaweed.region,
        access_key=seaweed.access_key,
        secret_key=seaweed.secret_key,
    )
    try:
        store = MailStore(db, blobs, InProcessNotificationBus())
        accounts = Accounts(store)
        await accounts.add_domain("bench.example")
        user = await accounts.add_user("gc@bench.example", "bench-password")
        count = args.messages // args.messages_per_blob
        started = time.perf_counter()
        await create_deleted_messages(
            store,
            user.id,
            user.address,
            args.messages,
            blobs=count,
            deleted_at=utcnow(),
            put_concurrency=args.put_concurrency,
            chunk=args.insert_chunk,
        )
        setup = time.perf_counter() - started
        settings = GcSettings(
            enabled=True, interval=300, batch_size=batch_size, retention=0, orphan_grace=86400
        )
        times.seconds.clear()
        started = time.perf_counter()
        report = await GarbageCollector(db, blobs, settings).run()
        purge = time.perf_counter() - started
        await check_empty(db, blobs, report.messages_purged, args.messages)
        return Result(batch_size, args.messages, count, setup, purge, list(times.seconds))
    finally:
        await blobs.close()
        await db.close()


async def check_empty(db: Database, blobs: S3BlobStore, purged: int, expected: int) -> None:
    async with db.read() as conn:
        left = [
            int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for table in (t.messages, t.object_keys)
        ]
    blobs_left = sum([len(page) async for page in blobs.list(MESSAGE_PREFIX)])
    if purged != expected or left != [0, 0] or blobs_left:
        print(
            f"!! purged {purged} of {expected}; left: {left[0]} messages, "
            f"{left[1]} object_keys, {blobs_left} blobs"
        )


def percentile(values: list[float], fraction: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def summary(results: list[Result]) -> None:
    print(
        f"\n{'batch':>6}{'messages':>10}{'blobs':>9}{'setup s':>9}{'purge s':>9}"
        f"{'msg/s':>9}{'blobs/s':>9}{'batches':>9}{'p50 ms':>8}{'p90 ms':>8}"
    )
    for r in results:
        print(
            f"{r.batch_size:>6}{r.messages:>10}{r.blobs:>9}{r.setup_seconds:>9.1f}"
            f"{r.purge_seconds:>9.1f}{r.messages / r.purge_seconds:>9.0f}"
            f"{r.blobs / r.purge_seconds:>9.0f}{len(r.batch_seconds):>9}"
            f"{percentile(r.batch_seconds, 0.5) * 1000:>8.0f}"
            f"{percentile(r.batch_seconds, 0.9) * 1000:>8.0f}"
        )


async def run(args: argparse.Namespace, seaweed: S3Server) -> None:
    times = BatchTimes()
    logger = logging.getLogger("lightmail.gc.collector")
    logger.setLevel(logging.INFO)
    logger.addHandler(times)
    results = []
    for batch_size in args.batch_sizes:
        result = await bench_one(args, seaweed, batch_size, times)
        print(
            f"batch size {batch_size}: setup {result.setup_seconds:.1f} s, "
            f"purge {result.purge_seconds:.1f} s"
        )
        results.append(result)
    summary(results)


def batch_sizes(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(value < 1 or value > 100_000 for value in values):
        raise argparse.ArgumentTypeError("comma-separated batch sizes from 1 to 100000")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="per run (100000)")
    parser.add_argument("--batch-sizes", type=batch_sizes, default=[100, 1000], help="100,1000")
    parser.add_argument(
        "--messages-per-blob", type=int, default=1, help="rows sharing one blob (1)"
    )
    parser.add_argument("--put-concurrency", type=int, default=64, help="setup's puts in flight")
    parser.add_argument("--insert-chunk", type=int, default=5000, help="setup's rows per INSERT")
    parser.add_argument("--mysql-url", default=BENCH_MYSQL_URL)
    args = parser.parse_args()
    if args.messages < 1 or not 1 <= args.messages_per_blob <= args.messages:
        parser.error("--messages must be positive, --messages-per-blob from 1 to --messages")
    if not mariadb_listening():
        parser.error("MariaDB is not listening on 127.0.0.1:3306")
    print(
        f"GC purge rate: {args.messages} soft-deleted messages, "
        f"{args.messages_per_blob} per blob, MariaDB + SeaweedFS, "
        f"batch sizes {', '.join(map(str, args.batch_sizes))}"
    )
    with running_seaweedfs() as seaweed:
        asyncio.run(run(args, seaweed))


if __name__ == "__main__":
    main()
