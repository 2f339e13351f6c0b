"""SEARCH over a real socket, on both backends: address keys, INTERNALDATE zones,
and the cost one SEARCH may take (issues #13 and #14).

imaplib is blocking, so each client conversation runs in a worker thread
while the server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
import select
import smtplib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lightmail.config import TcpAddress, load_settings
from lightmail.lmtp.server import LmtpServer
from lightmail.mailstore.store import Recipient
from tests.integration.imap.conftest import PASSWORD, ImapFactory, ImapTarget
from tests.integration.imap.test_commands import ok


async def deliver(target: ImapTarget, user_id: int, address: str, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    await target.backend.store.deliver([Recipient(user_id, address)], source())


# -- FROM, TO, CC, BCC match the parsed addresses (RFC 3501 6.4.4) -------------------------

COMMENTED = (
    b"From: <user (comment)@ (comment) example.org>\r\n"
    b"To: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>\r\n"
    b"Cc: Carol\r\n <carol@\r\n example.net>, team: dave@example.net;\r\n"
    b'Bcc: "Eve, the auditor" <eve (audit)@example.com>\r\n'
    b"Subject: addresses\r\n"
    b"\r\n"
    b"body\r\n"
)
PLAIN = b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: plain\r\n\r\nbody\r\n"


async def test_search_from_finds_an_address_written_with_comments_and_folding(
    imap: ImapTarget,
) -> None:
    user = await imap.new_user()
    await deliver(imap, user.id, user.address, COMMENTED)
    await deliver(imap, user.id, user.address, PLAIN)

    def conversation() -> None:
        with imap.client(user) as client:
            ok(client.select("INBOX"))
            assert ok(client.search(None, "FROM", "user@example.org")) == [b"1"]
            assert ok(client.search(None, "FROM", "USER@Example.ORG")) == [b"1"]
            # Comments are not part of the address.
            assert ok(client.search(None, "FROM", "comment")) == [b""]
            # RFC 2047 words are decoded in the display name.
            client.literal = "jörg müller <joerg@".encode()  # type: ignore[assignment]  # imaplib sends bytes
            assert ok(client.search("UTF-8", "TO")) == [b"1"]
            assert ok(client.search(None, "TO", "=?UTF-8?")) == [b""]
            # Folding inside the address is removed; a group's members are addresses.
            assert ok(client.search(None, "CC", "carol@example.net")) == [b"1"]
            assert ok(client.search(None, "CC", '"Carol <carol@"')) == [b"1"]
            assert ok(client.search(None, "CC", "dave@example.net")) == [b"1"]
            assert ok(client.search(None, "BCC", '"eve@example.com"')) == [b"1"]
            assert ok(client.search(None, "BCC", '"Eve, the auditor"')) == [b"1"]
            assert ok(client.search(None, "BCC", '"audit)"')) == [b""]
            # The plain message is found as before; an empty string means "has the field".
            assert ok(client.search(None, "FROM", "bob@example.org")) == [b"2"]
            assert ok(client.search(None, "TO", "alice")) == [b"2"]
            assert ok(client.search(None, "CC", '""')) == [b"1"]
            assert ok(client.search(None, "NOT", "FROM", "example.org")) == [b""]
            # HEADER still searches the field's text as written.
            assert ok(client.search(None, "HEADER", "From", '"(comment)"')) == [b"1"]
            assert ok(client.search(None, "HEADER", "From", "user@example.org")) == [b""]

    await asyncio.to_thread(conversation)


# -- INTERNALDATE keeps its zone (RFC 3501 6.3.11, 6.4.4, 7.4.2) ---------------------------

_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


def internaldates(client: imaplib.IMAP4, messages: str) -> list[bytes]:
    data = ok(client.fetch(messages, "(INTERNALDATE)"))
    return [m.group(1) for item in data if (m := _INTERNALDATE.search(item)) is not None]


async def test_append_date_time_keeps_its_zone_for_fetch_and_search(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with imap.client(user) as client:
            ok(client.append("INBOX", "", '"16-Jul-1996 20:00:00 -0700"', PLAIN))
            ok(client.append("INBOX", "", '"17-Jul-1996 01:30:00 +0200"', PLAIN))
            ok(client.append("INBOX", "", '" 1-Jan-2026 00:00:00 +0000"', PLAIN))
            ok(client.select("INBOX"))
            assert internaldates(client, "1:*") == [
                b"16-Jul-1996 20:00:00 -0700",
                b"17-Jul-1996 01:30:00 +0200",
                b"01-Jan-2026 00:00:00 +0000",
            ]
            # Dates compare in the message's own zone, time and zone disregarded:
            # message 1 is 17 July in UTC, message 2 is 16 July in UTC.
            assert ok(client.search(None, "ON", "16-Jul-1996")) == [b"1"]
            assert ok(client.search(None, "ON", "17-Jul-1996")) == [b"2"]
            assert ok(client.search(None, "BEFORE", "17-Jul-1996")) == [b"1"]
            assert ok(client.search(None, "SINCE", "17-Jul-1996")) == [b"2 3"]
            # COPY keeps the internal date, zone included.
            ok(client.copy("1:2", "Archive"))
            ok(client.select("Archive"))
            assert internaldates(client, "1:*") == [
                b"16-Jul-1996 20:00:00 -0700",
                b"17-Jul-1996 01:30:00 +0200",
            ]
            assert ok(client.search(None, "ON", "16-Jul-1996")) == [b"1"]

    await asyncio.to_thread(conversation)


@contextmanager
def local_zone(tz: str) -> Iterator[None]:
    """The process's local time zone set to ``tz`` (a POSIX TZ value) for a while."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", tz)
    time.tzset()
    try:
        yield
    finally:
        mp.undo()
        time.tzset()


