"""How an LMTP session ends when the server ends it: the driver's goodbyes."""

from __future__ import annotations

import asyncio
import socket
from typing import Any


async def test_server_stop_says_421_to_sessions(lmtp_factory: Any) -> None:
    target = await lmtp_factory()
    loop = asyncio.get_running_loop()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()  # the greeting
            raw.sendall(b"NOOP\r\n")
            lines = [reader.readline()]
            asyncio.run_coroutine_threadsafe(target.server.stop(), loop).result(timeout=20)
            return [*lines, reader.readline(), reader.readline()]

    assert await asyncio.to_thread(conversation) == [
        b"250 2.0.0 OK\r\n",
        b"421 4.3.2 Service shutting down, try again later\r\n",
        b"",
    ]


async def test_quit_says_bye_and_closes(lmtp_factory: Any) -> None:
    target = await lmtp_factory()

    def conversation() -> list[bytes]:
        with socket.create_connection((target.host, target.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()  # the greeting
            raw.sendall(b"QUIT\r\nNOOP\r\n")
            return [reader.readline(), reader.readline()]

    assert await asyncio.to_thread(conversation) == [b"221 2.0.0 Bye\r\n", b""]


async def test_a_client_sending_garbage_gets_421_after_the_bad_commands_allowed(
    lmtp_factory: Any,
) -> None:
    target = await lmtp_factory(max_bad_commands="2")
    garbage = b"GET / HTTP/1.0\r\nNOOP\r\n\x00\r\nNOOP\r\n"
    with socket.create_connection((target.host, target.port), timeout=10) as raw:
        raw.sendall(garbage)
        with raw.makefile("rb") as reader:
            replies = await asyncio.to_thread(reader.readlines)
    # The second error reply is the last: the NOOP after it is not read.
    assert replies == [
        b"220 mx.test.example LightMail LMTP ready\r\n",
        b"500 5.5.1 Command unrecognized\r\n",
        b"250 2.0.0 OK\r\n",
        b"501 5.5.2 Invalid character in command\r\n",
        b"421 4.7.0 Too many invalid commands, closing connection\r\n",
    ]
