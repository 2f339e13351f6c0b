"""LMTP delivery over TCP and the unix socket, on both storage backends."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lightmail.accounts.service import User
from lightmail.errors import TemporaryFailure
from lightmail.mailstore.store import MailStore
from tests.integration.lmtp.conftest import LmtpTarget
from tests.support.trickle import trickle

BODY = (
    b"From: Sender <sender@example.net>\r\n"
    b"To: someone@example.org\r\n"
    b"Subject: LMTP test\r\n"
    b"\r\n"
    b"First line.\r\n"
    b".A line that starts with a dot.\r\n"
    b"..Two dots.\r\n"
    b"8-bit: caf\xc3\xa9\r\n"
)


def stuffed(message: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2) and the end-of-data line."""
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + (
        b".\r\n"
    )


async def stored(target: LmtpTarget, user: User, mailbox: str = "INBOX") -> list[bytes]:
    store = target.backend.store
    box = await store.get_mailbox(user.id, mailbox)
    messages = []
    for info in await store.list_messages(box):
        messages.append(b"".join([chunk async for chunk in store.read_message(info)]))
    return messages


def without_trace(message: bytes) -> bytes:
    """The message as the MTA sent it: drop our Return-Path and Received headers."""
    assert message.startswith(b"Return-Path: <")
    _, _, rest = message.partition(b"\r\n")
    assert rest.startswith(b"Received: from ")
    received_end = rest.index(b"\r\n", rest.index(b"LMTP id")) + 2
    received_end = rest.index(b"\r\n", received_end) + 2  # the folded date line
    return rest[received_end:]


async def test_lhlo_capabilities_and_helo_refused(lmtp: LmtpTarget) -> None:
    client = await lmtp.connect(lhlo=False)
    code, lines = await client.command("EHLO mta.example.org")
    assert (code, lines) == (500, ["5.5.1 This is LMTP: use LHLO (RFC 2033 section 4.1)"])
    code, lines = await client.command("MAIL FROM:<a@example.net>")
    assert code == 503
    code, lines = await client.command("LHLO mta.example.org")
    assert code == 250
    assert lines == [
        "mx.test.example",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        f"SIZE {64 * 1024 * 1024}",
    ]
    assert await client.command("VRFY someone") == (
        252,
        ["2.5.0 Cannot verify the user, but will accept the message"],
    )
    assert (await client.command("NOOP"))[0] == 250
    assert await client.command("QUIT") == (221, ["2.0.0 Bye"])
    await client.close()


@pytest.mark.parametrize("unix", [False, True])
async def test_single_recipient_with_smtplib_shape(lmtp: LmtpTarget, unix: bool) -> None:
    user = await lmtp.new_user()
    client = await lmtp.connect(unix=unix)
    assert (await client.command("MAIL FROM:<sender@example.net> BODY=8BITMIME"))[0] == 250
    assert await client.command(f"RCPT TO:<{user.address}>") == (250, ["2.1.5 Recipient OK"])
    assert (await client.command("DATA"))[0] == 354
    await client.send(stuffed(BODY))
    assert await client.reply() == (250, ["2.1.5 Delivered"])
    assert (await client.command("QUIT"))[0] == 221
    await client.close()
    [message] = await stored(lmtp, user)
    assert without_trace(message) == BODY
    assert message.startswith(b"Return-Path: <sender@example.net>\r\n")


async def test_python_smtplib_lmtp_client(lmtp: LmtpTarget) -> None:
    user = await lmtp.new_user()

    def send() -> None:
        with smtplib.LMTP(lmtp.host, lmtp.port) as client:
            client.sendmail("sender@example.net", [user.address], BODY)

    await asyncio.to_thread(send)
    [message] = await stored(lmtp, user)
    assert without_trace(message) == BODY


