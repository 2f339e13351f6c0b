"""The garbage collector against a model of the mail, on both backends (issue 8).

A hypothesis state machine delivers messages to several users at once (one
shared blob), copies, moves, expunges (EXPUNGE, UID EXPUNGE, POP3's delete),
restores, and runs the GC (or a dry run) with the clock moved forward. After
every step:

- each mailbox lists exactly the live messages of the model, and each reads
  back byte for byte what was delivered;
- the restorable messages (``list_deleted``) are exactly the model's, with
  deletion times the clock gave;
- the blob store holds exactly the blobs that live or restorable messages use.

At the end a GC far past retention must leave only what live mail uses: in the
blob store, in ``object_keys`` and in ``messages``.

The store and the collector read one virtual clock (``lightmail.clock.utcnow`` is
patched), so soft-delete times and the collector's "now" move forward together.
Each example gets fresh storage: on SQLite a database file and blob folder of
its own; on MariaDB a fresh domain and S3 prefix in one database made for this
test. The collector works on every user of that database, so every check here
is about this example's messages and blobs.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from lightmail import clock as clock_module
from lightmail.accounts import service as accounts_module
from lightmail.accounts.service import Accounts, User
from lightmail.gc import CLAIM_LEASE, GarbageCollector, GcReport
from lightmail.mailstore.store import Mailbox, MailStore, Recipient, StoreMode
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import BlobStore
from lightmail.storage.db import tables as t
from lightmail.storage.db.engine import Database
from tests.conftest import open_blobs
from tests.contract.test_gc import DAY, message, one_chunk, read_all
from tests.contract.test_gc import settings as gc_settings
from tests.support.mariadb import create_database, drop_database, recreate_schema

# MariaDB keeps whole seconds: a stored time may be up to a second off the clock.
SLACK = timedelta(seconds=1)
RETENTION = timedelta(hours=1)
# No crash leaves orphans here: the purge alone must free every blob, so the
# orphan sweep (which would hide a purge that forgets blobs) never comes due.
ORPHAN_GRACE = 3650 * DAY
# Every step takes a quarter of the retention, and a GC step moves the clock
# on by one of ADVANCES first. So a GC often finds mail deleted a few steps
# apart of which some is due and some is not: the case where a restorable
# message must keep the blob it shares with a purged one. Every sum of these
# is at least a second past retention or a quarter of it short, so the model
# always knows what is due.
TICK = RETENTION / 4 + SLACK
ADVANCES = [
    timedelta(),
    RETENTION / 2 + SLACK,
    RETENTION + SLACK,
    RETENTION + CLAIM_LEASE + SLACK,
]
USERS = 3
MAILBOXES = ("INBOX", "Archive")
EXAMPLES = {"sqlite": 15, "mariadb": 8}
STEPS = 20

Place = tuple[int, int]  # (mailbox id, uid)
Storage = tuple[str, dict[str, Any]]  # database URL, blob store spec
_T = TypeVar("_T")


class VirtualClock:
    """Naive UTC now, plus however far the test has moved time forward.

    One per test: it only ever moves forward, from one example to the next too.
    """

    def __init__(self) -> None:
        self.ahead = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None) + self.ahead


@dataclass(frozen=True, slots=True)
class Copy:
    """A message in a mailbox, as the model knows it."""

    user: int  # index into the machine's users
    blob: int  # the delivery its bytes (and its blob) come from
    flagged: bool = False  # has \\Deleted


@dataclass(frozen=True, slots=True)
class Gone:
    """A soft-deleted message, deleted between ``since`` and ``until`` (virtual time)."""

    copy: Copy
    since: datetime
    until: datetime


@dataclass(slots=True)
class Model:
    live: dict[Place, Copy] = field(default_factory=dict)
    deleted: dict[Place, Gone] = field(default_factory=dict)  # by the uid it had
    data: dict[int, bytes] = field(default_factory=dict)  # blob number -> bytes delivered
    keys: dict[int, str] = field(default_factory=dict)  # blob number -> blob key, once seen
    top_uid: dict[int, int] = field(default_factory=dict)  # mailbox id -> highest uid seen

    def add_live(self, place: Place, copy: Copy) -> None:
        mailbox_id, uid = place
        assert uid > self.top_uid.get(mailbox_id, 0), "a UID was used again"
        self.top_uid[mailbox_id] = uid
        self.live[place] = copy

    def uids(self, mailbox_id: int) -> list[int]:
        return sorted(uid for box, uid in self.live if box == mailbox_id)

    def blobs_in_use(self) -> set[int]:
        """Blobs of live and restorable messages."""
        return {copy.blob for copy in self.live.values()} | {
            gone.copy.blob for gone in self.deleted.values()
        }

    def blobs_freed(self, purged: set[Place]) -> set[int]:
        """The blobs no message uses once the deleted messages ``purged`` are gone."""
        kept = {copy.blob for copy in self.live.values()} | {
            gone.copy.blob for place, gone in self.deleted.items() if place not in purged
        }
        return self.blobs_in_use() - kept


class GcMachine(RuleBasedStateMachine):
    """One example: fresh storage, three users, and the model of their mail."""

    # Set by the test, per backend.
    make_storage: Callable[[], Storage]
    clock: VirtualClock
    isolated: bool  # nobody else's mail in the database: GC reports count only ours

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.model = Model()
        self.deliveries = itertools.count(1)
        url, spec = self.make_storage()
        self.db = Database(url)
        self.blobs: BlobStore = open_blobs(spec)
        self.store = MailStore(self.db, self.blobs, InProcessNotificationBus())
        self.users: list[User] = []
        self.boxes: dict[int, tuple[int, Mailbox]] = {}  # mailbox id -> (user index, mailbox)
        self.box_ids: dict[tuple[int, str], int] = {}  # (user index, name) -> mailbox id
        self.run(self._setup())

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return self.loop.run_until_complete(coroutine)

    async def _setup(self) -> None:
        accounts = Accounts(self.store)
        domain = await accounts.add_domain(f"d{uuid.uuid4().hex[:10]}.example")
        for index in range(USERS):
            user = await accounts.add_user(f"u{index}@{domain}", "secret")
            self.users.append(user)
            for name in MAILBOXES:
                mailbox = await self.store.get_mailbox(user.id, name)
                self.boxes[mailbox.id] = (index, mailbox)
                self.box_ids[(index, name)] = mailbox.id

    # -- rules -----------------------------------------------------------------

    @rule(
        recipients=st.lists(
            st.tuples(st.integers(0, USERS - 1), st.sampled_from([None, "INBOX", "Archive"])),
            min_size=1,
            max_size=USERS,
            unique_by=lambda recipient: recipient[0],
        )
    )
    def deliver(self, recipients: list[tuple[int, str | None]]) -> None:
        """One message to one to three users (each to INBOX or a named mailbox)."""
        self.clock.ahead += TICK
        blob = next(self.deliveries)
        data = self.model.data[blob] = message(blob)
        to = [
            Recipient(self.users[user].id, self.users[user].address, box)
            for user, box in recipients
        ]
        outcomes = self.run(self.store.deliver(to, one_chunk(data)))
        for (user, box), outcome in zip(recipients, outcomes, strict=True):
            assert outcome.error is None
            assert outcome.result is not None
            assert outcome.result.mailbox_id == self.box_ids[(user, box or "INBOX")]
            self.model.add_live((outcome.result.mailbox_id, outcome.result.uid), Copy(user, blob))

    @precondition(lambda self: self.model.live)
    @rule(data=st.data())
    def copy(self, data: st.DataObject) -> None:
        self.clock.ahead += TICK
        self._copy(data, move=False)

    @precondition(lambda self: self.model.live)
    @rule(data=st.data())
    def move(self, data: st.DataObject) -> None:
        self.clock.ahead += TICK
        self._copy(data, move=True)

    @precondition(lambda self: self.model.live)
    @rule(data=st.data(), how=st.sampled_from(["EXPUNGE", "UID EXPUNGE", "DELE"]))
    def expunge(self, data: st.DataObject, how: str) -> None:
        """Soft-delete one to three messages of a mailbox: flag and expunge, or POP3's way."""
        self.clock.ahead += TICK
        mailbox_id, uids = self._draw_messages(data)
        user, mailbox = self.boxes[mailbox_id]
        user_id = self.users[user].id
        since = self.clock()
        if how == "DELE":
            self.run(self.store.delete_messages(user_id, mailbox, uids))
            gone = sorted(uids)
        else:
            self.run(self.store.store_flags(user_id, mailbox, uids, StoreMode.ADD, ["\\Deleted"]))
            for uid in uids:
                place = (mailbox_id, uid)
                self.model.live[place] = replace(self.model.live[place], flagged=True)
            if how == "UID EXPUNGE":
                gone = sorted(uids)
                assert self.run(self.store.expunge(user_id, mailbox, uids)) == gone
            else:  # every flagged message goes
                live = self.model.live
                gone = [
                    uid for uid in self.model.uids(mailbox_id) if live[(mailbox_id, uid)].flagged
                ]
                assert self.run(self.store.expunge(user_id, mailbox)) == gone
        until = self.clock()
        for uid in gone:
            copy = self.model.live.pop((mailbox_id, uid))
            self.model.deleted[(mailbox_id, uid)] = Gone(copy, since, until)

    @precondition(lambda self: self.model.deleted)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        """Restore a soft-deleted message: live again in its mailbox, with a new UID."""
        self.clock.ahead += TICK
        place = data.draw(st.sampled_from(sorted(self.model.deleted)), "restore")
        gone = self.model.deleted.pop(place)
        user_id = self.users[gone.copy.user].id
        listed = self.run(self.store.list_deleted(user_id, limit=1000))
        (entry,) = [item for item in listed if (item.mailbox_id, item.uid) == place]
        result = self.run(self.store.restore(user_id, entry.id))
        assert result.mailbox_id == place[0]
        # Without \Deleted, or the next EXPUNGE would undo the restore.
        self.model.add_live((result.mailbox_id, result.uid), replace(gone.copy, flagged=False))

    @rule(
        advance=st.sampled_from(ADVANCES),
        batch_size=st.sampled_from([1, 2, 500]),
        dry_run=st.booleans(),
    )
    def gc(self, advance: timedelta, batch_size: int, dry_run: bool) -> None:
        """Move the clock forward and run the GC: what is past retention goes, nothing else."""
        self.clock.ahead += TICK + advance
        self._gc(batch_size, dry_run=dry_run)

    # -- checks ----------------------------------------------------------------

    @invariant()
    def mail_is_intact(self) -> None:
        self.run(self._check())

    def teardown(self) -> None:
        try:
            if sys.exc_info()[1] is None:  # else a step failed, and its error is the one to report
                self.clock.ahead += RETENTION + CLAIM_LEASE + DAY
                self._gc(batch_size=500)
                assert self.model.deleted == {}
                self.run(self._check())
                self.run(self._check_final())
        finally:
            self.run(self.blobs.close())
            self.run(self.db.close())
            self.run(self.loop.shutdown_asyncgens())
            self.loop.close()

    def _gc(self, batch_size: int, *, dry_run: bool = False) -> None:
        collector = GarbageCollector(
            self.db,
            self.blobs,
            gc_settings(retention=RETENTION, orphan_grace=ORPHAN_GRACE, batch_size=batch_size),
            clock=self.clock,
        )
        deleted = self.model.deleted
        before = self.clock()
        report = self.run(collector.run(dry_run=dry_run))
        after = self.clock()
        assert report.error is None
        # Deleted before the cutoff of the run's first reading of the clock:
        # due. After the cutoff of its last: not due. In between (within the
        # time the run took), either: the database says which.
        due = {p for p, gone in deleted.items() if gone.until + SLACK <= before - RETENTION}
        not_due = {p for p, gone in deleted.items() if gone.since - SLACK > after - RETENTION}
        if dry_run:  # it changes nothing (the invariant checks), and predicts the purge
            if due | not_due == deleted.keys():
                self._check_report(report, due, self.model.blobs_freed(due))
            return
        listed = self.run(self._listed_deleted())
        assert due.isdisjoint(listed), "past retention but still restorable"
        assert not_due <= listed.keys(), "purged before retention had passed"
        purged = deleted.keys() - listed.keys()
        freed = self.model.blobs_freed(purged)
        for place in purged:
            del deleted[place]
        self.run(self._check_blobs())  # before the counts: lost or leaked blobs say more
        self._check_report(report, purged, freed)

    def _check_report(self, report: GcReport, purged: set[Place], freed: set[int]) -> None:
        assert report.orphans_deleted == 0  # the sweep lists only this example's blobs
        if self.isolated:
            assert (report.messages_purged, report.blobs_deleted) == (len(purged), len(freed))
        else:  # other examples' deleted mail may go too
            assert report.messages_purged >= len(purged)
            assert report.blobs_deleted >= len(freed)

    async def _listed_deleted(self) -> dict[Place, datetime]:
        """Every user's restorable messages, with their deletion times (naive UTC)."""
        listed: dict[Place, datetime] = {}
        for user in self.users:
            for item in await self.store.list_deleted(user.id, limit=1000):
                listed[(item.mailbox_id, item.uid)] = item.deleted_at.replace(tzinfo=None)
        return listed

    async def _check(self) -> None:
        model = self.model
        contents: dict[str, bytes] = {}  # copies share a blob: read each once
        for mailbox_id, (user, mailbox) in self.boxes.items():
            infos = await self.store.list_messages(mailbox)
            assert [info.uid for info in infos] == model.uids(mailbox_id), mailbox.name
            for info in infos:
                copy = model.live[(mailbox_id, info.uid)]
                assert copy.user == user
                assert bool(info.flags.system & t.FLAG_DELETED) == copy.flagged
                assert model.keys.setdefault(copy.blob, info.object_key) == info.object_key
                if info.object_key not in contents:
                    contents[info.object_key] = await read_all(self.store.read_message(info))
                assert contents[info.object_key] == model.data[copy.blob]
        assert len(set(model.keys.values())) == len(model.keys), "two deliveries share a blob"
        for index, account in enumerate(self.users):
            copies = [copy for copy in model.live.values() if copy.user == index]
            size = sum(len(model.data[copy.blob]) for copy in copies)
            assert await self.store.usage(account.id) == (size, len(copies)), account.address
        listed = await self._listed_deleted()
        assert listed.keys() == model.deleted.keys()
        for place, deleted_at in listed.items():
            gone = model.deleted[place]
            assert gone.since - SLACK <= deleted_at <= gone.until + SLACK
        await self._check_blobs()

    async def _check_blobs(self) -> None:
        stored = {info.key async for page in self.blobs.list("eml/") for info in page}
        used = {self.model.keys[blob] for blob in self.model.blobs_in_use()}
        assert used <= stored, "a blob that live or restorable mail uses is gone"
        assert stored <= used, "a blob that no message uses is left"

    async def _check_final(self) -> None:
        """No mail outside the model, and no row for a blob no live message uses."""
        for index, user in enumerate(self.users):
            _, count = await self.store.usage(user.id)
            assert count == sum(copy.user == index for copy in self.model.live.values())
        keys = list(self.model.keys.values())
        live_keys = {self.model.keys[copy.blob] for copy in self.model.live.values()}
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(t.object_keys.c.key).where(t.object_keys.c.key.in_(keys))
            )
            with_rows = set(rows.scalars())
            messages = (
                await conn.execute(select(func.count()).where(t.messages.c.object_key.in_(keys)))
            ).scalar_one()
        assert with_rows == live_keys
        assert messages == len(self.model.live)

    # -- helpers ---------------------------------------------------------------

    def _copy(self, data: st.DataObject, *, move: bool) -> None:
        """COPY or MOVE one to three messages to another mailbox of their user."""
        source_id, uids = self._draw_messages(data)
        user, source = self.boxes[source_id]
        dest_name = data.draw(st.sampled_from([n for n in MAILBOXES if n != source.name]), "to")
        dest_id = self.box_ids[(user, dest_name)]
        action = self.store.move if move else self.store.copy
        since = self.clock()
        result = self.run(action(self.users[user].id, source, uids, dest_name))
        until = self.clock()
        assert result.source_uids == tuple(sorted(uids))
        assert len(result.dest_uids) == len(uids)
        for old, new in zip(result.source_uids, result.dest_uids, strict=True):
            copy = self.model.live[(source_id, old)]
            self.model.add_live((dest_id, new), copy)
            if move:
                del self.model.live[(source_id, old)]
                self.model.deleted[(source_id, old)] = Gone(copy, since, until)

    def _draw_messages(self, data: st.DataObject) -> tuple[int, list[int]]:
        """A mailbox with live mail, and one to three of its messages."""
        mailbox_id = data.draw(
            st.sampled_from(sorted({box for box, _ in self.model.live})), "mailbox"
        )
        uids = self.model.uids(mailbox_id)
        chosen = st.lists(st.sampled_from(uids), min_size=1, max_size=3, unique=True)
        return mailbox_id, data.draw(chosen, "uids")


