"""CPU per storage operation in this process: what the protocols build on, without them.

Opens a node on the embedded default (SQLite and a folder, in a temporary
directory) as ``lightmail serve`` would, and times a few thousand calls of each
operation an LMTP delivery or an IMAP/POP3 LOGIN makes, printing the CPU time
and the wall time per call:

- an LMTP RCPT's recipient lookup (``Accounts.resolve_recipient``), with and
  without a ``+detail``;
- a LOGIN that the credential cache answers (``Accounts.authenticate``);
- the quota check of an RCPT (``MailStore.check_quota``), for a user without
  a quota and for one with a quota and ``--quota-messages`` messages (default
  20,000, made by COPYing the mailbox into itself until there are enough):
  the usage is the sum of the live totals of the user's mailboxes, so the
  number of messages should not show;
- an empty write transaction (``Database.write``: BEGIN IMMEDIATE, COMMIT);
- the delivery of a 10 KiB message to one recipient (``MailStore.deliver``:
  the blob written and fsynced, one transaction).

CPU time is the process's (``time.process_time``), all threads included, so
the fsyncs' system time counts. With ``--mysql-url`` the same runs on a
MySQL/MariaDB database (its tables are dropped and created again; the blobs
stay in a temporary folder). Compare two versions by running this script
against each in the same minutes: this kind of machine changes speed from one
run to the next.

    uv run python bench/store_cpu.py
    uv run python bench/store_cpu.py --calls 5000
    uv run python bench/store_cpu.py --mysql-url mysql+asyncmy://root@127.0.0.1:3306/lightmail_bench
    uv run python bench/store_cpu.py --quota-messages 100000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from lightmail.accounts.service import User
from lightmail.config import load_settings
from lightmail.mailstore.types import Recipient
from lightmail.runtime import Node, open_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from imap_load import ensure_database

from tests.support.mariadb import recreate_schema

ADDRESS = "bench@example.org"
PASSWORD = "a password long enough"
BODY_LINE = b"body line 0123456789 0123456789 0123456789 0123456789 01234567\r\n"
MESSAGE = (
    b"From: sender@example.net\r\nTo: bench@example.org\r\nSubject: cost\r\n"
    b"Message-ID: <cost@example.net>\r\n\r\n" + BODY_LINE * 160
)


async def _one_chunk() -> AsyncIterator[bytes]:
    yield MESSAGE


async def _with_messages(node: Node, count: int) -> User:
    """A user with a quota and at least ``count`` messages in INBOX (sharing one blob)."""
    user = await node.accounts.add_user("full@example.org", PASSWORD, quota=2**62)
    await node.store.deliver([Recipient(user.id, user.address)], _one_chunk())
    held = 1
    while held < count:
        inbox = await node.store.get_mailbox(user.id, "INBOX")
        uids = [info.uid for info in await node.store.list_messages(inbox)]
        await node.store.copy(user.id, inbox, uids[: count - held], "INBOX")
        held += min(len(uids), count - held)
    return user


async def measure(
    calls: int, mysql_url: str | None, quota_messages: int
) -> list[tuple[str, float, float]]:
    """(operation, CPU microseconds per call, wall microseconds per call)."""
    with tempfile.TemporaryDirectory() as data_dir:
        env = {"LIGHTMAIL_SERVER_DATA_DIR": data_dir}
        if mysql_url is not None:
            await ensure_database(mysql_url)
            await recreate_schema(mysql_url)
            env["LIGHTMAIL_DATABASE_URL"] = mysql_url
        settings = load_settings(None, env)
        async with open_node(settings) as node:
            await node.accounts.add_domain("example.org")
            user = await node.accounts.add_user(ADDRESS, PASSWORD)
            recipients = [Recipient(user.id, ADDRESS)]
            full = await _with_messages(node, quota_messages)

            async def empty_write() -> None:
                async with node.db.write():
                    pass

            async def deliver() -> None:
                await node.store.deliver(recipients, _one_chunk())

            operations: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("RCPT lookup", lambda: node.accounts.resolve_recipient(ADDRESS)),
                (
                    "RCPT lookup, +detail",
                    lambda: node.accounts.resolve_recipient("bench+list@example.org"),
                ),
                ("LOGIN, cached", lambda: node.accounts.authenticate(ADDRESS, PASSWORD)),
                ("quota check", lambda: node.store.check_quota(user.id, len(MESSAGE))),
                (
                    f"quota check, {quota_messages} msgs",
                    lambda: node.store.check_quota(full.id, len(MESSAGE)),
                ),
                ("empty write transaction", empty_write),
                ("deliver 10 KiB", deliver),
            ]
            results = []
            for name, operation in operations:
                for _ in range(max(10, calls // 20)):  # warm the caches
                    await operation()
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(calls):
                    await operation()
                results.append(
                    (
                        name,
                        (time.process_time() - cpu) / calls * 1e6,
                        (time.perf_counter() - wall) / calls * 1e6,
                    )
                )
            return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each operation")
    parser.add_argument(
        "--mysql-url", help="a MySQL/MariaDB database to use instead of SQLite (it is emptied)"
    )
    parser.add_argument(
        "--quota-messages",
        type=int,
        default=20000,
        help="messages of the user with a quota whose check is timed",
    )
    args = parser.parse_args()
    database = "SQLite" if args.mysql_url is None else "MySQL/MariaDB"
    print(f"{database} + folder, {args.calls} calls of each operation")
    print(f"{'operation':<30}{'CPU us/call':>12}{'wall us/call':>14}")
    for name, cpu, wall in asyncio.run(measure(args.calls, args.mysql_url, args.quota_messages)):
        print(f"{name:<30}{cpu:>12.0f}{wall:>14.0f}")


if __name__ == "__main__":
    main()
