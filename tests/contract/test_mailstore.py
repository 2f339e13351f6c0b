"""The mailstore contract: the same behaviour on SQLite+filesystem and MariaDB+S3."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from lightmail.errors import (
    InvalidMailboxName,
    InvalidValue,
    KeywordLimitExceeded,
    MailboxExists,
    MailboxNotAllowed,
    MailboxNotFound,
    QuotaExceeded,
)
from lightmail.mailstore.store import (
    Flags,
    KeywordLimits,
    MailStore,
    NewMessage,
    Recipient,
    StoreMode,
)
from lightmail.notify.bus import ChangeKind
from lightmail.storage.blobs import BlobStore
from lightmail.storage.db import tables as t
from tests.conftest import Backend

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: Hello\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"\r\n"
    b"Hi Bob.\r\n"
)


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def blob_keys(blobs: BlobStore) -> list[str]:
    return [info.key async for page in blobs.list("eml/") for info in page]


async def test_new_user_gets_inbox_and_special_use_mailboxes(backend: Backend) -> None:
    user = await backend.new_user()
    mailboxes = {m.name: m.special_use for m in await backend.store.list_mailboxes(user.id)}
    assert mailboxes == {
        "INBOX": None,
        "Drafts": "\\Drafts",
        "Sent": "\\Sent",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
        "Archive": "\\Archive",
    }
    assert set(await backend.store.subscriptions(user.id)) == set(mailboxes)


async def test_append_then_read_back(backend: Backend) -> None:
    user = await backend.new_user()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    result = await backend.store.append(
        user.id, "inbox", chunks(MESSAGE), flags=["\\Seen", "$Label1"], internaldate=when
    )
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    assert (result.uid, result.uidvalidity, inbox.uidnext) == (1, inbox.uidvalidity, 2)
    [info] = await backend.store.list_messages(inbox)
    assert info.uid == 1
    assert info.size == len(MESSAGE)
    assert info.internaldate == when
    assert info.flags.names() == ("\\Seen", "$Label1")
    [meta] = await backend.store.fetch_meta(inbox, [1])
    assert meta.header.startswith(b"From: Alice")
    assert meta.envelope.subject == "Hello"
    assert await read_all(backend.store.read_message(info)) == MESSAGE
    assert await read_all(backend.store.read_message(info, 6, 11)) == b"Alice"


async def test_fifty_concurrent_appends_get_fifty_consecutive_uids(backend: Backend) -> None:
    user = await backend.new_user()
    results = await asyncio.gather(
        *(backend.store.append(user.id, "INBOX", chunks(MESSAGE)) for _ in range(50))
    )
    assert sorted(r.uid for r in results) == list(range(1, 51))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    assert inbox.uidnext == 51
    assert [m.uid for m in await backend.store.list_messages(inbox)] == list(range(1, 51))


async def test_copy_shares_the_blob_and_survives_expunge_of_the_original(
    backend: Backend,
) -> None:
    user = await backend.new_user()
    await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    copied = await backend.store.copy(user.id, inbox, [1], "Archive")
    assert copied.source_uids == (1,)
    assert copied.dest_uids == (1,)
    archive = await backend.store.get_mailbox(user.id, "Archive")
    assert copied.uidvalidity == archive.uidvalidity
    [original] = await backend.store.list_messages(inbox)
    [copy] = await backend.store.list_messages(archive)
    assert copy.object_key == original.object_key
    assert len(await blob_keys(backend.blobs)) == 1

    await backend.store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["\\Deleted"])
    assert await backend.store.expunge(user.id, inbox) == [1]
    assert await backend.store.list_messages(inbox) == []
    assert await read_all(backend.store.read_message(copy)) == MESSAGE


async def test_copy_to_a_missing_mailbox_says_trycreate(backend: Backend) -> None:
    user = await backend.new_user()
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    with pytest.raises(MailboxNotFound) as caught:
        await backend.store.copy(user.id, inbox, [1], "Nowhere")
    assert caught.value.try_create


async def test_move_expunges_the_source(backend: Backend) -> None:
    user = await backend.new_user()
    for _ in range(3):
        await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    moved = await backend.store.move(user.id, inbox, [1, 3, 99], "Trash")
    assert (moved.source_uids, moved.dest_uids) == ((1, 3), (1, 2))
    assert [m.uid for m in await backend.store.list_messages(inbox)] == [2]
    trash = await backend.store.get_mailbox(user.id, "Trash")
    assert [m.uid for m in await backend.store.list_messages(trash)] == [1, 2]


async def test_copy_past_the_quota_copies_nothing_and_move_is_not_refused(
    backend: Backend,
) -> None:
    """A copy counts against the quota as any message does, though it shares the blob;
    a MOVE leaves the account's usage as it was."""
    user = await backend.new_user(quota=3 * len(MESSAGE))
    for _ in range(2):
        await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    with pytest.raises(QuotaExceeded) as caught:
        await backend.store.copy(user.id, inbox, [1, 2], "Archive")
    assert (caught.value.used, caught.value.needed) == (2 * len(MESSAGE), 2 * len(MESSAGE))
    archive = await backend.store.get_mailbox(user.id, "Archive")
    assert await backend.store.list_messages(archive) == []
    assert (await backend.store.get_mailbox(user.id, "Archive")).uidnext == 1
    copied = await backend.store.copy(user.id, inbox, [2], "Archive")
    assert copied.dest_uids == (1,)
    assert await backend.store.usage(user.id) == (3 * len(MESSAGE), 3)
    moved = await backend.store.move(user.id, inbox, [1, 2], "Trash")
    assert moved.source_uids == (1, 2)
    assert await backend.store.usage(user.id) == (3 * len(MESSAGE), 3)


