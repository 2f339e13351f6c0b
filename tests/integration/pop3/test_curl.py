"""POP3 SASL with Debian's curl, on both backends (issue #13, interop).

curl sends ``AUTH PLAIN`` alone and answers the ``+`` by default, and with
``--sasl-ir`` puts the credentials on the AUTH line as RFC 5034's initial
response; both must log in. The empty initial response ``=`` over a raw socket.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
from collections.abc import AsyncIterator

import pytest

from lightmail.accounts.service import User
from lightmail.mailstore.store import Recipient
from tests.integration.pop3.conftest import Pop3Target
from tests.support.curl import curl, sent

MESSAGES = [
    b"Subject: one\r\nFrom: a@example.net\r\n\r\nfirst\r\n",
    b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
]


async def deliver(target: Pop3Target, user: User, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    await target.backend.store.deliver([Recipient(user.id, user.address)], source())


def credentials(user: User) -> list[str]:
    return ["--user", f"{user.address}:secret"]


@pytest.mark.parametrize("initial_response", [False, True], ids=["challenge", "sasl-ir"])
async def test_curl_pop3_list_and_retr(pop3: Pop3Target, initial_response: bool) -> None:
    user = await pop3.new_user()
    for message in MESSAGES:
        await deliver(pop3, user, message)
    options = ["--sasl-ir"] if initial_response else []
    base = f"pop3://{pop3.host}:{pop3.port}/"

    result = await curl(*options, *credentials(user), base)
    assert result.returncode == 0, result.stderr
    auth = [line for line in sent(result) if line.startswith("AUTH ")]
    if initial_response:
        [line] = auth
        match = re.fullmatch(r"AUTH PLAIN ([A-Za-z0-9+/=]+)", line)
        assert match is not None, line
        assert base64.b64decode(match.group(1)) == f"\0{user.address}\0secret".encode()
    else:
        assert auth == ["AUTH PLAIN"]
    assert result.stdout == b"".join(b"%d %d\r\n" % (n, len(m)) for n, m in enumerate(MESSAGES, 1))

    for number, message in enumerate(MESSAGES, 1):
        result = await curl(*options, *credentials(user), f"{base}{number}")
        assert result.returncode == 0, result.stderr
        assert result.stdout == message


async def test_curl_pop3_wrong_password_with_initial_response(pop3: Pop3Target) -> None:
    user = await pop3.new_user()
    base = f"pop3://{pop3.host}:{pop3.port}/"
    result = await curl("--sasl-ir", "--user", f"{user.address}:wrong", base)
    assert result.returncode == 67, result.stderr  # CURLE_LOGIN_DENIED


async def test_auth_plain_empty_initial_response_is_one_failure(pop3: Pop3Target) -> None:
    """RFC 5034 section 4: ``=`` is an empty initial response, no PLAIN credentials:
    one failed login, and the session goes on (curl's SASL-IR above is the good case)."""
    user = await pop3.new_user()
    token = base64.b64encode(f"\0{user.address}\0secret".encode()).decode()

    def conversation() -> bytes:
        with socket.create_connection((pop3.host, pop3.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(f"AUTH PLAIN =\r\nAUTH PLAIN {token}\r\nQUIT\r\n".encode())
            return b"".join(reader.readline() for _ in range(3))

    assert await asyncio.to_thread(conversation) == (
        b"-ERR [AUTH] Invalid PLAIN credentials\r\n"
        + f"+OK {user.address} has 0 messages\r\n".encode()
        + b"+OK Bye\r\n"
    )