async def test_mixed_recipients_get_their_own_replies_in_order(lmtp: LmtpTarget) -> None:
    fine, full, other = await lmtp.new_user(), await lmtp.new_user(quota=100), await lmtp.new_user()
    client = await lmtp.connect()
    await client.command("MAIL FROM:<sender@example.net>")
    assert (await client.command(f"RCPT TO:<{fine.address}>"))[0] == 250
    unknown = f"nobody@{lmtp.backend.domain}"
    assert await client.command(f"RCPT TO:<{unknown}>") == (550, ["5.1.1 No such user here"])
    # Over quota only once the real size is known: accepted at RCPT (no SIZE given).
    assert (await client.command(f"RCPT TO:<{full.address}>"))[0] == 250
    assert (await client.command(f"RCPT TO:<{other.address}>"))[0] == 250
    assert (await client.command("DATA"))[0] == 354
    await client.send(stuffed(BODY))
    replies = [await client.reply() for _ in range(3)]
    assert replies == [
        (250, ["2.1.5 Delivered"]),
        (552, ["5.2.2 Mailbox full"]),
        (250, ["2.1.5 Delivered"]),
    ]
    await client.close()
    assert len(await stored(lmtp, fine)) == 1
    assert await stored(lmtp, full) == []
    [one], [two] = await stored(lmtp, fine), await stored(lmtp, other)
    assert one == two  # one blob, the same bytes for everyone
    infos = [
        (
            await lmtp.backend.store.list_messages(
                await lmtp.backend.store.get_mailbox(u.id, "INBOX")
            )
        )[0]
        for u in (fine, other)
    ]
    assert infos[0].object_key == infos[1].object_key


async def test_quota_is_checked_at_rcpt_with_the_declared_size(lmtp: LmtpTarget) -> None:
    full = await lmtp.new_user(quota=100)
    client = await lmtp.connect()
    await client.command("MAIL FROM:<sender@example.net> SIZE=5000")
    assert await client.command(f"RCPT TO:<{full.address}>") == (552, ["5.2.2 Mailbox full"])
    assert (await client.command("DATA"))[0] == 503
    await client.close()


async def test_disabled_user_and_aliases(lmtp: LmtpTarget) -> None:
    alice, bob = await lmtp.new_user(), await lmtp.new_user()
    accounts = lmtp.backend.accounts
    await accounts.set_enabled(bob.address, False)
    team = f"team@{lmtp.backend.domain}"
    await accounts.add_alias(team, [alice.address, bob.address])
    client = await lmtp.connect()
    await client.command("MAIL FROM:<>")
    assert await client.command(f"RCPT TO:<{bob.address}>") == (550, ["5.2.1 Mailbox disabled"])
    assert (await client.command(f"RCPT TO:<{team}>"))[0] == 250
    assert (await client.command(f"RCPT TO:<{alice.address}>"))[0] == 250
    await client.command("DATA")
    await client.send(stuffed(BODY))
    assert [await client.reply() for _ in range(2)] == [(250, ["2.1.5 Delivered"])] * 2
    await client.close()
    # Reached through the alias and directly: one copy, not two.
    assert len(await stored(lmtp, alice)) == 1
    assert (await stored(lmtp, alice))[0].startswith(b"Return-Path: <>\r\n")


async def test_pipelining_rset_and_transaction_order(lmtp: LmtpTarget) -> None:
    user = await lmtp.new_user()
    client = await lmtp.connect()
    await client.send(
        b"MAIL FROM:<a@example.net>\r\nRSET\r\nRCPT TO:<" + user.address.encode() + b">\r\n"
        b"MAIL FROM:<b@example.net>\r\nRCPT TO:<" + user.address.encode() + b">\r\nDATA\r\n"
    )
    codes = [(await client.reply())[0] for _ in range(6)]
    assert codes == [250, 250, 503, 250, 250, 354]
    await client.send(stuffed(BODY) + b"QUIT\r\n")
    assert (await client.reply())[0] == 250
    assert (await client.reply())[0] == 221
    await client.close()
    [message] = await stored(lmtp, user)
    assert message.startswith(b"Return-Path: <b@example.net>")