async def test_store_flags_modes_and_modseq(backend: Backend) -> None:
    user = await backend.new_user()
    await backend.store.append(user.id, "INBOX", chunks(MESSAGE), flags=["\\Draft"])
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    [before] = await backend.store.list_messages(inbox)

    changed = (
        await backend.store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["\\seen", "Work"])
    ).changed
    assert changed[0].flags.names() == ("\\Seen", "\\Draft", "Work")
    assert changed[0].modseq > before.modseq
    stored = await backend.store.store_flags(user.id, inbox, [1], StoreMode.REMOVE, ["\\Draft"])
    assert stored.changed[0].flags.names() == ("\\Seen", "Work")
    stored = await backend.store.store_flags(user.id, inbox, [1], StoreMode.REPLACE, ["\\Flagged"])
    changed = stored.changed
    assert changed[0].flags.names() == ("\\Flagged",)
    # No change, no new modseq, nothing reported changed (RFC 7162 section 3.1.11).
    again = await backend.store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["\\Flagged"])
    assert (again.changed, again.modified) == ([], [])
    assert [(m.uid, m.modseq) for m in again.unchanged] == [(1, changed[0].modseq)]
    refreshed = await backend.store.get_mailbox(user.id, "INBOX")
    assert refreshed.highestmodseq == changed[0].modseq


async def test_conditional_store_changes_only_messages_unchanged_since(backend: Backend) -> None:
    """RFC 7162 section 3.1.3: UNCHANGEDSINCE leaves a message changed after it alone."""
    user = await backend.new_user()
    for _ in range(3):
        await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    known = inbox.highestmodseq
    await backend.store.store_flags(user.id, inbox, [2], StoreMode.ADD, ["$Other"])
    result = await backend.store.store_flags(
        user.id, inbox, [1, 2, 3], StoreMode.ADD, ["\\Seen"], unchangedsince=known
    )
    assert [m.uid for m in result.changed] == [1, 3]
    assert [(m.uid, m.flags.names()) for m in result.modified] == [(2, ("$Other",))]
    # UNCHANGEDSINCE 0 always fails: every message has a mod-sequence (Example 8).
    zero = await backend.store.store_flags(
        user.id, inbox, [1], StoreMode.ADD, ["$MDNSent"], unchangedsince=0
    )
    assert ([m.uid for m in zero.modified], zero.changed) == ([1], [])
    after = await backend.store.get_mailbox(user.id, "INBOX")
    assert [m.flags.names() for m in await backend.store.list_messages(after)] == [
        ("\\Seen",),
        ("$Other",),
        ("\\Seen",),
    ]


