"""The channel between the supervisor and one worker: a unix socket pair carrying
JSON objects, each after its length (4 bytes, big-endian)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from typing import Any

from lightmail.errors import LightMailError

Message = dict[str, Any]

_LENGTH = struct.Struct("!I")
_MAX_MESSAGE = 1 << 20  # bytes; far above any message sent


class ChannelError(LightMailError):
    """The other side sent something that is not a message."""


class Channel:
    """One end of a worker's channel."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    async def receive(self) -> Message | None:
        """The next message; None once the other side has closed its end."""
        try:
            (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
            if length > _MAX_MESSAGE:
                raise ChannelError(f"message of {length} bytes")
            message = json.loads(await self._reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        if not isinstance(message, dict):
            raise ChannelError(f"not a message: {message!r}")
        return message

    def send(self, message: Message) -> None:
        """Queue ``message``; messages are small, so there is no waiting for the peer."""
        if self._writer.is_closing():
            return  # the other side is gone; whoever reads this channel learns it
        data = json.dumps(message, separators=(",", ":")).encode()
        self._writer.write(_LENGTH.pack(len(data)) + data)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
