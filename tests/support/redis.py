"""Redis for the tests: the machine's (127.0.0.1:6379), and private ones a test
stops and starts again (on the same port, as a restarted Redis would be)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.require import require
from tests.support.s3server import free_ports

SHARED_URL = "redis://127.0.0.1:6379/0"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def require_shared_redis() -> str:
    """The machine's Redis, as a ``[notify] url``."""
    require("Redis", listening(6379), "start Debian's redis-server on 127.0.0.1:6379")
    return SHARED_URL


@dataclass(frozen=True)
class Tls:
    """The server's certificate and key, and the CA that signed them (PEM files)."""

    cert: Path
    key: Path
    ca: Path


class RedisServer:
    """A ``redis-server`` of one test, in its own folder, with no persistence."""

    def __init__(
        self, binary: str, folder: Path, tls: Tls | None = None, password: str | None = None
    ) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_ports(1)[0]
        self.url = f"{'rediss' if tls else 'redis'}://localhost:{self.port}/0"
        self._options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._options += ["--dir", str(folder)]
        if tls is None:
            self._options += ["--port", str(self.port)]
        else:
            self._options += ["--port", "0", "--tls-port", str(self.port)]
            self._options += ["--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key)]
            self._options += ["--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"]
        if password is not None:
            self._options += ["--requirepass", password]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "redis.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                [self.binary, *self._options], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while not listening(self.port):
            assert self._process.poll() is None, (self.folder / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start listening"
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill it at once, as a crash or a lost network would look to its clients."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None


@contextmanager
def private_redis(
    folder: Path, *, started: bool = True, tls: Tls | None = None, password: str | None = None
) -> Iterator[RedisServer]:
    """A Redis of the test's own (over TLS only, with a password, when given), running
    unless not ``started``; stopped at the end."""
    binary = shutil.which("redis-server")
    require("redis-server", binary is not None, "install Debian's redis-server")
    assert binary is not None
    server = RedisServer(binary, folder, tls, password)
    if started:
        server.start()
    try:
        yield server
    finally:
        server.stop()


class CuttableLink:
    """A TCP forwarder to ``port`` on loopback that a test cuts (open connections are
    aborted and new ones refused, as a broken network between one node and Redis
    looks) and mends."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.port = 0
        self.url = ""
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()

    def cut(self) -> None:
        self._cut = True
        for writer in self._writers:
            writer.transport.abort()

    def mend(self) -> None:
        self._cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            for each in (writer, up_writer):
                each.transport.abort()
                self._writers.discard(each)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()


@asynccontextmanager
async def cuttable_link(server: RedisServer) -> AsyncIterator[CuttableLink]:
    link = CuttableLink(server.port)
    listener = await asyncio.start_server(link._accept, "127.0.0.1", 0)
    link.port = listener.sockets[0].getsockname()[1]
    link.url = f"redis://127.0.0.1:{link.port}/0"
    try:
        yield link
    finally:
        link.cut()
        listener.close()
        await listener.wait_closed()


ONE_WORKER = pytest.mark.xdist_group("shared-redis-and-galera")
"""The mark of the test modules that use the machine's Redis (its channels carry every
event of a database number) or the session's Galera cluster: under pytest-xdist they
all run in one worker process, one after another, so no two of them cross-talk on a
channel and the cluster is started once."""
