"""How an IMAP session ends when the server ends it: the driver's goodbyes."""

from __future__ import annotations

import asyncio
import base64
import socket

from tests.integration.imap.conftest import ImapFactory


async def test_a_password_guesser_is_disconnected_after_the_failed_logins_allowed(
    imap_factory: ImapFactory,
) -> None:
    target = await imap_factory(max_login_failures="2")
    user = await target.new_user()
    other = base64.b64encode(f"someone\0{user.address}\0secret".encode()).decode()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()  # the greeting
            raw.sendall(f"a1 LOGIN {user.address} wrong\r\n".encode())
            raw.sendall(f"a2 AUTHENTICATE PLAIN {other}\r\na3 NOOP\r\n".encode())
            return [reader.readline() for _ in range(4)]

    assert await asyncio.to_thread(conversation) == [
        b"a1 NO [AUTHENTICATIONFAILED] Authentication failed\r\n",
        b"a2 NO [AUTHENTICATIONFAILED] Invalid PLAIN credentials\r\n",
        b"* BYE Too many failed logins\r\n",
        b"",  # closed: a3 is not read
    ]


async def test_logout_says_bye_then_ok_and_closes(imap_factory: ImapFactory) -> None:
    target = await imap_factory()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()  # the greeting
            raw.sendall(b"a1 LOGOUT\r\na2 NOOP\r\n")
            return [reader.readline() for _ in range(3)]

    assert await asyncio.to_thread(conversation) == [
        b"* BYE Logging out\r\n",
        b"a1 OK completed\r\n",
        b"",
    ]
