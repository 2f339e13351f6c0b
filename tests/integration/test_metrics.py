"""Connection, command and delivery metrics move when real clients talk to the servers.

Each test reads how much a sample moved during the test (tests.support.metrics),
never its value: the registry is shared by every test of the run.
"""

from __future__ import annotations

import asyncio
import imaplib

import pytest

from tests.integration.imap.conftest import ImapFactory
from tests.integration.imap.conftest import imap_factory as imap_factory
from tests.integration.lmtp.conftest import LmtpFactory
from tests.integration.lmtp.conftest import lmtp_factory as lmtp_factory
from tests.integration.pop3.conftest import Pop3Factory
from tests.integration.pop3.conftest import pop3_factory as pop3_factory
from tests.support.metrics import Changes

MESSAGE = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Metrics\r\n"
    b"\r\n"
    b"Counted.\r\n"
)
ACCEPTED = "lightmail_connections_accepted_total"
OPEN = "lightmail_connections_open"
REFUSED = "lightmail_connections_refused_total"
COMMANDS = "lightmail_commands_total"
COMMAND_SECONDS = "lightmail_command_seconds_count"


async def settled(changes: Changes, name: str, expected: float, **labels: str) -> float:
    """The sample's change once it reaches ``expected`` (sessions end after the client
    leaves), or whatever it is after five seconds."""
    for _ in range(100):
        if changes(name, **labels) == expected:
            break
        await asyncio.sleep(0.05)
    return changes(name, **labels)


async def test_an_imap_session_counts_its_connection_commands_and_appends(
    imap_factory: ImapFactory,
) -> None:
    target = await imap_factory()
    user = await target.new_user()
    changes = Changes()
    open_during: list[float] = []

    def conversation() -> None:
        with target.client(user) as client:
            open_during.append(changes(OPEN, protocol="imap"))
            assert client.select("INBOX", readonly=True)[0] == "OK"
            assert client.select("INBOX")[0] == "OK"
            assert client.append("INBOX", "", None, MESSAGE)[0] == "OK"
            assert client.append("NoSuchFolder", "", None, MESSAGE)[0] == "NO"
            assert client.fetch("1", "(FLAGS)")[0] == "OK"
            assert client.uid("FETCH", "1:*", "(FLAGS)")[0] == "OK"
            with pytest.raises(imaplib.IMAP4.error, match="BAD"):
                client.xatom("FROBNICATE")

    await asyncio.to_thread(conversation)

    assert open_during == [1]
    assert await settled(changes, OPEN, 0, protocol="imap") == 0
    assert changes(ACCEPTED, protocol="imap") == 1
    expected = {
        "login": 1,
        "examine": 1,
        "select": 1,
        "append": 2,
        "fetch": 1,
        "uid_fetch": 1,
        "other": 1,  # FROBNICATE
        "logout": 1,
    }
    for command, count in expected.items():
        assert changes(COMMANDS, protocol="imap", command=command) == count, command
        assert changes(COMMAND_SECONDS, protocol="imap", command=command) == count, command
    assert changes("lightmail_appends_total", outcome="appended") == 1
    assert changes("lightmail_appends_total", outcome="refused") == 1  # TRYCREATE
    assert changes("lightmail_db_transaction_seconds_count", kind="write") >= 1
    blob_puts = changes("lightmail_blob_seconds_count", backend="filesystem", operation="put")
    blob_puts += changes("lightmail_blob_seconds_count", backend="s3", operation="put")
    assert blob_puts == 1


async def test_pop3_counts_commands_and_connections_refused_over_the_limit(
    pop3_factory: Pop3Factory,
) -> None:
    target = await pop3_factory(max_connections="1")
    changes = Changes()

    reader, writer = await asyncio.open_connection(target.host, target.port)
    assert (await reader.readline()).startswith(b"+OK")
    refused_reader, refused_writer = await asyncio.open_connection(target.host, target.port)
    assert b"Too many connections" in await refused_reader.readline()
    refused_writer.close()
    for line in (b"NOOP", b"FROBNICATE", b"USER nobody", b"QUIT"):
        writer.write(line + b"\r\n")
        await writer.drain()
        await reader.readline()
    writer.close()
    await writer.wait_closed()

    assert changes(ACCEPTED, protocol="pop3") == 1
    assert changes(REFUSED, protocol="pop3", reason="max_connections") == 1
    assert await settled(changes, OPEN, 0, protocol="pop3") == 0
    for command in ("noop", "other", "user", "quit"):
        assert changes(COMMANDS, protocol="pop3", command=command) == 1, command
        assert changes(COMMAND_SECONDS, protocol="pop3", command=command) == 1, command


async def test_lmtp_counts_commands_recipients_and_the_message_size(
    lmtp_factory: LmtpFactory,
) -> None:
    target = await lmtp_factory()
    user = await target.new_user()
    changes = Changes()

    client = await target.connect()
    assert (await client.command("MAIL FROM:<bob@example.org>"))[0] == 250
    assert (await client.command(f"RCPT TO:<{user.address}>"))[0] == 250
    assert (await client.command(f"RCPT TO:<nobody@{target.backend.domain}>"))[0] == 550
    assert (await client.command("DATA"))[0] == 354
    await client.send(MESSAGE + b".\r\n")
    assert (await client.reply())[0] == 250
    assert (await client.command("QUIT"))[0] == 221
    await client.close()

    assert changes(ACCEPTED, protocol="lmtp") == 1
    assert await settled(changes, OPEN, 0, protocol="lmtp") == 0
    for command, count in {"lhlo": 1, "mail": 1, "rcpt": 2, "data": 1, "quit": 1}.items():
        assert changes(COMMANDS, protocol="lmtp", command=command) == count, command
        assert changes(COMMAND_SECONDS, protocol="lmtp", command=command) == count, command
    assert changes("lightmail_lmtp_recipients_total", outcome="delivered") == 1
    assert changes("lightmail_lmtp_message_bytes_count") == 1
    # As stored: the message plus our Return-Path and Received headers.
    assert changes("lightmail_lmtp_message_bytes_sum") > len(MESSAGE)
