"""A COMMIT whose reply is lost must never lose a blob or duplicate a message.

A proxy between LightMail and MariaDB cuts the connection at the exact moment
(see tests/support/mysql_proxy.py): after the server committed a delivery but
before its OK reached LightMail, or before the COMMIT reached the server.
LightMail must then look on a new connection before it answers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

from lightmail.mailstore.store import Recipient
from tests.faults.conftest import RigFactory
from tests.support.faultrig import LmtpClient, Rig
from tests.support.metrics import Changes
from tests.support.mysql_proxy import MySQLProxy
from tests.support.private_mariadb import PrivateMariaDB

_MESSAGES = b"insert into messages"


def _message(subject: str) -> tuple[str, bytes]:
    message_id = f"<{uuid.uuid4().hex}@faults.example>"
    body = (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n\r\nLine one.\r\nLine two.\r\n"
    ).encode()
    return message_id, body


async def _deliver(client: LmtpClient, recipients: list[str], body: bytes) -> list[int]:
    """One LMTP transaction; the codes of the replies after DATA, one per recipient."""
    assert (await client.command("MAIL FROM:<a@example.org>"))[0] == 250
    for address in recipients:
        assert (await client.command(f"RCPT TO:<{address}>"))[0] == 250
    assert (await client.command("DATA"))[0] == 354
    await client.send(body + b".\r\n")
    return [(await client.reply())[0] for _ in recipients]


def _proxy(server: PrivateMariaDB) -> MySQLProxy:
    return MySQLProxy("127.0.0.1", server.port)


async def _copies(rig: Rig, message_id: str) -> list[tuple[int, int, str, str]]:
    return [row for row in await rig.stored_messages() if row[2] == message_id]


async def test_delivery_committed_but_reply_lost_is_acknowledged_once(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB
) -> None:
    proxy = _proxy(private_mariadb)
    rig = await rig_factory(proxy=proxy)
    alice, bob = await rig.new_user(), await rig.new_user()
    message_id, body = _message("reply lost")
    client = await rig.lmtp_client()
    changes = Changes()
    proxy.lose_commit_reply(_MESSAGES)
    codes = await _deliver(client, [alice.address, bob.address], body)
    await client.close()
    assert proxy.cuts == 1
    assert changes("lightmail_db_lost_commits_total", outcome="committed") == 1
    assert codes == [250, 250]  # committed: the MTA must not send it again
    copies = await _copies(rig, message_id)
    assert sorted(user for user, *_ in copies) == sorted([alice.id, bob.id])
    for *_, key in copies:
        blob = await rig.blob(key)
        assert blob is not None
        assert blob.endswith(body)


async def test_append_committed_but_reply_lost_answers_appenduid(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB
) -> None:
    proxy = _proxy(private_mariadb)
    rig = await rig_factory(proxy=proxy)
    user = await rig.new_user()
    message_id, body = _message("append reply lost")
    client = await rig.imap_client(user)
    proxy.lose_commit_reply(_MESSAGES)
    status, _ = await client.command("APPEND INBOX", body)
    assert proxy.cuts == 1
    assert status.startswith(b"OK [APPENDUID "), status
    uid = int(status.split(b"]")[0].split()[-1])
    assert (await client.command("SELECT INBOX"))[0].startswith(b"OK")
    status, lines = await client.command(f"UID FETCH {uid} BODY.PEEK[]")
    await client.close()
    assert status.startswith(b"OK"), status
    assert body in lines[0]
    copies = await _copies(rig, message_id)
    assert [(u, uid_) for u, uid_, *_ in copies] == [(user.id, uid)]


async def test_multiappend_committed_but_reply_lost_answers_every_uid(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB
) -> None:
    proxy = _proxy(private_mariadb)
    rig = await rig_factory(proxy=proxy)
    user = await rig.new_user()
    (first_id, first), (second_id, second) = _message("one of two"), _message("two of two")
    client = await rig.imap_client(user)
    proxy.lose_commit_reply(_MESSAGES)
    # MULTIAPPEND (RFC 3502): the first message, then the second as the literal.
    status, _ = await client.command(f"APPEND INBOX {{{len(first)}+}}\r\n{first.decode()}", second)
    await client.close()
    assert proxy.cuts == 1
    found = re.fullmatch(rb"OK \[APPENDUID [0-9]+ ([0-9]+):([0-9]+)\] Append completed", status)
    assert found is not None, status
    low, high = int(found[1]), int(found[2])
    assert high == low + 1
    copies = [*await _copies(rig, first_id), *await _copies(rig, second_id)]
    assert [(u, uid) for u, uid, *_ in copies] == [(user.id, low), (user.id, high)]


async def test_commit_that_never_reached_the_server_is_retried_and_delivered_once(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB
) -> None:
    proxy = _proxy(private_mariadb)
    rig = await rig_factory(proxy=proxy)
    user = await rig.new_user()
    message_id, body = _message("commit dropped")
    client = await rig.lmtp_client()
    changes = Changes()
    proxy.drop_commit(_MESSAGES)
    assert await _deliver(client, [user.address], body) == [451]
    assert proxy.cuts == 1
    assert changes("lightmail_db_lost_commits_total", outcome="rolled_back") == 1
    assert await _copies(rig, message_id) == []
    # The blob stays until the orphan sweep: only a row that names it could prove it unused.
    assert len(await rig.blob_keys()) == 1
    assert await _deliver(client, [user.address], body) == [250]  # the MTA's retry
    await client.close()
    copies = await _copies(rig, message_id)
    assert len(copies) == 1
    assert (await rig.blob(copies[0][3]) or b"").endswith(body)


async def test_reply_lost_while_the_database_stays_down_keeps_the_blob(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB
) -> None:
    proxy = _proxy(private_mariadb)
    rig = await rig_factory(proxy=proxy, database_commit_check_timeout="1s")
    user = await rig.new_user()
    message_id, body = _message("reply lost, database down")
    client = await rig.lmtp_client()
    changes = Changes()
    proxy.lose_commit_reply(_MESSAGES, refuse_after=True)
    assert await _deliver(client, [user.address], body) == [451]  # no one can tell yet
    await client.close()
    assert proxy.cuts == 1
    assert changes("lightmail_db_lost_commits_total", outcome="unknown") == 1
    proxy.refusing = False
    # It was committed: the message is whole, its blob kept (the MTA's retry will
    # add a second copy, which is the price of not knowing; nothing is lost).
    copies = await _copies(rig, message_id)
    assert len(copies) == 1
    assert (await rig.blob(copies[0][3]) or b"").endswith(body)


async def test_quarantine_committed_but_reply_lost_keeps_the_entry_and_blob(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB
) -> None:
    proxy = _proxy(private_mariadb)
    rig = await rig_factory(proxy=proxy)
    user = await rig.new_user()
    _, body = _message("quarantined")

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    stored = await rig.store.store_message(chunks())
    proxy.lose_commit_reply(b"insert into quarantine")
    item = await rig.store.quarantine(
        stored, "a@example.org", [Recipient(user.id, user.address)], "Eicar-Test-Signature"
    )
    assert proxy.cuts == 1
    assert [entry.id for entry in await rig.store.list_quarantine()] == [item]
    _, data = await rig.store.read_quarantined(item)
    assert b"".join([chunk async for chunk in data]) == body