async def test_every_change_gives_a_new_modseq_and_changed_since_lists_it(
    backend: Backend,
) -> None:
    """RFC 7162 sections 3.1 and 3.2: appends, flag changes, expunges and moves each
    raise HIGHESTMODSEQ; an expunged row keeps the mod-sequence of its expunge."""
    user = await backend.new_user()
    for _ in range(4):
        await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    start = inbox.highestmodseq
    await backend.store.store_flags(user.id, inbox, [2], StoreMode.ADD, ["\\Deleted"])
    flagged = (await backend.store.get_mailbox(user.id, "INBOX")).highestmodseq
    assert flagged > start
    assert [m.uid for m in await backend.store.changed_since(inbox, start)] == [2]
    assert await backend.store.changed_since(inbox, flagged) == []
    assert await backend.store.expunge(user.id, inbox) == [2]
    expunged = (await backend.store.get_mailbox(user.id, "INBOX")).highestmodseq
    assert expunged > flagged
    await backend.store.move(user.id, inbox, [3], "Trash")
    moved = (await backend.store.get_mailbox(user.id, "INBOX")).highestmodseq
    assert moved > expunged
    async with backend.db.read() as conn:
        rows = await conn.execute(
            select(t.messages.c.uid, t.messages.c.modseq)
            .where(t.messages.c.mailbox_id == inbox.id, t.messages.c.deleted_at.is_not(None))
            .order_by(t.messages.c.uid)
        )
        assert [tuple(row) for row in rows] == [(2, expunged), (3, moved)]
    assert await backend.store.changed_since(inbox, flagged) == []


async def test_expunge_removes_only_deleted_and_uid_expunge_only_the_given(
    backend: Backend,
) -> None:
    user = await backend.new_user()
    for _ in range(4):
        await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    await backend.store.store_flags(user.id, inbox, [1, 2, 3], StoreMode.ADD, ["\\Deleted"])
    assert await backend.store.expunge(user.id, inbox, [2, 4]) == [2]
    assert await backend.store.expunge(user.id, inbox) == [1, 3]
    assert [m.uid for m in await backend.store.list_messages(inbox)] == [4]
    status = await backend.store.mailbox_status(user.id, "INBOX")
    assert (status.messages, status.unseen, status.size) == (1, 1, len(MESSAGE))


async def test_mailbox_lifecycle(backend: Backend) -> None:
    user = await backend.new_user()
    store = backend.store
    created = await store.create_mailbox(user.id, "Projects/2026/Q1")
    names = [m.name for m in await store.list_mailboxes(user.id)]
    assert {"Projects", "Projects/2026", "Projects/2026/Q1"} <= set(names)
    with pytest.raises(MailboxExists):
        await store.create_mailbox(user.id, "Projects")
    with pytest.raises(MailboxExists):
        await store.create_mailbox(user.id, "inbox")
    with pytest.raises(InvalidMailboxName):
        await store.create_mailbox(user.id, "a//b")

    await store.rename_mailbox(user.id, "Projects", "Work")
    names = [m.name for m in await store.list_mailboxes(user.id)]
    assert "Work/2026/Q1" in names
    assert not any(name.startswith("Projects") for name in names)
    renamed = await store.get_mailbox(user.id, "Work/2026/Q1")
    assert renamed.uidvalidity == created.uidvalidity

    await store.delete_mailbox(user.id, "Work/2026/Q1")
    again = await store.create_mailbox(user.id, "Work/2026/Q1")
    assert again.uidvalidity != created.uidvalidity
    with pytest.raises(MailboxNotAllowed):
        await store.delete_mailbox(user.id, "INBOX")
    with pytest.raises(MailboxNotFound):
        await store.delete_mailbox(user.id, "Nope")


