"""POP3 through Python's poplib and raw sockets, on both storage backends."""

from __future__ import annotations

import asyncio
import base64
import poplib
import socket
import time
from collections.abc import AsyncIterator

import pytest

from lightmail.accounts.service import User
from lightmail.mailstore.store import Recipient
from tests.integration.imap.conftest import ImapFactory
from tests.integration.pop3.conftest import Pop3Factory, Pop3Target
from tests.support.trickle import trickle

MESSAGES = [
    b"Subject: one\r\nFrom: a@example.net\r\n\r\nfirst\r\n",
    b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
    b"Subject: three\r\n\r\nline 1\r\nline 2\r\nline 3\r\nline 4\r\n",
]


async def deliver(target: Pop3Target, user: User, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    await target.backend.store.deliver([Recipient(user.id, user.address)], source())


def login(target: Pop3Target, user: User) -> poplib.POP3:
    client = poplib.POP3(target.host, target.port, timeout=10)
    client.user(user.address)
    client.pass_("secret")
    return client


async def test_every_command(pop3: Pop3Target) -> None:
    user = await pop3.new_user()
    for message in MESSAGES:
        await deliver(pop3, user, message)

    def conversation() -> None:
        client = poplib.POP3(pop3.host, pop3.port, timeout=10)
        capabilities = client.capa()
        for name in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES", "PIPELINING"):
            assert name in capabilities
        assert capabilities["SASL"] == ["PLAIN"]
        assert client.user("whoever@nowhere.example").startswith(b"+OK")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.pass_("wrong")
        client.user(user.address)
        assert client.pass_("secret").startswith(b"+OK")
        sizes = [len(m) for m in MESSAGES]
        assert client.stat() == (3, sum(sizes))
        _, listing, _ = client.list()
        assert listing == [f"{n} {size}".encode() for n, size in enumerate(sizes, 1)]
        assert client.list(2) == f"+OK 2 {sizes[1]}".encode()  # type: ignore[comparison-overlap]
        for number, message in enumerate(MESSAGES, 1):
            _, lines, octets = client.retr(number)
            assert b"\r\n".join(lines) + b"\r\n" == message
            assert octets == len(message)  # poplib counts the octets after un-stuffing
        _, lines, _ = client.top(3, 0)
        assert lines == [b"Subject: three", b""]
        _, lines, _ = client.top(3, 2)
        assert lines == [b"Subject: three", b"", b"line 1", b"line 2"]
        _, uidls, _ = client.uidl()
        assert len(uidls) == 3
        assert client.uidl(1) == b"+OK " + uidls[0]
        assert client.noop().startswith(b"+OK")
        with pytest.raises(poplib.error_proto, match=r"\[SYS/PERM\] .*read-only"):
            client.dele(1)
        assert client.rset().startswith(b"+OK")
        with pytest.raises(poplib.error_proto, match="no message 9"):
            client.retr(9)
        assert client.quit().startswith(b"+OK")

    await asyncio.to_thread(conversation)


async def test_uidl_is_stable_and_the_maildrop_fixed_for_the_session(pop3: Pop3Target) -> None:
    user = await pop3.new_user()
    await deliver(pop3, user, MESSAGES[0])

    def first() -> list[bytes]:
        client = login(pop3, user)
        uidls = client.uidl()[1]
        client.quit()
        return uidls

    before = await asyncio.to_thread(first)
    client = await asyncio.to_thread(login, pop3, user)
    await deliver(pop3, user, MESSAGES[1])  # arrives during the session: not in its maildrop
    assert await asyncio.to_thread(client.stat) == (1, len(MESSAGES[0]))
    await asyncio.to_thread(client.quit)
    after = await asyncio.to_thread(first)
    assert after[0] == before[0]
    assert len(after) == 2
    assert after[1] != after[0]


async def test_allow_delete_applies_at_quit_only(pop3_factory: Pop3Factory) -> None:
    target = await pop3_factory(allow_delete="true")
    user = await target.new_user()
    for message in MESSAGES:
        await deliver(target, user, message)

    def dropped_connection() -> None:
        client = login(target, user)
        client.dele(1)
        client.sock.close()  # no QUIT: RFC 1939 says nothing is deleted

    await asyncio.to_thread(dropped_connection)
    await asyncio.sleep(0.2)
    inbox = await target.backend.store.get_mailbox(user.id, "INBOX")
    assert len(await target.backend.store.list_messages(inbox)) == 3

    def quit_applies() -> None:
        client = login(target, user)
        client.dele(1)
        client.dele(3)
        with pytest.raises(poplib.error_proto, match="no message 1"):
            client.retr(1)
        assert client.stat() == (1, len(MESSAGES[1]))
        client.quit()

    await asyncio.to_thread(quit_applies)
    remaining = await target.backend.store.list_messages(inbox)
    assert [m.uid for m in remaining] == [2]


async def test_auth_plain_with_initial_response(pop3: Pop3Target) -> None:
    user = await pop3.new_user()
    token = base64.b64encode(f"\0{user.address}\0secret".encode()).decode()

    def conversation() -> bytes:
        with socket.create_connection((pop3.host, pop3.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(f"AUTH PLAIN {token}\r\nSTAT\r\nQUIT\r\n".encode())
            return b"".join(reader.readline() for _ in range(3))

    assert await asyncio.to_thread(conversation) == (
        f"+OK {user.address} has 0 messages\r\n+OK 0 0\r\n+OK Bye\r\n".encode()
    )


async def test_hostile_input_gets_err_and_the_session_goes_on(pop3: Pop3Target) -> None:
    def conversation() -> list[bytes]:
        with socket.create_connection((pop3.host, pop3.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(b"X" * 300 + b"\r\n")
            raw.sendall(b"\x00\xff\xfe garbage\r\n")
            raw.sendall(b"STAT\r\n")
            raw.sendall(b"RETR 1\r\n")
            raw.sendall(b"CAPA\r\n")
            lines = [reader.readline() for _ in range(4)]
            while reader.readline() != b".\r\n":
                pass
            raw.sendall(b"QUIT\r\n")
            lines.append(reader.readline())
            return lines

    lines = await asyncio.to_thread(conversation)
    assert all(line.startswith(b"-ERR") for line in lines[:4]), lines
    assert lines[4] == b"+OK Bye\r\n"


async def test_a_client_trickling_a_byte_at_a_time_is_dropped_at_the_login_deadline(
    pop3_factory: Pop3Factory,
) -> None:
    """Slowloris: a byte every 0.3 s is never 1 s of silence, but the login time is total."""
    target = await pop3_factory(login_timeout="1s")
    user = await target.new_user()

    def conversation() -> None:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            slow = trickle(raw, b"USER someone@example.org\r\n", every=0.3, budget=5)
        assert slow.closed_after is not None, "the slow client is still connected"
        assert 0.9 < slow.closed_after < 2.5
        assert slow.received.startswith(b"+OK")
        assert slow.received.endswith(b"-ERR Autologout; took too long to log in\r\n")
        # Once logged in, the login deadline no longer applies.
        client = login(target, user)
        time.sleep(1.5)
        assert client.stat() == (0, 0)
        client.quit()

    await asyncio.to_thread(conversation)


async def test_plaintext_login_outside_plaintext_networks_is_refused(
    pop3_factory: Pop3Factory,
) -> None:
    target = await pop3_factory(plaintext_networks="192.0.2.0/24")
    user = await target.new_user()

    def conversation() -> None:
        client = poplib.POP3(target.host, target.port, timeout=10)
        assert "USER" not in client.capa()
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] .*STLS"):
            client.user(user.address)
        client.quit()

    await asyncio.to_thread(conversation)


async def test_stls_then_login(pop3_factory: Pop3Factory) -> None:
    target = await pop3_factory(tls=True, plaintext_networks="192.0.2.0/24")
    user = await target.new_user()
    await deliver(target, user, MESSAGES[0])

    def conversation() -> tuple[int, int]:
        client = poplib.POP3(target.host, target.port, timeout=10)
        assert "STLS" in client.capa()
        client.stls(context=target.client_ssl_context())
        assert "STLS" not in client.capa()
        client.user(user.address)
        client.pass_("secret")
        stat = client.stat()
        client.quit()
        return stat

    assert await asyncio.to_thread(conversation) == (1, len(MESSAGES[0]))


async def test_stls_discards_pipelined_plaintext_injection(pop3_factory: Pop3Factory) -> None:
    """A USER pipelined after STLS in clear text must not count once TLS is up
    (RFC 2595 section 3.1), or a PASS over TLS would log in as its name."""
    target = await pop3_factory(tls=True, plaintext_networks="192.0.2.0/24")
    user = await target.new_user()

    def conversation() -> bytes:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            assert reader.readline().startswith(b"+OK")
            raw.sendall(b"STLS\r\nUSER " + user.address.encode() + b"\r\n")
            assert reader.readline().startswith(b"+OK")
            context = target.client_ssl_context()
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"PASS secret\r\n")
                # Had the USER survived, "+OK Send PASS" would come first.
                return tls.makefile("rb").readline()

    assert (await asyncio.to_thread(conversation)).startswith(b"-ERR")


async def test_octet_counts_are_exact_for_a_bare_lf_message(pop3: Pop3Target) -> None:
    user = await pop3.new_user()
    bare = b"Subject: bare\n\nline one\nline two\r\nline three\n"

    async def source() -> AsyncIterator[bytes]:
        for index in range(len(bare)):  # one byte at a time: CR and LF in separate chunks
            yield bare[index : index + 1]

    await pop3.backend.store.append(user.id, "INBOX", source())
    sent = bare.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def conversation() -> None:
        client = login(pop3, user)
        assert client.stat() == (1, len(sent))
        _, lines, octets = client.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == sent
        assert octets == len(sent)
        client.quit()

    await asyncio.to_thread(conversation)


async def test_pop3_delete_is_seen_from_imap(
    pop3_factory: Pop3Factory, imap_factory: ImapFactory
) -> None:
    target = await pop3_factory(allow_delete="true")
    imap = await imap_factory()
    user = await target.new_user()
    for message in MESSAGES:
        await deliver(target, user, message)

    def conversation() -> list[object]:
        with imap.client(user) as client:
            client.select("INBOX")
            pop = login(target, user)
            pop.dele(2)
            pop.quit()
            client.noop()
            expunged = client.untagged_responses.pop("EXPUNGE", [])
            assert client.uid("SEARCH", "ALL") == ("OK", [b"1 3"])
            return list(expunged)

    assert await asyncio.to_thread(conversation) == [b"2"]


async def test_retr_of_a_message_whose_blob_is_missing_is_err_and_the_session_goes_on(
    pop3: Pop3Target,
) -> None:
    """No ``+OK`` before the message could be read: the client gets ``-ERR`` for
    that message, not a multi-line reply that ends in an error line."""
    user = await pop3.new_user()
    for message in MESSAGES[:2]:
        await deliver(pop3, user, message)
    store = pop3.backend.store
    inbox = await store.get_mailbox(user.id, "INBOX")
    infos = await store.fetch_infos(inbox, [1, 2])
    await pop3.backend.blobs.delete_many([infos[0].object_key])

    def conversation() -> None:
        client = login(pop3, user)
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR "):
            client.retr(1)
        _, lines, _ = client.retr(2)  # the session goes on (poplib undoes the dot-stuffing)
        assert b"\r\n".join(lines) + b"\r\n" == MESSAGES[1]
        top = client.top(2, 0)[1]
        assert top == [b"Subject: dots", b""]
        client.quit()

    await asyncio.to_thread(conversation)