async def test_lmtp_delivery_gets_the_servers_local_zone(imap: ImapTarget, tmp_path: Path) -> None:
    user = await imap.new_user()
    settings = load_settings(
        None,
        {
            "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "lmtp"),
            "LIGHTMAIL_LMTP_LISTEN": "127.0.0.1:0",
        },
    )
    server = LmtpServer(settings, imap.backend.store, imap.backend.accounts, scanner=None)
    await server.start()
    address = server.listener.bound_addresses[0]
    assert isinstance(address, TcpAddress)

    def send() -> None:
        with smtplib.LMTP(address.host, address.port, timeout=30) as client:
            client.sendmail("sender@example.org", [user.address], PLAIN)

    def conversation() -> list[bytes]:
        with imap.client(user) as client:
            ok(client.select("INBOX"))
            return internaldates(client, "1")

    try:
        with local_zone("XST-5:30"):  # UTC+05:30 all year
            await asyncio.to_thread(send)
            (fetched,) = await asyncio.to_thread(conversation)
    finally:
        await server.stop()
    assert fetched.endswith(b" +0530"), fetched


# -- one SEARCH cannot take the server (issue #14) -----------------------------------------


async def test_search_with_thousands_of_keys_is_refused(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user.id, user.address, PLAIN)

    def conversation() -> None:
        with imap.client(user) as client:
            ok(client.select("INBOX"))
            keys = [item for n in range(5000) for item in ("TEXT", f"q{n}")]
            with pytest.raises(imaplib.IMAP4.error, match="too many search keys"):
                client.search(None, *keys)
            # The default limit is 100 keys; the connection goes on.
            assert ok(client.search(None, *["ALL"] * 100)) == [b"1"]
            with pytest.raises(imaplib.IMAP4.error, match="too many search keys"):
                client.search(None, *["ALL"] * 101)
            assert ok(client.search(None, "NOT", "NOT", "(ALL)")) == [b"1"]

    await asyncio.to_thread(conversation)


async def test_search_key_limit_is_a_setting(imap_factory: ImapFactory) -> None:
    imap = await imap_factory(max_search_keys="3")
    user = await imap.new_user()
    await deliver(imap, user.id, user.address, PLAIN)

    def conversation() -> None:
        with imap.client(user) as client:
            ok(client.select("INBOX"))
            assert ok(client.search(None, "OR", "SEEN", "ALL")) == [b"1"]  # 3 keys
            with pytest.raises(imaplib.IMAP4.error, match=r"at most 3\)"):
                client.search(None, "NOT", "OR", "SEEN", "ALL")

    await asyncio.to_thread(conversation)


def _login(target: ImapTarget, address: str) -> socket.socket:
    sock = socket.create_connection((target.host, target.port), timeout=60)
    _read_until(sock, b"* OK")
    sock.sendall(b"l LOGIN " + address.encode() + b" " + PASSWORD.encode() + b"\r\n")
    assert b"l OK" in _read_until(sock, b"l ")
    return sock


def _read_until(sock: socket.socket, tag: bytes) -> bytes:
    """Lines up to and including the first that starts with ``tag``."""
    data = b""
    while not (data.startswith(tag) or b"\r\n" + tag in data) or not data.endswith(b"\r\n"):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {tag!r}: {data[-200:]!r}"
        data += chunk
    return data


async def test_a_heavy_search_lets_other_sessions_work_meanwhile(
    imap_factory: ImapFactory,
) -> None:
    """A SEARCH that evaluates for seconds without touching the blob store (a UID
    set of 4,000 numbers against 1,024 messages, with a size key so that every
    message's row is read: a search of flags and numbers alone is answered from
    the session's view, faster than this test can catch) must let another
    user's NOOP be answered while it runs: before, nothing else ran until it
    was done."""
    imap = await imap_factory()
    user, other = await imap.new_user(), await imap.new_user()
    store = imap.backend.store
    await deliver(imap, user.id, user.address, PLAIN)
    inbox = await store.get_mailbox(user.id, "INBOX")
    for _ in range(10):  # doubling: 1024 messages sharing one blob
        messages = await store.list_messages(inbox)
        await store.copy(user.id, inbox, [m.uid for m in messages], "INBOX")
    # Odd UIDs, highest first, so every message is compared with most of the set.
    uid_set = ",".join(str(n) for n in range(7999, 0, -2)).encode()

    def conversation() -> tuple[bool, bytes]:
        searcher, bystander = _login(imap, user.address), _login(imap, other.address)
        try:
            searcher.sendall(b"s SELECT INBOX\r\n")
            assert b"s OK" in _read_until(searcher, b"s ")
            searcher.sendall(b"h UID SEARCH LARGER 1 UID " + uid_set + b"\r\n")
            time.sleep(0.5)  # setup, not a measurement: the SEARCH is evaluating by now
            bystander.sendall(b"n NOOP\r\n")
            assert b"n OK" in _read_until(bystander, b"n ")
            readable, _, _ = select.select([searcher], [], [], 0)
            return not readable, _read_until(searcher, b"h ")
        finally:
            searcher.close()
            bystander.close()

    search_still_running, reply = await asyncio.to_thread(conversation)
    assert b"h OK" in reply
    (line,) = [x for x in reply.split(b"\r\n") if x.startswith(b"* SEARCH")]
    assert line.split()[2:] == [str(n).encode() for n in range(1, 1025, 2)]
    assert search_still_running, "the other session's NOOP waited for the SEARCH to end"
