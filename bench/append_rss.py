"""Peak memory of appending one large message: the append must stream.

Appends a generated message (50 MB by default) through the mailstore, the
same path IMAP APPEND and LMTP delivery take, in 64 KB chunks, and prints how
much the process's peak RSS grew over its size after a small warm-up append.
The target is growth under 32 MB for a 50 MB message.

    uv run python bench/append_rss.py                 # SQLite + filesystem
    uv run python bench/append_rss.py --backend s3    # MariaDB + SeaweedFS (started here)
    uv run python bench/append_rss.py --size 200M

The MariaDB run uses the database named by --mysql-url (default: the ``test``
database on 127.0.0.1:3306, whose LightMail tables it drops and re-creates).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from lightmail.accounts.service import Accounts
from lightmail.config import parse_size
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import BlobStore
from lightmail.storage.blobs.filesystem import FileSystemBlobStore
from lightmail.storage.blobs.s3 import S3BlobStore
from lightmail.storage.db.engine import Database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.mariadb import MARIADB_URL, recreate_schema
from tests.support.s3server import S3Server, running_seaweedfs

CHUNK = 64 * 1024
HEADER = (
    b"From: Bench <bench@example.org>\r\nTo: bench@example.org\r\n"
    b"Subject: large attachment\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
)
TRAILER = b"\r\n--b1--\r\n"


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Make the kernel's peak RSS (VmHWM) start again from the current RSS."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


async def message(size: int) -> AsyncIterator[bytes]:
    """A multipart message of about ``size`` bytes, generated chunk by chunk."""
    yield HEADER
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n"
    block = line * (CHUNK // len(line))
    sent = len(HEADER) + len(TRAILER)
    while sent + len(block) <= size:
        yield block
        sent += len(block)
    yield TRAILER


async def run(db: Database, blobs: BlobStore, size: int) -> None:
    store = MailStore(db, blobs, InProcessNotificationBus())
    accounts = Accounts(store)
    domain = f"bench{uuid.uuid4().hex[:8]}.example"
    await accounts.add_domain(domain)
    user = await accounts.add_user(f"bench@{domain}", "bench")

    await store.append(user.id, "INBOX", message(256 * 1024))  # warm-up: imports, pools
    before_kb = _status_kb("VmRSS")
    reset_peak_rss()
    started = time.perf_counter()
    result = await store.append(user.id, "INBOX", message(size))
    elapsed = time.perf_counter() - started
    growth_kb = _status_kb("VmHWM") - before_kb
    inbox = await store.get_mailbox(user.id, "INBOX")
    [meta] = await store.fetch_meta(inbox, [result.uid])
    print(f"backend:        {db.description} + {blobs.description}")
    print(f"message:        {meta.info.size / 2**20:.1f} MiB in {CHUNK // 1024} KiB chunks")
    print(f"append:         {elapsed:.2f} s ({meta.info.size / 2**20 / elapsed:.0f} MiB/s)")
    print(f"RSS before:     {before_kb / 1024:.1f} MiB")
    print(f"peak RSS growth: {growth_kb / 1024:.1f} MiB (target: under 32 MiB)")
    print(f"parts:          {len(meta.body.children)} (parsed while streaming)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["filesystem", "s3"], default="filesystem")
    parser.add_argument("--size", type=parse_size, default=parse_size("50M"))
    parser.add_argument("--mysql-url", default=MARIADB_URL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lightmail-bench-") as tmp:
        workdir = Path(tmp)

        async def filesystem() -> None:
            db = Database(f"sqlite+aiosqlite:///{workdir}/bench.db")
            await db.upgrade()
            blobs = FileSystemBlobStore(workdir / "blobs")
            try:
                await run(db, blobs, args.size)
            finally:
                await blobs.close()
                await db.close()

        async def s3(server: S3Server) -> None:
            await recreate_schema(args.mysql_url)
            db = Database(args.mysql_url)
            blobs = S3BlobStore(
                server.bucket,
                "bench",
                endpoint=server.endpoint,
                region=server.region,
                access_key=server.access_key,
                secret_key=server.secret_key,
            )
            try:
                await run(db, blobs, args.size)
            finally:
                await blobs.close()
                await db.close()

        if args.backend == "filesystem":
            asyncio.run(filesystem())
        else:
            with running_seaweedfs() as server:
                asyncio.run(s3(server))


if __name__ == "__main__":
    main()
