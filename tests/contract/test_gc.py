"""The garbage collector on both backends: purge, retention, restore, orphans, crashes.

On MariaDB each test gets a database of its own (the collector works on every
user of a database, so the counts it reports must not include other tests').
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from lightmail.accounts.service import Accounts, User
from lightmail.clock import utcnow
from lightmail.config import GcSettings
from lightmail.errors import MailboxNotFound, NotFound
from lightmail.gc import CLAIM_LEASE, GarbageCollector, GcWorker
from lightmail.mailstore.store import Expunged, MailStore, Recipient, StoreMode
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import BlobStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.conftest import open_blobs
from tests.support.interrupted_put import spec_argument

DAY = timedelta(days=1)


def message(n: int) -> bytes:
    return (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: gc {n}\r\n"
        f"Message-ID: <{n}.{uuid.uuid4().hex}@example.org>\r\n\r\nBody {n}.\r\n"
    ).encode()


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def settings(
    retention: timedelta = 7 * DAY, orphan_grace: timedelta = DAY, batch_size: int = 500
) -> GcSettings:
    return GcSettings(
        enabled=True,
        interval=300,
        batch_size=batch_size,
        retention=retention.total_seconds(),
        orphan_grace=orphan_grace.total_seconds(),
    )


@dataclass
class GcEnv:
    db: Database
    blobs: BlobStore
    store: MailStore
    accounts: Accounts
    domain: str
    offset: timedelta = field(default=timedelta())

    def clock(self) -> datetime:
        return utcnow() + self.offset

    def collector(
        self, db: Database | None = None, blobs: BlobStore | None = None, **kw: Any
    ) -> GarbageCollector:
        return GarbageCollector(
            db or self.db, blobs or self.blobs, settings(**kw), clock=self.clock
        )

    async def new_user(self) -> User:
        return await self.accounts.add_user(f"u{uuid.uuid4().hex[:8]}@{self.domain}", "secret")

    async def deliver(self, data: bytes, *users: User) -> list[int]:
        outcomes = await self.store.deliver(
            [Recipient(user.id, user.address) for user in users], one_chunk(data)
        )
        return [outcome.result.uid for outcome in outcomes if outcome.result is not None]

    async def blob_keys(self) -> set[str]:
        return {info.key async for page in self.blobs.list("eml/") for info in page}

    async def count(self, table: Any, *where: Any) -> int:
        async with self.db.read() as conn:
            return int(
                (
                    await conn.execute(select(func.count()).select_from(table).where(*where))
                ).scalar_one()
            )

    async def expunge(self, user: User, mailbox: str, uids: Sequence[int]) -> None:
        box = await self.store.get_mailbox(user.id, mailbox)
        await self.store.store_flags(user.id, box, uids, StoreMode.ADD, ["\\Deleted"])
        assert await self.store.expunge(user.id, box) == sorted(uids)


@pytest.fixture
async def env(own_storage: tuple[str, dict[str, Any]]) -> AsyncIterator[GcEnv]:
    url, spec = own_storage
    db = Database(url)
    await db.upgrade()
    blobs = open_blobs(spec)
    store = MailStore(db, blobs, InProcessNotificationBus())
    accounts = Accounts(store)
    domain = f"d{uuid.uuid4().hex[:8]}.example"
    await accounts.add_domain(domain)
    try:
        yield GcEnv(db, blobs, store, accounts, domain)
    finally:
        await blobs.close()
        await db.close()


async def test_purge_keeps_a_blob_another_live_message_uses(env: GcEnv) -> None:
    alice, bob = await env.new_user(), await env.new_user()
    data = message(1)
    await env.deliver(data, alice, bob)
    (key,) = await env.blob_keys()
    await env.expunge(alice, "INBOX", [1])

    report = await env.collector(retention=timedelta()).run()

    assert (report.messages_purged, report.blobs_deleted, report.error) == (1, 0, None)
    assert await env.blob_keys() == {key}
    inbox = await env.store.get_mailbox(bob.id, "INBOX")
    (info,) = await env.store.list_messages(inbox)
    assert await read_all(env.store.read_message(info)) == data

    await env.expunge(bob, "INBOX", [1])
    report = await env.collector(retention=timedelta()).run()
    assert (report.messages_purged, report.blobs_deleted, report.bytes_freed) == (1, 1, len(data))
    assert await env.blob_keys() == set()
    assert await env.count(t.messages) == 0
    assert await env.count(t.object_keys) == 0


async def test_retention_keeps_deleted_mail_until_it_has_passed(env: GcEnv) -> None:
    user = await env.new_user()
    await env.deliver(message(1), user)
    await env.expunge(user, "INBOX", [1])

    assert (await env.collector().run()).messages_purged == 0
    env.offset = 7 * DAY - timedelta(minutes=1)
    assert (await env.collector().run()).messages_purged == 0
    assert len(await env.store.list_deleted(user.id)) == 1
    env.offset = 7 * DAY + timedelta(seconds=1)
    assert (await env.collector().run()).messages_purged == 1
    assert await env.store.list_deleted(user.id) == []
    assert await env.blob_keys() == set()


async def test_expunges_outlive_the_purge_as_a_complete_answer(env: GcEnv) -> None:
    """QRESYNC (RFC 7162 section 3.2.6): after the GC purged an expunge's row, a client
    from before it is told it cannot be answered by UID (any non-live UID may be
    gone), never an answer that misses the purged UID; a client from after the
    purged expunges still gets the exact list."""
    user = await env.new_user()
    for n in range(5):
        await env.deliver(message(n), user)
    inbox = await env.store.get_mailbox(user.id, "INBOX")
    month_ago = inbox.highestmodseq
    await env.expunge(user, "INBOX", [2])
    after_first = (await env.store.get_mailbox(user.id, "INBOX")).highestmodseq
    assert await env.store.expunged_since(inbox, month_ago) == Expunged([2], complete=True)

    assert (await env.collector(retention=timedelta()).run()).messages_purged == 1
    assert await env.store.expunged_since(inbox, month_ago) == Expunged([], complete=False)
    assert await env.store.expunged_since(inbox, after_first) == Expunged([], complete=True)
    await env.expunge(user, "INBOX", [4])
    assert await env.store.expunged_since(inbox, after_first) == Expunged([4], complete=True)
    assert await env.store.expunged_since(inbox, month_ago) == Expunged([4], complete=False)


async def test_a_restore_and_renaming_inbox_forget_uids_as_a_purge_does(env: GcEnv) -> None:
    """A restored message's old UID, and the UIDs renaming INBOX moves out, are gone
    from the mailbox with no row left to say so: older clients are told so."""
    user = await env.new_user()
    for n in range(3):
        await env.deliver(message(n), user)
    inbox = await env.store.get_mailbox(user.id, "INBOX")
    before = inbox.highestmodseq
    await env.expunge(user, "INBOX", [1])
    (deleted,) = await env.store.list_deleted(user.id)
    await env.store.restore(user.id, deleted.id)
    restored = (await env.store.get_mailbox(user.id, "INBOX")).highestmodseq
    assert await env.store.expunged_since(inbox, before) == Expunged([], complete=False)
    assert await env.store.expunged_since(inbox, restored) == Expunged([], complete=True)

    await env.store.rename_mailbox(user.id, "INBOX", "Old mail")
    assert await env.store.expunged_since(inbox, restored) == Expunged([], complete=False)
    moved = (await env.store.get_mailbox(user.id, "INBOX")).highestmodseq
    assert await env.store.expunged_since(inbox, moved) == Expunged([], complete=True)


async def test_restore_brings_a_message_back_with_a_new_uid(env: GcEnv) -> None:
    user = await env.new_user()
    data = message(1)
    await env.deliver(data, user)
    await env.expunge(user, "INBOX", [1])
    (deleted,) = await env.store.list_deleted(user.id)
    assert (deleted.mailbox, deleted.uid, deleted.size) == ("INBOX", 1, len(data))

    result = await env.store.restore(user.id, deleted.id)

    assert result.uid == 2  # UIDs are never reused
    inbox = await env.store.get_mailbox(user.id, "INBOX")
    (info,) = await env.store.list_messages(inbox)
    assert info.uid == 2
    assert await read_all(env.store.read_message(info)) == data
    assert await env.store.list_deleted(user.id) == []
    with pytest.raises(NotFound):
        await env.store.restore(user.id, deleted.id)  # live now, not deleted


async def test_restore_clears_deleted_so_the_next_expunge_keeps_it(env: GcEnv) -> None:
    user = await env.new_user()
    await env.deliver(message(1), user)
    await env.expunge(user, "INBOX", [1])  # flags \Deleted, then EXPUNGE
    (deleted,) = await env.store.list_deleted(user.id)
    await env.store.restore(user.id, deleted.id)

    inbox = await env.store.get_mailbox(user.id, "INBOX")
    (info,) = await env.store.list_messages(inbox)
    assert info.flags.names() == ()
    assert await env.store.expunge(user.id, inbox) == []


async def test_purge_keeps_a_blob_a_restorable_message_uses(
    env: GcEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lightmail.clock.utcnow", env.clock)  # deletion times follow
    alice, bob = await env.new_user(), await env.new_user()
    data = message(1)
    await env.deliver(data, alice, bob)
    await env.expunge(alice, "INBOX", [1])
    env.offset = timedelta(hours=2)
    await env.expunge(bob, "INBOX", [1])

    report = await env.collector(retention=timedelta(hours=1)).run()

    assert (report.messages_purged, report.blobs_deleted) == (1, 0)
    (deleted,) = await env.store.list_deleted(bob.id)
    await env.store.restore(bob.id, deleted.id)
    (info,) = await env.store.list_messages(await env.store.get_mailbox(bob.id, "INBOX"))
    assert await read_all(env.store.read_message(info)) == data


async def test_restore_refuses_a_message_of_another_user_or_a_deleted_mailbox(
    env: GcEnv,
) -> None:
    alice, bob = await env.new_user(), await env.new_user()
    await env.store.create_mailbox(alice.id, "Projects")
    await env.store.append(alice.id, "Projects", one_chunk(message(1)))
    await env.store.delete_mailbox(alice.id, "Projects")
    (deleted,) = await env.store.list_deleted(alice.id)
    assert deleted.mailbox is None

    with pytest.raises(NotFound):
        await env.store.restore(bob.id, deleted.id)
    await env.store.create_mailbox(alice.id, "Projects")  # a new mailbox of the same name
    with pytest.raises(MailboxNotFound):
        await env.store.restore(alice.id, deleted.id)


async def test_a_claimed_message_can_no_longer_be_restored(env: GcEnv) -> None:
    user = await env.new_user()
    await env.deliver(message(1), user)
    await env.expunge(user, "INBOX", [1])
    (deleted,) = await env.store.list_deleted(user.id)
    crashing = CrashingBlobs(env.blobs, crash_on_delete=1)
    with pytest.raises(Crash):
        await env.collector(blobs=crashing, retention=timedelta()).run()

    assert await env.store.list_deleted(user.id) == []
    with pytest.raises(NotFound):
        await env.store.restore(user.id, deleted.id)


async def test_dry_run_reports_and_changes_nothing(env: GcEnv) -> None:
    alice, bob = await env.new_user(), await env.new_user()
    shared, alone = message(1), message(2)
    await env.deliver(shared, alice, bob)
    await env.deliver(alone, alice)
    await env.expunge(alice, "INBOX", [1, 2])
    orphan = await env.store.store_message(one_chunk(message(3)))
    env.offset = 2 * DAY

    report = await env.collector(retention=timedelta()).run(dry_run=True)

    assert report.dry_run
    assert (report.messages_purged, report.blobs_deleted, report.orphans_deleted) == (2, 1, 1)
    assert report.bytes_freed == len(alone) + orphan.put.size
    assert len(await env.blob_keys()) == 3
    assert len(await env.store.list_deleted(alice.id)) == 2
    assert (await env.collector().status()).last_run is None  # dry runs are not recorded


async def test_status_counts_deleted_mail_and_records_the_last_run(env: GcEnv) -> None:
    user = await env.new_user()
    for n in range(3):
        await env.deliver(message(n), user)
    await env.expunge(user, "INBOX", [1, 2])
    collector = env.collector()

    status = await collector.status()
    assert (status.deleted_messages, status.due_messages, status.last_run) == (2, 0, None)
    assert status.deleted_bytes == sum(len(message(n)) for n in range(2))

    env.offset = 8 * DAY
    assert (await collector.status()).due_messages == 2
    report = await collector.run()
    status = await collector.status()
    assert (status.deleted_messages, status.due_messages) == (0, 0)
    assert status.last_run is not None
    assert status.last_run.messages_purged == 2
    # MariaDB keeps whole seconds
    assert abs(status.last_run.started_at - report.started_at) < timedelta(seconds=1)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_metrics_count_purged_messages_blobs_and_bytes(env: GcEnv) -> None:
    user = await env.new_user()
    data = message(1)
    await env.deliver(data, user)
    await env.expunge(user, "INBOX", [1])
    before = (
        sample("lightmail_gc_messages_purged_total"),
        sample("lightmail_gc_blobs_deleted_total", {"reason": "purge"}),
        sample("lightmail_gc_bytes_freed_total"),
        sample("lightmail_gc_batch_seconds_count", {"phase": "purge"}),
    )
    await env.collector(retention=timedelta()).run()
    after = (
        sample("lightmail_gc_messages_purged_total"),
        sample("lightmail_gc_blobs_deleted_total", {"reason": "purge"}),
        sample("lightmail_gc_bytes_freed_total"),
        sample("lightmail_gc_batch_seconds_count", {"phase": "purge"}),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, len(data), 1]
    assert sample("lightmail_gc_pending_messages") == 0


# -- orphans ----------------------------------------------------------------------


async def test_orphan_sweep_deletes_old_blobs_without_rows_and_keeps_recent_ones(
    env: GcEnv,
) -> None:
    user = await env.new_user()
    live = message(1)
    await env.deliver(live, user)
    (live_key,) = await env.blob_keys()
    orphan = await env.store.store_message(one_chunk(message(2)))
    collector = env.collector(orphan_grace=timedelta(hours=1))

    assert (await collector.run()).orphans_deleted == 0  # too young
    env.offset = timedelta(minutes=59)
    assert (await collector.run()).orphans_deleted == 0
    assert await env.blob_keys() == {live_key, orphan.key}

    env.offset = timedelta(hours=1, seconds=1)
    report = await collector.run()
    assert (report.orphans_deleted, report.bytes_freed) == (1, orphan.put.size)
    assert await env.blob_keys() == {live_key}
    inbox = await env.store.get_mailbox(user.id, "INBOX")
    (info,) = await env.store.list_messages(inbox)
    assert await read_all(env.store.read_message(info)) == live


async def test_orphan_age_is_the_later_of_key_time_and_store_time(env: GcEnv) -> None:
    """A blob whose key is old but which was written just now is still young."""
    old_key = "eml/00000000-0000-7000-8000-000000000000.eml"  # a UUIDv7 of 1970
    await env.blobs.put(old_key, one_chunk(b"x"))
    other = "eml/not-a-uuid.eml"  # no key time: the store's time counts
    await env.blobs.put(other, one_chunk(b"y"))
    collector = env.collector(orphan_grace=timedelta(hours=1))

    assert (await collector.run()).orphans_deleted == 0
    env.offset = timedelta(hours=2)
    assert (await collector.run()).orphans_deleted == 2
    assert await env.blob_keys() == set()


class ListingSpy:
    """The real blob store, noting the size of every listing page it hands out."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self.pages: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._blobs, name)

    async def list(self, prefix: str, *, page_size: int) -> AsyncIterator[list[Any]]:
        async for page in self._blobs.list(prefix, page_size=page_size):
            self.pages.append(len(page))
            yield page