async def test_rename_inbox_moves_its_messages_and_keeps_inbox(backend: Backend) -> None:
    user = await backend.new_user()
    for _ in range(2):
        await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    await backend.store.rename_mailbox(user.id, "INBOX", "Old")
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    old = await backend.store.get_mailbox(user.id, "Old")
    assert await backend.store.list_messages(inbox) == []
    assert [m.uid for m in await backend.store.list_messages(old)] == [1, 2]
    # INBOX never reuses the UIDs its old messages had.
    result = await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    assert result.uid == 3


async def test_subscriptions_outlive_the_mailbox(backend: Backend) -> None:
    user = await backend.new_user()
    await backend.store.create_mailbox(user.id, "Lists")
    await backend.store.subscribe(user.id, "Lists")
    await backend.store.delete_mailbox(user.id, "Lists")
    assert "Lists" in await backend.store.subscriptions(user.id)
    await backend.store.unsubscribe(user.id, "Lists")
    assert "Lists" not in await backend.store.subscriptions(user.id)


async def test_deliver_to_several_recipients_shares_one_blob(backend: Backend) -> None:
    alice, bob = await backend.new_user(), await backend.new_user()
    await backend.store.create_mailbox(bob.id, "Lists")
    outcomes = await backend.store.deliver(
        [
            Recipient(alice.id, alice.address),
            Recipient(bob.id, bob.address, "Lists"),
            Recipient(bob.id, bob.address, "NoSuchFolder"),
        ],
        chunks(MESSAGE),
    )
    assert all(outcome.result is not None for outcome in outcomes)
    alice_inbox = await backend.store.get_mailbox(alice.id, "INBOX")
    bob_lists = await backend.store.get_mailbox(bob.id, "Lists")
    bob_inbox = await backend.store.get_mailbox(bob.id, "INBOX")
    keys = set()
    for mailbox in (alice_inbox, bob_lists, bob_inbox):
        [info] = await backend.store.list_messages(mailbox)
        keys.add(info.object_key)
        assert await read_all(backend.store.read_message(info)) == MESSAGE
    assert len(keys) == 1
    assert len(await blob_keys(backend.blobs)) == 1


async def test_deliver_skips_only_the_recipient_over_quota(backend: Backend) -> None:
    small, roomy = await backend.new_user(quota=10), await backend.new_user()
    outcomes = await backend.store.deliver(
        [Recipient(small.id, small.address), Recipient(roomy.id, roomy.address)],
        chunks(MESSAGE),
    )
    assert isinstance(outcomes[0].error, QuotaExceeded)
    assert outcomes[1].result is not None
    assert await backend.store.usage(small.id) == (0, 0)
    assert await backend.store.usage(roomy.id) == (len(MESSAGE), 1)
    with pytest.raises(QuotaExceeded):
        await backend.store.append(small.id, "INBOX", chunks(MESSAGE))
    assert await blob_keys(backend.blobs) == [
        (await backend.store.list_messages(await backend.store.get_mailbox(roomy.id, "INBOX")))[
            0
        ].object_key
    ]