@pytest.fixture
def fresh_storage(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], Storage]]:
    """Storage for one example after another.

    SQLite: a copy of a migrated database and a new blob folder each time.
    MariaDB: one database of this test's own, and a new S3 prefix each time.
    """
    counter = itertools.count()
    if backend_name == "sqlite":
        template = tmp_path / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{template}"))

        def sqlite() -> Storage:
            folder = tmp_path / f"example-{next(counter)}"
            folder.mkdir()
            shutil.copyfile(template, folder / "gc.db")
            return f"sqlite+aiosqlite:///{folder}/gc.db", {"root": folder / "blobs"}

        yield sqlite
        return
    request.getfixturevalue("mariadb_schema")  # MariaDB is there (or the run fails)
    s3 = request.getfixturevalue("s3_server")
    name = f"lightmail_gcm_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(create_database(name))
    run = uuid.uuid4().hex[:8]

    def mariadb() -> Storage:
        return url, {"s3": s3, "prefix": f"gcm-{run}-{next(counter)}"}

    try:
        asyncio.run(recreate_schema(url))
        yield mariadb
    finally:
        asyncio.run(drop_database(name))


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()


async def _unusable_hash(password: str) -> str:
    """Instead of argon2 (a third of a second per user): nobody logs in here."""
    return "!"


def test_gc_keeps_every_live_message_and_leaves_no_unused_blob(
    backend_name: str,
    fresh_storage: Callable[[], Storage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = VirtualClock()
    monkeypatch.setattr(clock_module, "utcnow", clock)
    monkeypatch.setattr(accounts_module, "hash_password", _unusable_hash)

    class Machine(GcMachine):
        make_storage = staticmethod(fresh_storage)
        isolated = backend_name == "sqlite"

    Machine.clock = clock
    run_state_machine_as_test(
        Machine,
        settings=hypothesis_settings(
            max_examples=EXAMPLES[backend_name],
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
