"""An IMAP session driven without a socket: bytes in, bytes out (as h11's tests do).

The session, its connection, the command table and the mailstore are the real
ones (on each backend); only the transport under the connection is a buffer
(tests/support/memory_connection.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lightmail.config import load_settings
from lightmail.imap.server import ImapServer
from lightmail.imap.session import ImapSession
from tests.conftest import Backend
from tests.support.memory_connection import MemoryConnection


@pytest.fixture
async def client(backend: Backend, tmp_path: Path) -> AsyncIterator[MemoryConnection]:
    settings = load_settings(None, {"LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data")})
    server = ImapServer(settings, backend.store, backend.accounts, None, scanner=None)
    memory = MemoryConnection()
    session = asyncio.create_task(ImapSession(server.context, memory.connection).run())
    try:
        yield memory
    finally:
        memory.end()
        async with asyncio.timeout(5):
            await session


async def test_greeting_capability_and_logout(client: MemoryConnection) -> None:
    await asyncio.sleep(0)
    client.send(b"a CAPABILITY\r\n")
    reply = await client.reply(b"a")
    assert reply.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    assert b"\r\n* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ " in reply
    assert reply.endswith(b"\r\na OK completed\r\n")
    client.send(b"b LOGOUT\r\n")
    assert await client.reply(b"b") == b"* BYE Logging out\r\nb OK completed\r\n"


async def test_a_command_outside_its_states_is_bad(client: MemoryConnection) -> None:
    client.send(b"a SELECT INBOX\r\na NOOP\r\n")
    reply = await client.reply(b"a")
    assert b"a BAD Command not valid in not authenticated state\r\n" in reply


async def test_login_select_and_the_replies_built_by_the_response_builders(
    client: MemoryConnection, backend: Backend
) -> None:
    user = await backend.new_user()
    client.send(b"a LOGIN " + user.address.encode() + b" secret\r\n")
    assert b"a OK [CAPABILITY IMAP4rev1 " in await client.reply(b"a")
    client.send(b'b ID NIL\r\nc NAMESPACE\r\nd ENABLE CONDSTORE\r\ne LIST "" ""\r\n')
    replies = await client.reply(b"e")
    assert b'\r\n* NAMESPACE (("" "/")) NIL NIL\r\nc OK completed\r\n' in replies
    assert b"\r\n* ENABLED CONDSTORE\r\nd OK completed\r\n" in replies
    assert replies.startswith(b'* ID ("name" "LightMail" "version" "')
    assert replies.endswith(b'* LIST (\\Noselect) "/" ""\r\ne OK List completed\r\n')
    client.send(b"f STATUS INBOX (MESSAGES UIDNEXT)\r\n")
    assert await client.reply(b"f") == (
        b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1)\r\nf OK Status completed\r\n"
    )
    client.send(b"g SELECT INBOX\r\nh SEARCH ALL\r\n")
    replies = await client.reply(b"h")
    assert b"\r\ng OK [READ-WRITE] Select completed\r\n" in replies
    assert replies.endswith(b"\r\n* SEARCH\r\nh OK Search completed\r\n")
