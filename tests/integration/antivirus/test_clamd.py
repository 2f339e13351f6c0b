"""ClamdClient against a real clamd (our EICAR .ndb signature) and against broken peers."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

from lightmail.antivirus import ClamdClient, Verdict
from lightmail.config import ListenAddress, TcpAddress, UnixAddress
from lightmail.errors import TemporaryFailure
from tests.support.clamd import EICAR, REPORTED_NAME, Clamd

HEADER = (
    b"From: sender@example.org\r\n"
    b"To: user@example.com\r\n"
    b"Subject: test\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
)
CLEAN = HEADER + b"Hello, nothing to see here.\r\n"
INFECTED = HEADER + b"Look at this:\r\n" + EICAR + b"\r\n"


@pytest.fixture(params=["unix", "tcp"])
def address(request: pytest.FixtureRequest, clamd: Clamd) -> ListenAddress:
    return clamd.unix if request.param == "unix" else clamd.tcp


async def scan(client: ClamdClient, *chunks: bytes) -> Verdict:
    async with client.scan() as session:
        for chunk in chunks:
            await session.feed(chunk)
        return await session.finish()


def padding(size: int) -> bytes:
    """``size`` octets of harmless text lines."""
    line = b"lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n"
    return (line * (size // len(line) + 1))[:size]


async def test_clean_message_is_not_infected(address: ListenAddress) -> None:
    verdict = await scan(ClamdClient(address), CLEAN)
    assert verdict == Verdict(infected=False, virus=None, scanned=len(CLEAN), truncated=False)


async def test_eicar_in_message_body_is_found(address: ListenAddress) -> None:
    verdict = await scan(ClamdClient(address), INFECTED)
    assert verdict == Verdict(
        infected=True, virus=REPORTED_NAME, scanned=len(INFECTED), truncated=False
    )


async def test_eicar_split_across_feed_calls_is_found(address: ListenAddress) -> None:
    start = INFECTED.index(EICAR)
    pieces = [INFECTED[: start + 10], INFECTED[start + 10 : start + 11], INFECTED[start + 11 :]]
    verdict = await scan(ClamdClient(address), *pieces)
    assert verdict.infected
    assert verdict.virus == REPORTED_NAME
    assert verdict.scanned == len(INFECTED)


async def test_eicar_across_an_instream_frame_boundary_is_found(clamd: Clamd) -> None:
    # One feed() of 100 kB is sent as 64 KiB frames; EICAR straddles the first boundary.
    body = padding(64 * 1024 - 20) + EICAR + padding(40_000)
    verdict = await scan(ClamdClient(clamd.unix), body)
    assert (verdict.infected, verdict.virus, verdict.scanned) == (True, REPORTED_NAME, len(body))


async def test_message_of_exactly_the_limit_is_not_truncated(clamd: Clamd) -> None:
    limit = 100_000
    body = HEADER + padding(limit - len(HEADER))
    verdict = await scan(
        ClamdClient(clamd.unix, stream_max_length=limit), body[:50_000], body[50_000:]
    )
    assert verdict == Verdict(infected=False, virus=None, scanned=limit, truncated=False)


async def test_eicar_after_the_client_limit_is_not_sent(address: ListenAddress) -> None:
    limit = 200_000
    client = ClamdClient(address, stream_max_length=limit)
    head = HEADER + padding(limit - len(HEADER) - 30)
    verdict = await scan(client, head, padding(100), EICAR, b"\r\n")
    assert verdict == Verdict(infected=False, virus=None, scanned=limit, truncated=True)


async def test_eicar_before_the_client_limit_is_found_in_a_truncated_scan(clamd: Clamd) -> None:
    limit = 200_000
    client = ClamdClient(clamd.tcp, stream_max_length=limit)
    verdict = await scan(client, INFECTED, padding(limit))
    assert verdict == Verdict(infected=True, virus=REPORTED_NAME, scanned=limit, truncated=True)


async def test_client_limit_above_clamds_gives_an_unscanned_truncated_verdict(
    clamd: Clamd, caplog: pytest.LogCaptureFixture
) -> None:
    # clamd refuses streams over its StreamMaxLength (1M here), scans nothing and
    # closes: a retry cannot help, so this is a verdict, not a TemporaryFailure.
    client = ClamdClient(clamd.unix, stream_max_length=4 * clamd.stream_max_length)
    chunk = padding(64 * 1024)
    with caplog.at_level(logging.WARNING, logger="lightmail.antivirus.clamd"):
        verdict = await scan(client, INFECTED, *[chunk] * 24)
    assert verdict == Verdict(infected=False, virus=None, scanned=0, truncated=True)
    assert "StreamMaxLength" in caplog.text


async def test_ping(address: ListenAddress) -> None:
    await ClamdClient(address).ping()


async def test_sessions_run_concurrently(clamd: Clamd) -> None:
    client = ClamdClient(clamd.unix)
    verdicts = await asyncio.gather(*(scan(client, INFECTED if i % 2 else CLEAN) for i in range(8)))
    assert [verdict.infected for verdict in verdicts] == [i % 2 == 1 for i in range(8)]


def test_description_names_the_address(tmp_path: Path) -> None:
    assert ClamdClient(TcpAddress("127.0.0.1", 3310)).description == "clamd 127.0.0.1:3310"
    path = tmp_path / "clamd.sock"
    assert ClamdClient(UnixAddress(path)).description == f"clamd unix:{path}"


async def test_feed_after_finish_is_a_bug(clamd: Clamd) -> None:
    async with ClamdClient(clamd.unix).scan() as session:
        await session.finish()
        with pytest.raises(RuntimeError):
            await session.feed(b"late")


# -- clamd down or broken ---------------------------------------------------------


def closed_port() -> TcpAddress:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return TcpAddress("127.0.0.1", sock.getsockname()[1])


Operation = Callable[[ClamdClient], Awaitable[object]]
OPERATIONS: dict[str, Operation] = {
    "scan": lambda client: scan(client, CLEAN),
    "ping": lambda client: client.ping(),
}


@pytest.fixture(params=sorted(OPERATIONS))
def operation(request: pytest.FixtureRequest) -> Operation:
    return OPERATIONS[request.param]


async def assert_fails_within(
    client: ClamdClient, operation: Operation, seconds: float, text: str
) -> TemporaryFailure:
    started = time.monotonic()
    with pytest.raises(TemporaryFailure) as caught:
        await operation(client)
    assert time.monotonic() - started < seconds
    assert str(client.address) in str(caught.value)
    assert text in str(caught.value)
    return caught.value


async def test_closed_port_is_a_temporary_failure(operation: Operation) -> None:
    client = ClamdClient(closed_port(), connect_timeout=2)
    await assert_fails_within(client, operation, 1.0, "cannot connect")


async def test_missing_socket_is_a_temporary_failure(tmp_path: Path, operation: Operation) -> None:
    client = ClamdClient(UnixAddress(tmp_path / "no-such.sock"), connect_timeout=2)
    await assert_fails_within(client, operation, 1.0, "cannot connect")


@asynccontextmanager
async def fake_clamd(reply: bytes | None) -> AsyncIterator[TcpAddress]:
    """A TCP server that reads a whole request, answers ``reply`` and closes.

    With ``reply=None`` it reads nothing and never answers.
    """
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if reply is not None:
            request = b""
            while not (request.endswith(b"\0\0\0\0") or request == b"zPING\0"):
                data = await reader.read(65536)
                if not data:
                    break
                request += data
            writer.write(reply)
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield TcpAddress("127.0.0.1", server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
        for writer in writers:
            with suppress(OSError):
                await writer.wait_closed()


async def test_silent_clamd_times_out(operation: Operation) -> None:
    async with fake_clamd(None) as address:
        client = ClamdClient(address, read_timeout=0.5)
        await assert_fails_within(client, operation, 2.0, "no reply within 0.5 s")


async def test_clamd_that_stops_reading_times_out_on_write() -> None:
    async with fake_clamd(None) as address:
        client = ClamdClient(address, read_timeout=0.5, stream_max_length=1 << 30)
        chunk = bytes(1 << 20)

        async def flood() -> None:
            async with client.scan() as session:
                for _ in range(256):  # far more than loopback socket buffers hold
                    await session.feed(chunk)

        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match="write timed out"):
            await flood()
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (b"", "connection closed before the reply"),
        (b"stream: OK", "connection closed before the reply"),  # no \0 terminator
        (b"HELLO\0", "unexpected reply"),
        (b"stream: FOUND\0", "unexpected reply"),
        (b"x" * 10_000 + b"\0", "reply longer than"),
        (b"stream: Can't allocate memory ERROR\0", "could not scan: stream: Can't allocate"),
    ],
)
async def test_unexpected_reply_is_a_temporary_failure(reply: bytes, text: str) -> None:
    async with fake_clamd(reply) as address:
        client = ClamdClient(address, read_timeout=2)
        await assert_fails_within(client, OPERATIONS["scan"], 1.5, text)


async def test_ping_wants_pong() -> None:
    async with fake_clamd(b"PANG\0") as address:
        await assert_fails_within(ClamdClient(address), OPERATIONS["ping"], 1.5, "PING")
