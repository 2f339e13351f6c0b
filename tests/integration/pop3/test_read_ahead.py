"""RETR reads the next messages ahead on a blob store whose reads wait a round
trip (S3), and that changes nothing a client sees: every message arrives whole,
in any order, and a message that cannot be read still gets ``-ERR``."""

from __future__ import annotations

import asyncio
import poplib

import pytest

from lightmail.accounts.service import User
from lightmail.storage.blobs.base import READ_CHUNK
from tests.integration.pop3.conftest import Pop3Factory, Pop3Target
from tests.integration.pop3.test_pop3 import deliver, login
from tests.support.metrics import Changes


def numbered(count: int) -> list[bytes]:
    return [f"Subject: {n}\r\n\r\nbody of message {n}\r\n".encode() for n in range(1, count + 1)]


async def keys_of(pop3: Pop3Target, user: User, count: int) -> list[str]:
    store = pop3.backend.store
    inbox = await store.get_mailbox(user.id, "INBOX")
    return [info.object_key for info in await store.fetch_infos(inbox, range(1, count + 1))]


def body(lines: list[bytes]) -> bytes:
    return b"\r\n".join(lines) + b"\r\n"  # poplib undoes the dot-stuffing


async def test_messages_retrieved_out_of_order_and_after_dele_arrive_whole(
    pop3_factory: Pop3Factory,
) -> None:
    pop3 = await pop3_factory(allow_delete="true")
    user = await pop3.new_user()
    messages = numbered(9)
    for message in messages:
        await deliver(pop3, user, message)

    def conversation() -> None:
        client = login(pop3, user)
        for number in (1, 2):
            assert body(client.retr(number)[1]) == messages[number - 1]
        client.dele(3)
        for number in (4, 8, 5, 9, 6, 7):  # skips about, past what was read ahead
            assert body(client.retr(number)[1]) == messages[number - 1]
        assert client.top(2, 0)[1] == [b"Subject: 2", b""]
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR no message 3"):
            client.retr(3)
        client.rset()
        assert body(client.retr(3)[1]) == messages[2]  # RSET brings the DELEd one back
        client.quit()

    await asyncio.to_thread(conversation)


async def test_a_message_read_ahead_whose_blob_is_gone_gets_err_when_asked_for(
    pop3: Pop3Target,
) -> None:
    """The read ahead of message 3 fails in the background; RETR 3 gets the
    same ``-ERR`` as without reading ahead, and the session goes on."""
    user = await pop3.new_user()
    messages = numbered(5)
    for message in messages:
        await deliver(pop3, user, message)
    keys = await keys_of(pop3, user, 5)
    await pop3.backend.blobs.delete_many([keys[2]])

    def conversation() -> None:
        client = login(pop3, user)
        for number in (1, 2):
            assert body(client.retr(number)[1]) == messages[number - 1]
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR "):
            client.retr(3)
        for number in (4, 5):
            assert body(client.retr(number)[1]) == messages[number - 1]
        client.quit()

    await asyncio.to_thread(conversation)


async def test_retr_reads_the_next_small_messages_ahead_on_s3_only(pop3: Pop3Target) -> None:
    """After RETR 1 the blob store has been asked for message 1 and for the next
    four small ones (S3's ``read_ahead``), not for the large one among them; on
    the filesystem only for message 1. RETR 2 then asks for nothing new but the
    one more message ahead."""
    user = await pop3.new_user()
    large = b"Subject: large\r\n\r\n" + (b"x" * 78 + b"\r\n") * (READ_CHUNK // 80 + 10)
    messages = [*numbered(2), large, *numbered(5)[2:]]
    for message in messages:
        await deliver(pop3, user, message)
    depth = pop3.backend.blobs.read_ahead
    backend = "s3" if pop3.backend.name == "mariadb" else "filesystem"
    assert depth == (4 if backend == "s3" else 0)

    def gets(changes: Changes) -> float:
        return changes("lightmail_blob_seconds_count", backend=backend, operation="get")

    client = await asyncio.to_thread(login, pop3, user)
    try:
        before = Changes()
        assert body((await asyncio.to_thread(client.retr, 1))[1]) == messages[0]
        await asyncio.sleep(0.5)  # the reads ahead finish
        # message 1, then 2, 4, 5 and 6 ahead (3 is large): five, or one without.
        assert gets(before) == (5 if depth else 1)
        before = Changes()
        assert body((await asyncio.to_thread(client.retr, 2))[1]) == messages[1]
        await asyncio.sleep(0.5)
        assert gets(before) == (0 if depth else 1)  # 2 was read; nothing is left to add
        for number in (3, 4, 5, 6):
            assert body((await asyncio.to_thread(client.retr, number))[1]) == messages[number - 1]
        await asyncio.to_thread(client.quit)
    finally:
        client.close()
