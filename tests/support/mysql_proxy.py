"""A TCP proxy between LightMail and MariaDB that a test tells when to cut a connection.

It reads the MySQL client/server protocol just enough to find one moment
exactly: the COMMIT of a transaction that wrote a given table. Every packet
starts with a 3-byte little-endian payload length and a sequence number; a
command is a packet with sequence number 0, and COM_QUERY (0x03) carries the
statement text. The protocol is strictly request and reply on one connection,
so the first packet the server sends after the COMMIT command is COMMIT's
reply, and it is an OK packet (first payload byte 0x00, sequence number 1)
only when the server has committed.

- :meth:`MySQLProxy.lose_commit_reply`: forward that COMMIT, wait for the
  server's OK, and close both sides instead of passing the OK on: the
  transaction is committed and the client cannot know.
- :meth:`MySQLProxy.drop_commit`: close both sides instead of forwarding that
  COMMIT: the server rolls the transaction back, and the client cannot know.
- :attr:`MySQLProxy.refusing`: new connections are closed at once (the
  database looks down), until it is set back to False.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

_COM_QUERY = 0x03
_OK = 0x00


class _Cut(enum.Enum):
    LOSE_REPLY = "lose the reply"
    DROP = "drop the command"


@dataclass
class _Plan:
    cut: _Cut
    marker: bytes  # lower case: a statement containing it marks the transaction
    refuse_after: bool


def _packets(buffer: bytearray) -> list[bytes]:
    """Take the complete packets (header included) off the front of ``buffer``."""
    packets = []
    while len(buffer) >= 4:
        end = 4 + int.from_bytes(buffer[:3], "little")
        if len(buffer) < end:
            break
        packets.append(bytes(buffer[:end]))
        del buffer[:end]
    return packets


def _query(packet: bytes) -> bytes | None:
    """The statement of a COM_QUERY command packet, else None."""
    if packet[3] == 0 and len(packet) > 4 and packet[4] == _COM_QUERY:
        return packet[5:]
    return None


class _Link:
    """One client connection and its connection to the server."""

    def __init__(
        self,
        proxy: MySQLProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client_reader, self.client_writer = client
        self.server_reader, self.server_writer = server
        self.marked = False  # the open transaction ran a statement with the marker
        self.awaiting_reply = False  # COMMIT went through; its reply is the next packet

    async def run(self) -> None:
        upstream = asyncio.ensure_future(self._client_to_server())
        downstream = asyncio.ensure_future(self._server_to_client())
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upstream, downstream):
                task.cancel()
            self.abort()

    def abort(self) -> None:
        for writer in (self.client_writer, self.server_writer):
            writer.transport.abort()

    async def _client_to_server(self) -> None:
        buffer = bytearray()
        while data := await self.client_reader.read(65536):
            buffer += data
            for packet in _packets(buffer):
                if self._intercept_command(packet):
                    return
                self.server_writer.write(packet)
            await self.server_writer.drain()

    def _intercept_command(self, packet: bytes) -> bool:
        """Look at a packet going to the server; True: cut the connection instead."""
        statement = _query(packet)
        if statement is None:
            return False
        words = statement.strip().lower()
        plan = self.proxy.plan
        if plan is not None and plan.marker in words:
            self.marked = True
        if words not in (b"commit", b"rollback"):
            return False
        marked, self.marked = self.marked, False
        if plan is None or not marked or words != b"commit":
            return False
        if plan.cut is _Cut.DROP:
            self.proxy.fire()
            return True
        self.awaiting_reply = True
        return False

    async def _server_to_client(self) -> None:
        buffer = bytearray()
        while data := await self.server_reader.read(65536):
            buffer += data
            for packet in _packets(buffer):
                if self.awaiting_reply:
                    self.awaiting_reply = False
                    if packet[3] == 1 and packet[4] == _OK:
                        self.proxy.fire()
                        return
                self.client_writer.write(packet)
            await self.client_writer.drain()


class MySQLProxy:
    """Listens on a free loopback port and forwards to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.plan: _Plan | None = None
        self.refusing = False
        self.cuts = 0  # connections cut as planned
        self._cut = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in list(self._links):
            link.abort()

    def lose_commit_reply(self, marker: bytes, *, refuse_after: bool = False) -> None:
        """Cut the next connection whose transaction ran a statement containing
        ``marker`` once the server has committed it, before its OK reaches the
        client; then refuse new connections if ``refuse_after``."""
        self._cut.clear()
        self.plan = _Plan(_Cut.LOSE_REPLY, marker.lower(), refuse_after)

    def drop_commit(self, marker: bytes) -> None:
        """Cut the next connection whose transaction ran a statement containing
        ``marker`` when it sends COMMIT, which the server then never sees."""
        self._cut.clear()
        self.plan = _Plan(_Cut.DROP, marker.lower(), refuse_after=False)

    def fire(self) -> None:
        """A planned cut happens now (once per plan)."""
        if self.plan is not None and self.plan.refuse_after:
            self.refusing = True
        self.plan = None
        self.cuts += 1
        self._cut.set()

    async def next_cut(self) -> None:
        """Wait until the planned cut has happened."""
        await self._cut.wait()
        self._cut.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            server = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(self, (reader, writer), server)
        self._links.add(link)
        try:
            await link.run()
        except OSError:
            pass
        finally:
            self._links.discard(link)
