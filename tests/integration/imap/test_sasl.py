"""AUTHENTICATE follows the one set of SASL rules of lightmail.auth.sasl."""

from __future__ import annotations

import asyncio
import base64
import socket

import pytest

from tests.integration.imap.conftest import PASSWORD, ImapFactory


@pytest.mark.parametrize(
    "message",
    [b"\0someone@example.org\0", b"\0\0" + PASSWORD.encode(), b"\0al\xffice\0" + PASSWORD.encode()],
    ids=["empty-password", "empty-authcid", "not-utf8"],
)
async def test_malformed_plain_is_refused_and_counted(
    imap_factory: ImapFactory, message: bytes
) -> None:
    """RFC 4616 section 2: authcid and passwd are non-empty UTF-8."""
    target = await imap_factory(max_login_failures="1")
    response = base64.b64encode(message).decode()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()  # the greeting
            raw.sendall(f"a1 AUTHENTICATE PLAIN {response}\r\n".encode())
            return [reader.readline() for _ in range(3)]

    assert await asyncio.to_thread(conversation) == [
        b"a1 NO [AUTHENTICATIONFAILED] Invalid PLAIN credentials\r\n",
        b"* BYE Too many failed logins\r\n",
        b"",
    ]


async def test_login_without_initial_response(imap_factory: ImapFactory) -> None:
    target = await imap_factory()
    user = await target.new_user()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()  # the greeting
            raw.sendall(b"a1 AUTHENTICATE LOGIN\r\n")
            lines = [reader.readline()]
            raw.sendall(base64.b64encode(user.address.encode()) + b"\r\n")
            lines.append(reader.readline())
            raw.sendall(base64.b64encode(PASSWORD.encode()) + b"\r\n")
            lines.append(reader.readline())
            return lines

    lines = await asyncio.to_thread(conversation)
    assert lines[:2] == [b"+ VXNlcm5hbWU6\r\n", b"+ UGFzc3dvcmQ6\r\n"]
    assert lines[2].startswith(b"a1 OK [CAPABILITY ")