async def test_too_many_recipients(lmtp_factory: Any) -> None:
    target = await lmtp_factory(max_recipients="2")
    user = await target.new_user()
    client = await target.connect()
    await client.command("MAIL FROM:<a@example.net>")
    for _ in range(2):
        assert (await client.command(f"RCPT TO:<{user.address}>"))[0] == 250
    assert await client.command(f"RCPT TO:<{user.address}>") == (452, ["4.5.3 Too many recipients"])
    await client.close()


async def test_oversized_message_is_refused_and_the_session_stays_in_step(
    lmtp_factory: Any,
) -> None:
    target = await lmtp_factory(max_message_size="2K")
    user = await target.new_user()
    client = await target.connect()
    await client.command("MAIL FROM:<a@example.net> SIZE=999999")
    await client.command("RSET")
    assert (await client.command("MAIL FROM:<a@example.net>"))[0] == 250
    await client.command(f"RCPT TO:<{user.address}>")
    await client.command("DATA")
    await client.send(stuffed(BODY + b"x" * 5000 + b"\r\n"))
    assert await client.reply() == (552, ["5.3.4 Message too big"])
    assert (await client.command("NOOP"))[0] == 250
    await client.close()
    assert await stored(target, user) == []
    assert [k async for page in target.backend.blobs.list("eml/") for k in page] == []


async def test_bare_lf_lines_are_stored_with_crlf(lmtp: LmtpTarget) -> None:
    user = await lmtp.new_user()
    client = await lmtp.connect()
    await client.command("MAIL FROM:<a@example.net>")
    await client.command(f"RCPT TO:<{user.address}>")
    await client.command("DATA")
    await client.send(b"Subject: bare\nLF only\r\n.\r\n")
    assert (await client.reply())[0] == 250
    await client.close()
    [message] = await stored(lmtp, user)
    assert without_trace(message) == b"Subject: bare\r\nLF only\r\n"