async def test_orphan_sweep_pages_through_the_listing(
    env: GcEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lightmail.gc.collector._LIST_PAGE", 3)
    spy = ListingSpy(env.blobs)
    for n in range(7):
        await env.store.store_message(one_chunk(message(n)))
    env.offset = 2 * DAY

    assert (await env.collector(blobs=spy).run()).orphans_deleted == 7  # type: ignore[arg-type]
    assert spy.pages == [3, 3, 1]
    assert await env.blob_keys() == set()


# -- writes that never finished -------------------------------------------------------


def unfinished_writes(spec: dict[str, Any]) -> list[str]:
    """What a killed put left, seen from outside the store: temporary files in the
    blob folder, or the store's incomplete multipart uploads (ListMultipartUploads)."""
    if "root" in spec:
        return sorted(path.name for path in (Path(spec["root"]) / ".tmp").glob("*.part"))
    s3 = spec["s3"]
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name=s3.region,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
    )
    try:
        page = client.list_multipart_uploads(Bucket=s3.bucket, Prefix=f"{spec['prefix']}/")
        return sorted(upload["Key"] for upload in page.get("Uploads", ()))
    finally:
        client.close()


def kill_during_a_20_mib_put(spec: dict[str, Any]) -> None:
    """Run a put of 20 MiB in another process and SIGKILL it after 12 MiB."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.interrupted_put", spec_argument(spec)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 30
        while not unfinished_writes(spec):  # S3: the upload starts with its first part
            assert time.monotonic() < deadline, "the put left nothing to find"
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


async def test_a_kill_during_a_big_put_leaves_an_unfinished_write_the_sweep_removes(
    env: GcEnv, own_storage: tuple[str, dict[str, Any]]
) -> None:
    spec = own_storage[1]
    await asyncio.to_thread(kill_during_a_20_mib_put, spec)
    (left,) = unfinished_writes(spec)
    assert await env.blob_keys() == set()  # invisible to the orphan sweep's listing

    assert (await env.collector().run()).incomplete_removed == 0  # younger than the grace
    env.offset = DAY - timedelta(minutes=1)
    assert (await env.collector().run()).incomplete_removed == 0
    env.offset = DAY + timedelta(minutes=1)
    assert (await env.collector().run(dry_run=True)).incomplete_removed == 1
    assert unfinished_writes(spec) == [left]

    assert (await env.collector().run()).incomplete_removed == 1
    assert unfinished_writes(spec) == []
    assert (await env.collector().run()).incomplete_removed == 0  # idempotent


# -- crashes ----------------------------------------------------------------------


class Crash(Exception):
    """Stands for the process dying at this point."""


class CrashingBlobs:
    """The real blob store, dying at the n-th delete: before it, halfway, or after."""

    def __init__(self, blobs: BlobStore, *, crash_on_delete: int, when: str = "before") -> None:
        self._blobs = blobs
        self._countdown = crash_on_delete
        self._when = when

    def __getattr__(self, name: str) -> Any:
        return getattr(self._blobs, name)

    async def delete_many(self, keys: Sequence[str]) -> None:
        self._countdown -= 1
        if self._countdown:
            await self._blobs.delete_many(keys)
            return
        if self._when == "halfway":
            await self._blobs.delete_many(keys[: len(keys) // 2])
        elif self._when == "after":
            await self._blobs.delete_many(keys)
        raise Crash


class CrashingDatabase(Database):
    """The real database, dying inside (before commit) or right after the n-th write."""

    def __init__(self, url: str, *, crash_on_write: int, when: str) -> None:
        super().__init__(url)
        self._countdown = crash_on_write
        self._when = when

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        self._countdown -= 1
        crash = self._countdown == 0
        async with super().write() as conn:
            yield conn
            if crash and self._when == "before commit":
                raise Crash
        if crash:
            raise Crash


async def seed(env: GcEnv) -> tuple[dict[tuple[int, int], bytes], list[User]]:
    """Live and deleted mail, some sharing blobs; returns the live messages."""
    users = [await env.new_user() for _ in range(3)]
    for n in range(6):
        await env.deliver(message(n), *users[: 1 + n % 3])
    await env.expunge(users[0], "INBOX", [1, 2, 3, 4])
    await env.expunge(users[1], "INBOX", [1])
    live: dict[tuple[int, int], bytes] = {}
    for user in users:
        inbox = await env.store.get_mailbox(user.id, "INBOX")
        for info in await env.store.list_messages(inbox):
            live[(user.id, info.uid)] = await read_all(env.store.read_message(info))
    return live, users


async def check_after_rerun(
    env: GcEnv, live: dict[tuple[int, int], bytes], users: list[User]
) -> None:
    """Nothing live lost, nothing left behind."""
    seen: dict[tuple[int, int], bytes] = {}
    used: set[str] = set()
    for user in users:
        inbox = await env.store.get_mailbox(user.id, "INBOX")
        for info in await env.store.list_messages(inbox):
            seen[(user.id, info.uid)] = await read_all(env.store.read_message(info))
            used.add(info.object_key)
        assert await env.store.list_deleted(user.id) == []
    assert seen == live
    assert await env.blob_keys() == used
    assert await env.count(t.messages) == len(live)
    assert await env.count(t.object_keys) == len(used)


CRASH_POINTS = [
    pytest.param({"crash_on_write": 1, "when": "before commit"}, id="claim-rolled-back"),
    pytest.param({"crash_on_write": 1, "when": "after commit"}, id="after-claim"),
    pytest.param({"crash_on_delete": 1, "when": "before"}, id="before-blob-delete"),
    pytest.param({"crash_on_delete": 1, "when": "halfway"}, id="halfway-blob-delete"),
    pytest.param({"crash_on_delete": 1, "when": "after"}, id="after-blob-delete"),
    pytest.param({"crash_on_write": 2, "when": "before commit"}, id="row-delete-rolled-back"),
    pytest.param({"crash_on_write": 2, "when": "after commit"}, id="after-row-delete"),
]


@pytest.mark.parametrize("crash", CRASH_POINTS)
async def test_a_crash_at_any_step_is_completed_by_the_next_run(
    env: GcEnv, own_storage: tuple[str, dict[str, Any]], crash: dict[str, Any]
) -> None:
    live, users = await seed(env)
    db: Database = env.db
    blobs: Any = env.blobs
    if "crash_on_write" in crash:
        db = CrashingDatabase(own_storage[0], **crash)
    else:
        blobs = CrashingBlobs(env.blobs, **crash)
    try:
        with pytest.raises(Crash):
            await env.collector(db=db, blobs=blobs, retention=timedelta(), batch_size=3).run()
    finally:
        if db is not env.db:
            await db.close()
    # Whatever the crash left, no deleted message has come back to life.
    for user in users:
        for info in await env.store.list_messages(await env.store.get_mailbox(user.id, "INBOX")):
            assert (user.id, info.uid) in live

    env.offset = CLAIM_LEASE + timedelta(seconds=1)  # the crashed worker's claim runs out
    await env.collector(retention=timedelta(), batch_size=3).run()

    await check_after_rerun(env, live, users)


async def test_a_crash_between_blob_write_and_commit_leaves_an_orphan_the_sweep_removes(
    env: GcEnv,
) -> None:
    live, users = await seed(env)
    await env.store.store_message(one_chunk(message(99)))  # its commit never happens
    env.offset = 2 * DAY
    await env.collector(retention=timedelta()).run()
    await check_after_rerun(env, live, users)


# -- the worker ----------------------------------------------------------------------


async def test_worker_runs_at_start_and_every_interval_until_stopped(env: GcEnv) -> None:
    user = await env.new_user()
    await env.deliver(message(1), user)
    await env.expunge(user, "INBOX", [1])
    worker = GcWorker(env.collector(retention=timedelta()), interval=0.2)
    await worker.start()
    try:
        for _ in range(100):
            if await env.count(t.messages) == 0:
                break
            await asyncio.sleep(0.05)
        assert await env.count(t.messages) == 0
        await env.deliver(message(2), user)
        await env.expunge(user, "INBOX", [2])
        for _ in range(100):
            if await env.count(t.messages) == 0:
                break
            await asyncio.sleep(0.05)
        assert await env.count(t.messages) == 0
    finally:
        await worker.stop()
    assert await env.count(t.gc_runs) >= 2