async def test_deliver_counts_its_own_copies_against_a_users_quota(backend: Backend) -> None:
    """Two copies for one user (``+detail`` to two folders) with room for one: the
    second is over quota, counted with the first, which the same transaction wrote."""
    user = await backend.new_user(quota=len(MESSAGE) + len(MESSAGE) // 2)
    await backend.store.create_mailbox(user.id, "Lists")
    outcomes = await backend.store.deliver(
        [Recipient(user.id, user.address, "Lists"), Recipient(user.id, user.address)],
        chunks(MESSAGE),
    )
    delivered = [outcome for outcome in outcomes if outcome.result is not None]
    refused = [outcome for outcome in outcomes if outcome.error is not None]
    assert len(delivered) == 1
    assert len(refused) == 1
    assert refused[0].error is not None
    assert refused[0].error.used == len(MESSAGE)
    assert await backend.store.usage(user.id) == (len(MESSAGE), 1)


async def test_usage_follows_the_mail_through_copies_renames_and_deletes(
    backend: Backend,
) -> None:
    """What the quota counts is kept per mailbox: it follows a COPY, a MOVE, an
    EXPUNGE, the rename of INBOX (its messages move to the new mailbox) and the
    DELETE of a mailbox, and DELE of a message another session expunged first
    takes nothing off twice."""
    store = backend.store
    user = await backend.new_user()
    small, large = MESSAGE, MESSAGE + b"x" * 1000
    for data in (small, large, small):
        await store.append(user.id, "INBOX", chunks(data))
    assert await store.usage(user.id) == (2 * len(small) + len(large), 3)
    await store.create_mailbox(user.id, "Keep")
    inbox = await store.get_mailbox(user.id, "INBOX")
    await store.copy(user.id, inbox, [1, 2], "Keep")
    assert await store.usage(user.id) == (3 * len(small) + 2 * len(large), 5)
    await store.move(user.id, inbox, [3], "Keep")
    assert await store.usage(user.id) == (3 * len(small) + 2 * len(large), 5)
    await store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["\\Deleted"])
    assert await store.expunge(user.id, inbox) == [1]
    await store.delete_messages(user.id, inbox, [1])  # gone already: nothing more
    assert await store.usage(user.id) == (2 * len(small) + 2 * len(large), 4)
    await store.rename_mailbox(user.id, "INBOX", "Old")  # takes the large one (UID 2)
    await store.append(user.id, "INBOX", chunks(small))
    assert await store.usage(user.id) == (3 * len(small) + 2 * len(large), 5)
    await store.delete_mailbox(user.id, "Old")
    assert await store.usage(user.id) == (3 * len(small) + len(large), 4)
    await store.delete_mailbox(user.id, "Keep")
    assert await store.usage(user.id) == (len(small), 1)


