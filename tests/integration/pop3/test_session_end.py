"""How a POP3 session ends when the server ends it: the driver's goodbyes."""

from __future__ import annotations

import asyncio
import base64
import socket

from tests.integration.pop3.conftest import Pop3Factory, Pop3Target


def _lines(raw: socket.socket, count: int) -> list[bytes]:
    reader = raw.makefile("rb")
    return [reader.readline() for _ in range(count)]


async def test_a_password_guesser_is_disconnected_after_the_failed_logins_allowed(
    pop3_factory: Pop3Factory,
) -> None:
    target = await pop3_factory(max_login_failures="2")
    user = await target.new_user()
    other = base64.b64encode(f"someone\0{user.address}\0secret".encode()).decode()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            raw.sendall(f"USER {user.address}\r\nPASS wrong\r\nAUTH PLAIN {other}\r\n".encode())
            raw.sendall(b"NOOP\r\n")
            return _lines(raw, 6)

    assert await asyncio.to_thread(conversation) == [
        b"+OK LightMail POP3 ready on " + target.server.context.hostname.encode() + b"\r\n",
        b"+OK Send PASS\r\n",
        b"-ERR [AUTH] Authentication failed\r\n",
        b"-ERR [AUTH] Authorization as another user is not allowed\r\n",
        b"-ERR [AUTH] Too many failed logins\r\n",
        b"",  # closed: NOOP is not read
    ]


async def test_a_client_sending_garbage_is_disconnected_after_the_bad_commands_allowed(
    pop3_factory: Pop3Factory,
) -> None:
    target = await pop3_factory(max_bad_commands="2")

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.0\r\nHOST x\r\nNOOP\r\n")
            return _lines(raw, 5)

    lines = await asyncio.to_thread(conversation)
    assert lines[1:] == [
        b"-ERR Unknown command\r\n",
        b"-ERR Unknown command\r\n",
        b"-ERR Too many invalid commands\r\n",
        b"",
    ]


async def test_server_stop_says_goodbye_to_sessions(pop3_factory: Pop3Factory) -> None:
    target = await pop3_factory()
    user = await target.new_user()
    loop = asyncio.get_running_loop()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(f"USER {user.address}\r\nPASS secret\r\n".encode())
            lines = [reader.readline(), reader.readline()]
            asyncio.run_coroutine_threadsafe(target.server.stop(), loop).result(timeout=20)
            return [*lines, reader.readline(), reader.readline()]

    lines = await asyncio.to_thread(conversation)
    assert lines[1].startswith(b"+OK " + user.address.encode())
    assert lines[2:] == [b"-ERR [SYS/TEMP] Server shutting down\r\n", b""]


async def _replies(target: Pop3Target, data: bytes) -> list[bytes]:
    """Send ``data`` at once; every line after the greeting, until the server closes."""

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            raw.sendall(data)
            return raw.makefile("rb").readlines()[1:]

    return await asyncio.to_thread(conversation)


async def test_a_client_that_never_logs_in_is_disconnected_after_the_commands_allowed(
    pop3_factory: Pop3Factory,
) -> None:
    target = await pop3_factory(max_commands_before_login="2")
    # Closed at the third USER, which is not served.
    assert await _replies(target, b"USER a@example.org\r\n" * 3) == [
        b"+OK Send PASS\r\n",
        b"+OK Send PASS\r\n",
        b"-ERR Too many commands without logging in\r\n",
    ]


async def test_command_lines_are_bounded_by_max_line_length(pop3_factory: Pop3Factory) -> None:
    target = await pop3_factory(max_line_length="300")
    fits = b"USER " + b"a" * 293 + b"\r\n"  # 300 octets with CRLF
    too_long = b"USER " + b"a" * 294 + b"\r\n"
    assert await _replies(target, fits + too_long + b"QUIT\r\n") == [
        b"+OK Send PASS\r\n",
        b"-ERR Command line too long\r\n",
        b"+OK Bye\r\n",
    ]


async def test_default_line_length_takes_more_than_rfc_2449s_255_octets(
    pop3_factory: Pop3Factory,
) -> None:
    """A long AUTH PLAIN initial response (long name, long password) must fit."""
    target = await pop3_factory()
    user = await target.new_user()
    password = "p" * 400
    await target.backend.accounts.set_password(user.address, password)
    token = base64.b64encode(f"\0{user.address}\0{password}".encode()).decode()
    assert len(token) > 500
    assert await _replies(target, f"AUTH PLAIN {token}\r\nQUIT\r\n".encode()) == [
        f"+OK {user.address} has 0 messages\r\n".encode(),
        b"+OK Bye\r\n",
    ]


async def test_a_user_gets_at_most_max_connections_per_user(pop3_factory: Pop3Factory) -> None:
    target = await pop3_factory(max_connections_per_user="1")
    user = await target.new_user()
    login = f"USER {user.address}\r\nPASS secret\r\nQUIT\r\n".encode()
    logged_in = f"+OK {user.address} has 0 messages\r\n".encode()

    def log_in() -> tuple[socket.socket, list[bytes]]:
        raw = socket.create_connection((target.host, target.port), timeout=10)
        raw.sendall(login.removesuffix(b"QUIT\r\n"))
        with raw.makefile("rb") as reader:
            return raw, [reader.readline() for _ in range(3)][1:]

    first, lines = await asyncio.to_thread(log_in)
    with first:
        assert lines == [b"+OK Send PASS\r\n", logged_in]
        assert await _replies(target, login) == [
            b"+OK Send PASS\r\n",
            b"-ERR [IN-USE] Too many connections for this user\r\n",
            b"+OK Bye\r\n",
        ]
    # The first connection is gone: its count is released (once the server sees it).
    for _ in range(50):
        replies = await _replies(target, login)
        if replies[1] == logged_in:
            break
        await asyncio.sleep(0.1)
    assert replies == [b"+OK Send PASS\r\n", logged_in, b"+OK Bye\r\n"]
