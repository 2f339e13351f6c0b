"""A :class:`lightmail.net.stream.Connection` over in-memory buffers: bytes in,
bytes out, no socket. The connection, its protocol and the session under test
are the real ones; only the transport underneath is a buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lightmail.net.stream import Connection, ConnectionProtocol


class MemoryTransport(asyncio.Transport):
    """What the server writes collects in ``written``; closing ends the connection."""

    def __init__(self, protocol: ConnectionProtocol, peer: tuple[str, int]) -> None:
        super().__init__()
        self._protocol = protocol
        self._extra = {"peername": peer, "sockname": ("127.0.0.1", 143)}
        self.written = bytearray()
        self.wrote = asyncio.Event()  # set on each write
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data
        self.wrote.set()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class MemoryConnection:
    """A client's end: :meth:`send` what it types, :meth:`received` what came back."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.protocol = ConnectionProtocol()
        self.transport = MemoryTransport(self.protocol, peer)
        self.protocol.connection_made(self.transport)
        if self.protocol.connection is None:
            raise AssertionError("connection_made builds the connection")
        self.connection: Connection = self.protocol.connection
        self._seen = 0

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def end(self) -> None:
        """The client closes its side (EOF)."""
        self.protocol.eof_received()

    def received(self) -> bytes:
        """What the server wrote since the last call."""
        data = bytes(self.transport.written[self._seen :])
        self._seen = len(self.transport.written)
        return data

    async def reply(self, tag: bytes) -> bytes:
        """Wait (up to 5 seconds) until the tagged reply for ``tag`` arrived; everything
        written since the last call."""
        async with asyncio.timeout(5):
            while not any(
                line.startswith(tag + b" ")
                for line in self.transport.written[self._seen :].split(b"\r\n")
            ):
                self.transport.wrote.clear()
                await self.transport.wrote.wait()
        return self.received()