async def test_failure_between_blob_write_and_commit_leaves_nothing_visible(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await backend.new_user()

    async def broken(*args: Any) -> None:
        raise ConnectionError("injected: database lost after the blob was written")

    monkeypatch.setattr(MailStore, "_insert_object_key", broken)
    with pytest.raises(ConnectionError):
        await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    assert await backend.store.list_messages(inbox) == []
    assert inbox.uidnext == 1
    assert await blob_keys(backend.blobs) == []


async def test_failure_inside_the_transaction_leaves_no_half_message(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = await backend.new_user(), await backend.new_user()
    real_insert = MailStore._insert_message
    calls = 0

    async def second_insert_fails(self: MailStore, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("injected: connection lost in the middle of the transaction")
        return await real_insert(self, *args)

    monkeypatch.setattr(MailStore, "_insert_message", second_insert_fails)
    with pytest.raises(ConnectionError):
        await backend.store.deliver(
            [Recipient(alice.id, alice.address), Recipient(bob.id, bob.address)],
            chunks(MESSAGE),
        )
    for user in (alice, bob):
        inbox = await backend.store.get_mailbox(user.id, "INBOX")
        assert await backend.store.list_messages(inbox) == []
        assert inbox.uidnext == 1
    assert await blob_keys(backend.blobs) == []


async def test_a_failing_source_leaves_nothing_behind(backend: Backend) -> None:
    user = await backend.new_user()

    async def dropped_connection() -> AsyncIterator[bytes]:
        yield MESSAGE[:20]
        raise ConnectionResetError("client went away mid-literal")

    with pytest.raises(ConnectionResetError):
        await backend.store.append(user.id, "INBOX", dropped_connection())
    assert await blob_keys(backend.blobs) == []


async def test_append_streams_in_chunks(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message goes to the blob store chunk by chunk, never joined in memory."""
    user = await backend.new_user()
    seen: list[int] = []
    real_put = type(backend.blobs).put

    async def recording_put(self: BlobStore, key: str, source: AsyncIterator[bytes]) -> Any:
        async def spy() -> AsyncIterator[bytes]:
            async for chunk in source:
                seen.append(len(chunk))
                yield chunk

        return await real_put(self, key, spy())

    monkeypatch.setattr(type(backend.blobs), "put", recording_put)
    body = MESSAGE + b"x" * (3 * 1024 * 1024) + b"\r\n"
    await backend.store.append(user.id, "INBOX", chunks(body, 65536))
    assert len(seen) == -(-len(body) // 65536)
    assert max(seen) == 65536
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    [info] = await backend.store.list_messages(inbox)
    data = await read_all(backend.store.read_message(info))
    assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest()


async def test_changes_are_published(backend: Backend) -> None:
    user = await backend.new_user()
    async with backend.store.bus.subscription(user.id) as subscription:
        result = await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
        inbox = await backend.store.get_mailbox(user.id, "INBOX")
        await backend.store.store_flags(user.id, inbox, [result.uid], StoreMode.ADD, ["\\Deleted"])
        await backend.store.expunge(user.id, inbox)
        kinds = [event.kind for event in subscription.drain()]
    assert kinds == [
        ChangeKind.MESSAGES_ADDED,
        ChangeKind.FLAGS_CHANGED,
        ChangeKind.MESSAGES_EXPUNGED,
    ]


def test_flags_parse_system_flags_case_insensitively() -> None:
    flags = Flags.parse(["\\SEEN", "\\Recent", "\\Unknown", "Keyword", "$Junk"])
    assert flags.names() == ("\\Seen", "$Junk", "Keyword")


async def test_a_new_message_is_recent_in_exactly_one_session(backend: Backend) -> None:
    user = await backend.new_user()
    for _ in range(2):
        await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    assert await backend.store.claim_recent(inbox, readonly=True) == [1, 2]
    assert await backend.store.claim_recent(inbox) == [1, 2]
    assert await backend.store.claim_recent(inbox) == []
    await backend.store.append(user.id, "INBOX", chunks(MESSAGE))
    claims = await asyncio.gather(*(backend.store.claim_recent(inbox) for _ in range(5)))
    assert sorted(claims) == [[], [], [], [], [3]]


async def test_a_new_mailbox_never_takes_a_deleted_ones_id(backend: Backend) -> None:
    """The deleted mailbox's messages keep its id until the GC purges them; a new
    mailbox with that id would collide with their UIDs (SQLite reuses rowids)."""
    user = await backend.new_user()
    gone = await backend.store.create_mailbox(user.id, "Gone")
    await backend.store.append(user.id, "Gone", chunks(MESSAGE))
    await backend.store.delete_mailbox(user.id, "Gone")

    new = await backend.store.create_mailbox(user.id, "New")
    result = await backend.store.append(user.id, "New", chunks(MESSAGE))

    assert new.id != gone.id
    assert (result.mailbox_id, result.uid) == (new.id, 1)


def _limited(backend: Backend, per_mailbox: int, per_message: int) -> MailStore:
    """A mailstore on the backend's database and blobs with small keyword limits."""
    limits = KeywordLimits(per_mailbox=per_mailbox, per_message=per_message)
    return MailStore(backend.db, backend.blobs, backend.store.bus, limits)


async def test_concurrent_stores_cannot_pass_the_mailbox_keyword_limit(backend: Backend) -> None:
    store = _limited(backend, per_mailbox=10, per_message=10)
    user = await backend.new_user()
    for _ in range(4):
        await store.append(user.id, "INBOX", chunks(MESSAGE))
    inbox = await store.get_mailbox(user.id, "INBOX")
    # Four sessions at once, four new keywords each: only two sets fit in ten.
    results = await asyncio.gather(
        *(
            store.store_flags(
                user.id, inbox, [uid], StoreMode.ADD, [f"k{uid}_{i}" for i in range(4)]
            )
            for uid in (1, 2, 3, 4)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, KeywordLimitExceeded)]
    assert len(refused) == 2, results
    in_use = {k for info in await store.list_messages(inbox) for k in info.flags.keywords}
    assert len(in_use) == 8
    assert set((await store.get_mailbox(user.id, "INBOX")).keywords) == in_use


async def test_a_store_past_a_keyword_limit_changes_nothing(backend: Backend) -> None:
    store = _limited(backend, per_mailbox=4, per_message=3)
    user = await backend.new_user()
    await store.append(user.id, "INBOX", chunks(MESSAGE), flags=["\\Seen", "a", "b"])
    inbox = await store.get_mailbox(user.id, "INBOX")
    with pytest.raises(KeywordLimitExceeded, match="at most 3 keywords"):
        await store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["c", "d"])
    with pytest.raises(KeywordLimitExceeded, match="at most 3 keywords"):
        await store.store_flags(user.id, inbox, [1], StoreMode.REPLACE, ["c", "d", "e", "f"])
    with pytest.raises(KeywordLimitExceeded, match="at most 64 characters"):
        await store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["x" * 65])
    with pytest.raises(InvalidValue):
        await store.store_flags(user.id, inbox, [1], StoreMode.ADD, ["bad(name"])
    await store.append(user.id, "INBOX", chunks(MESSAGE), flags=["c", "d"])
    with pytest.raises(KeywordLimitExceeded, match="at most 4 keywords"):
        await store.store_flags(user.id, inbox, [1, 2], StoreMode.ADD, ["e"])
    with pytest.raises(KeywordLimitExceeded, match="at most 4 keywords"):
        await store.append(user.id, "INBOX", chunks(MESSAGE), flags=["e"])
    after = await store.get_mailbox(user.id, "INBOX")
    assert after.keywords == ("a", "b", "c", "d")
    assert after.highestmodseq == (await backend.store.get_mailbox(user.id, "INBOX")).highestmodseq
    assert [m.flags.names() for m in await store.list_messages(after)] == [
        ("\\Seen", "a", "b"),
        ("c", "d"),
    ]
    assert not store.may_create_keywords(after)
    # Removing a keyword everywhere makes room for a new one.
    await store.store_flags(user.id, inbox, [1], StoreMode.REMOVE, ["a"])
    await store.store_flags(user.id, inbox, [2], StoreMode.ADD, ["e"])
    assert (await store.get_mailbox(user.id, "INBOX")).keywords == ("b", "c", "d", "e")


async def test_copy_move_and_rename_carry_keywords_within_the_limit(backend: Backend) -> None:
    store = _limited(backend, per_mailbox=3, per_message=3)
    user = await backend.new_user()
    await store.append(user.id, "INBOX", chunks(MESSAGE), flags=["a", "b"])
    inbox = await store.get_mailbox(user.id, "INBOX")
    await store.copy(user.id, inbox, [1], "Archive")
    assert (await store.get_mailbox(user.id, "Archive")).keywords == ("a", "b")
    await store.append(user.id, "Trash", chunks(MESSAGE), flags=["x", "y"])
    with pytest.raises(KeywordLimitExceeded):
        await store.move(user.id, inbox, [1], "Trash")
    trash = await store.get_mailbox(user.id, "Trash")
    assert [m.uid for m in await store.list_messages(trash)] == [1]
    assert [m.uid for m in await store.list_messages(inbox)] == [1]
    assert trash.keywords == ("x", "y")
    await store.rename_mailbox(user.id, "INBOX", "Old")
    assert (await store.get_mailbox(user.id, "Old")).keywords == ("a", "b")
    assert (await store.get_mailbox(user.id, "INBOX")).keywords == ("a", "b")


async def test_ingest_deletes_the_blob_unless_the_message_was_committed(
    backend: Backend,
) -> None:
    user = await backend.new_user()
    async with backend.store.ingest(chunks(MESSAGE)) as undecided:
        assert await blob_keys(backend.blobs) == [undecided.stored.key]
    assert await blob_keys(backend.blobs) == []

    with pytest.raises(InvalidValue):
        async with backend.store.ingest(chunks(MESSAGE)):
            raise InvalidValue("refused by a check of the caller")
    assert await blob_keys(backend.blobs) == []

    async with backend.store.ingest(chunks(MESSAGE)) as ingest:
        result = await ingest.append(user.id, "INBOX", flags=["\\Seen"])
    (info,) = await backend.store.fetch_infos(
        await backend.store.get_mailbox(user.id, "INBOX"), [result.uid]
    )
    assert await blob_keys(backend.blobs) == [info.object_key]
    assert info.flags.names() == ("\\Seen",)


async def test_ingest_a_failed_append_leaves_nothing_and_cannot_be_committed_twice(
    backend: Backend,
) -> None:
    user = await backend.new_user()
    async with backend.store.ingest(chunks(MESSAGE)) as ingest:
        with pytest.raises(MailboxNotFound):
            await ingest.append(user.id, "Missing")
        with pytest.raises(RuntimeError, match="already committed"):
            await ingest.deliver([Recipient(user.id, user.address)])
    assert await blob_keys(backend.blobs) == []


async def test_append_stored_commits_several_messages_with_consecutive_uids(
    backend: Backend,
) -> None:
    """MULTIAPPEND (RFC 3502): one transaction, UIDs in the messages' order."""
    user = await backend.new_user()
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    messages = [
        NewMessage(await backend.store.store_message(chunks(MESSAGE)), ("\\Seen",)),
        NewMessage(await backend.store.store_message(chunks(MESSAGE + b"2")), ("$Work",), when),
        NewMessage(await backend.store.store_message(chunks(MESSAGE + b"33"))),
    ]
    results = await backend.store.append_stored(user.id, "INBOX", messages)
    assert [result.uid for result in results] == [1, 2, 3]
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    infos = await backend.store.fetch_infos(inbox, [1, 2, 3])
    assert [info.object_key for info in infos] == [m.stored.key for m in messages]
    assert [info.flags.names() for info in infos] == [("\\Seen",), ("$Work",), ()]
    assert infos[1].internaldate == when
    assert [info.size for info in infos] == [len(MESSAGE), len(MESSAGE) + 1, len(MESSAGE) + 2]
    assert "$Work" in inbox.keywords


async def test_append_stored_over_quota_commits_none_and_deletes_every_blob(
    backend: Backend,
) -> None:
    user = await backend.new_user(quota=2 * len(MESSAGE))
    messages = [NewMessage(await backend.store.store_message(chunks(MESSAGE))) for _ in range(3)]
    with pytest.raises(QuotaExceeded):
        await backend.store.append_stored(user.id, "INBOX", messages)
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    assert await backend.store.fetch_infos(inbox, [1, 2, 3]) == []
    assert await blob_keys(backend.blobs) == []
    results = await backend.store.append_stored(
        user.id, "INBOX", [NewMessage(await backend.store.store_message(chunks(MESSAGE)))]
    )
    assert [result.uid for result in results] == [1]


async def test_ingest_prepend_replaces_the_blob_and_deletes_the_original(
    backend: Backend,
) -> None:
    user = await backend.new_user()
    async with backend.store.ingest(chunks(MESSAGE)) as ingest:
        original = ingest.stored.key
        await ingest.prepend(b"X-Tag: yes\r\n")
        assert ingest.size == len(MESSAGE) + len(b"X-Tag: yes\r\n")
        (outcome,) = await ingest.deliver([Recipient(user.id, user.address)])
    assert outcome.result is not None
    inbox = await backend.store.get_mailbox(user.id, "INBOX")
    (info,) = await backend.store.list_messages(inbox)
    assert await read_all(backend.store.read_message(info)) == b"X-Tag: yes\r\n" + MESSAGE
    assert await blob_keys(backend.blobs) == [info.object_key]
    assert info.object_key != original
