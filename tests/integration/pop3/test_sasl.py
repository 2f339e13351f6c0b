"""AUTH PLAIN follows the one set of SASL rules of lightmail.auth.sasl."""

from __future__ import annotations

import asyncio
import base64
import socket

import pytest

from tests.integration.pop3.conftest import Pop3Factory


@pytest.mark.parametrize(
    "message",
    [b"\0someone@example.org\0", b"\0\0secret", b"\0al\xffice\0secret", b"x\0y"],
    ids=["empty-password", "empty-authcid", "not-utf8", "one-nul"],
)
async def test_malformed_plain_is_refused_and_counted(
    pop3_factory: Pop3Factory, message: bytes
) -> None:
    """RFC 4616 section 2: authcid and passwd are non-empty UTF-8."""
    target = await pop3_factory(max_login_failures="1")
    response = base64.b64encode(message).decode()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()  # the greeting
            raw.sendall(b"AUTH PLAIN\r\n")
            lines = [reader.readline()]
            raw.sendall(f"{response}\r\n".encode())
            return [*lines, reader.readline(), reader.readline(), reader.readline()]

    assert await asyncio.to_thread(conversation) == [
        b"+ \r\n",
        b"-ERR [AUTH] Invalid PLAIN credentials\r\n",
        b"-ERR [AUTH] Too many failed logins\r\n",
        b"",
    ]
