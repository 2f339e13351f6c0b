"""Deliveries and APPENDs under load while the database and S3 fail, with counts.

Starts a MariaDB (``mariadbd`` from Debian's mariadb-server) and a SeaweedFS
of its own, both on free loopback ports, and one LightMail node (LMTP and IMAP
in this process) that reaches the database through a proxy which can lose the
reply of a COMMIT (tests/support/mysql_proxy.py). ``--lmtp-clients`` clients
deliver ``--messages`` messages each (every other one to two recipients) and
``--imap-clients`` clients APPEND as many, retrying every temporary failure as
an MTA would. Meanwhile the ``--faults`` run one after the other, evenly spread:

  db-freeze    SIGSTOP the database for --freeze seconds
  db-kill      kill -9 the database, restart it after --down seconds
  s3-freeze    SIGSTOP SeaweedFS for --freeze seconds
  s3-kill      kill -9 SeaweedFS, restart it after --down seconds
  lost-commit  cut the connection after the server committed a delivery,
               before its OK reaches LightMail

Then it checks every acknowledged delivery (exactly one copy, byte-identical),
every message row's blob, and prints the counts: sent, acknowledged, 4xx,
5xx, dropped connections, duplicates, lost, damaged, rows without a blob, and
the recovery time (end of a fault to the next acknowledged delivery). Exit
status 1 if anything was lost, damaged, duplicated, refused or dropped.

    uv run python bench/faults.py                          # ~1,200 messages, 5 faults
    uv run python bench/faults.py --lmtp-clients 10 --messages 330 --freeze 8 --down 5 \\
        --faults db-freeze,db-kill,s3-freeze,s3-kill,lost-commit,db-kill,lost-commit
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.conftest import create_database
from tests.support.faultload import Fault, run_load
from tests.support.faultrig import start_rig
from tests.support.mysql_proxy import MySQLProxy
from tests.support.private_mariadb import PrivateMariaDB, find_mariadbd
from tests.support.s3server import SeaweedFS, find_weed, seaweedfs_process

FAULTS = ("db-freeze", "db-kill", "s3-freeze", "s3-kill", "lost-commit")


def _faults(
    names: list[str],
    db: PrivateMariaDB,
    s3: SeaweedFS,
    proxy: MySQLProxy,
    freeze: float,
    down: float,
) -> list[Fault]:
    def frozen(process: PrivateMariaDB | SeaweedFS) -> Fault:
        async def fault() -> None:
            process.freeze()
            await asyncio.sleep(freeze)
            process.thaw()

        return fault

    def killed(process: PrivateMariaDB | SeaweedFS) -> Fault:
        async def fault() -> None:
            process.kill()
            await asyncio.sleep(down)
            await asyncio.to_thread(process.start)

        return fault

    async def lost_commit() -> None:
        proxy.lose_commit_reply(b"insert into messages")
        await proxy.next_cut()

    makers: dict[str, Callable[[], Fault]] = {
        "db-freeze": lambda: frozen(db),
        "db-kill": lambda: killed(db),
        "s3-freeze": lambda: frozen(s3),
        "s3-kill": lambda: killed(s3),
        "lost-commit": lambda: lost_commit,
    }
    return [makers[name]() for name in names]


async def main(args: argparse.Namespace, root: Path, db: PrivateMariaDB, weed: Path) -> int:
    try:
        await asyncio.to_thread(db.install)
        await asyncio.to_thread(db.start)
        with seaweedfs_process(weed) as s3:
            url = await create_database(db)
            proxy = MySQLProxy("127.0.0.1", db.port)
            port = await proxy.start()
            proxied = re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{port}/", url)
            rig = await start_rig(proxied, s3.server, root / "data")
            try:
                faults = _faults(args.faults, db, s3, proxy, args.freeze, args.down)
                per_client = args.messages
                deliveries = (
                    args.lmtp_clients * per_client * 3 // 2 + args.imap_clients * per_client
                )
                counts = await run_load(
                    rig,
                    faults,
                    lmtp_clients=args.lmtp_clients,
                    imap_clients=args.imap_clients,
                    per_client=per_client,
                    fault_every=max(1, deliveries // (len(faults) + 1)),
                    patience=max(120.0, 4 * (args.freeze + args.down) + 60),
                )
            finally:
                await rig.close()
                await proxy.close()
    finally:
        await asyncio.to_thread(db.stop)
    print(f"faults: {', '.join(args.faults)}")
    print(counts.summary())
    return 0 if counts.clean and counts.faults == len(args.faults) else 1


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--lmtp-clients", type=int, default=8)
    parser.add_argument("--imap-clients", type=int, default=2)
    parser.add_argument("--messages", type=int, default=120, help="messages per client")
    parser.add_argument(
        "--faults",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(FAULTS),
        help=f"comma-separated, from {', '.join(FAULTS)}",
    )
    parser.add_argument("--freeze", type=float, default=3.0, help="seconds frozen")
    parser.add_argument("--down", type=float, default=2.0, help="seconds killed before restart")
    args = parser.parse_args()
    unknown = sorted(set(args.faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown faults: {', '.join(unknown)} (choose from {', '.join(FAULTS)})")
    return args


def _run() -> int:
    args = _parse()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    binaries, weed = find_mariadbd(), find_weed()
    if binaries is None or weed is None:
        print("needs mariadbd (Debian's mariadb-server) and weed (uv sync)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="lightmail-bench-faults-"))
    try:
        root.chmod(0o755)
        (root / "db").mkdir()
        return asyncio.run(main(args, root, PrivateMariaDB(*binaries, root / "db"), weed))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_run())