@pytest.mark.parametrize("failing", ["blobs", "database"])
async def test_temporary_trouble_gives_451_and_a_retry_delivers_once(
    lmtp: LmtpTarget, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    user = await lmtp.new_user()

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise TemporaryFailure(f"injected: the {failing} are down")

    with monkeypatch.context() as patch:
        if failing == "blobs":
            patch.setattr(type(lmtp.backend.blobs), "put", unavailable)
        else:
            patch.setattr(MailStore, "_insert_object_key", unavailable)
        client = await lmtp.connect()
        await client.command("MAIL FROM:<a@example.net>")
        await client.command(f"RCPT TO:<{user.address}>")
        await client.command("DATA")
        await client.send(stuffed(BODY))
        assert await client.reply() == (451, ["4.3.0 Temporary failure, try again later"])
        assert (await client.command("NOOP"))[0] == 250
        await client.close()
    assert await stored(lmtp, user) == []
    client = await lmtp.connect()
    await client.command("MAIL FROM:<a@example.net>")
    await client.command(f"RCPT TO:<{user.address}>")
    await client.command("DATA")
    await client.send(stuffed(BODY))
    assert (await client.reply())[0] == 250
    await client.close()
    assert len(await stored(lmtp, user)) == 1


async def test_connection_lost_inside_data_delivers_nothing(lmtp: LmtpTarget) -> None:
    user = await lmtp.new_user()
    client = await lmtp.connect()
    await client.command("MAIL FROM:<a@example.net>")
    await client.command(f"RCPT TO:<{user.address}>")
    await client.command("DATA")
    await client.send(BODY[:40])
    await client.close()
    await asyncio.sleep(0.2)
    assert await stored(lmtp, user) == []


def read_until(sock: socket.socket, end: bytes) -> bytes:
    received = b""
    while not received.endswith(end):
        chunk = sock.recv(4096)
        assert chunk, f"closed after {received!r}"
        received += chunk
    return received


async def test_a_command_trickled_a_byte_at_a_time_gets_421_at_the_timeout(
    lmtp_factory: Any,
) -> None:
    """Slowloris: a byte every 0.3 s is never 1 s of silence; the timeout is per command."""
    target = await lmtp_factory(timeout="1s")

    def conversation() -> None:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            read_until(raw, b"\r\n")  # the greeting
            slow = trickle(raw, b"LHLO mta.example.org\r\n", every=0.3, budget=5)
        assert slow.closed_after is not None, "the slow client is still connected"
        assert 0.9 < slow.closed_after < 2.5
        assert slow.received == b"421 4.4.2 Timeout, closing connection\r\n"

    await asyncio.to_thread(conversation)


async def test_data_trickled_a_byte_at_a_time_gets_421_at_the_data_timeout(
    lmtp_factory: Any,
) -> None:
    target = await lmtp_factory(timeout="5s", data_timeout="1s")
    user = await target.new_user()

    def conversation() -> None:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            read_until(raw, b"\r\n")
            raw.sendall(
                b"LHLO mta.example.org\r\nMAIL FROM:<a@example.net>\r\n"
                + f"RCPT TO:<{user.address}>\r\nDATA\r\n".encode()
            )
            assert b"\r\n354 " in read_until(raw, b"<CRLF>.<CRLF>\r\n")
            slow = trickle(raw, stuffed(BODY), every=0.3, budget=5)
        assert slow.closed_after is not None, "the slow client is still connected"
        assert 0.9 < slow.closed_after < 2.5
        assert slow.received == b"421 4.4.2 Timeout, closing connection\r\n"

    await asyncio.to_thread(conversation)
    assert await stored(target, user) == []  # the MTA keeps the message and retries


async def test_a_delivery_wakes_a_subscriber(lmtp: LmtpTarget) -> None:
    user = await lmtp.new_user()
    async with lmtp.backend.store.bus.subscription(user.id) as subscription:
        arrived = asyncio.Event()
        subscription.waker = arrived.set
        client = await lmtp.connect()
        await client.command("MAIL FROM:<a@example.net>")
        await client.command(f"RCPT TO:<{user.address}>")
        await client.command("DATA")
        await client.send(stuffed(BODY))
        await client.reply()
        await client.close()
        await asyncio.wait_for(arrived.wait(), 1)
    assert [event.user_id for event in subscription.drain()] == [user.id]


@pytest.mark.parametrize("backend_name", ["sqlite"])  # the size, not the backend, is tested
async def test_fifty_megabyte_message(lmtp: LmtpTarget) -> None:
    user = await lmtp.new_user()
    line = b"0123456789" * 9 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (50 * 1024 * 1024 // len(line))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    client = await lmtp.connect()
    await client.command("MAIL FROM:<a@example.net>")
    await client.command(f"RCPT TO:<{user.address}>")
    await client.command("DATA")
    async for chunk in chunks():
        await client.send(chunk)
    await client.send(b".\r\n")
    assert (await client.reply())[0] == 250
    await client.close()
    [message] = await stored(lmtp, user)
    assert without_trace(message) == body


@pytest.mark.parametrize("detail_mailbox", ["true", "false"])
async def test_plus_detail_delivery(lmtp_factory: Any, detail_mailbox: str) -> None:
    target = await lmtp_factory(detail_mailbox=detail_mailbox)
    user = await target.new_user()
    await target.backend.store.create_mailbox(user.id, "lists")
    local, domain = user.address.split("@")
    client = await target.connect()
    await client.command("MAIL FROM:<a@example.net>")
    for detail in ("lists", "nosuchfolder"):
        assert (await client.command(f"RCPT TO:<{local}+{detail}@{domain}>"))[0] == 250
    await client.command("DATA")
    await client.send(stuffed(BODY))
    assert [(await client.reply())[0] for _ in range(2)] == [250, 250]
    await client.close()
    in_lists = len(await stored(target, user, "lists"))
    in_inbox = len(await stored(target, user))
    assert (in_lists, in_inbox) == ((1, 1) if detail_mailbox == "true" else (0, 1))
