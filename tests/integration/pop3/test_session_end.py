"""How a POP3 session ends when the server ends it: the driver's goodbyes."""

from __future__ import annotations

import asyncio
import base64
import socket

from tests.integration.pop3.conftest import Pop3Factory


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
