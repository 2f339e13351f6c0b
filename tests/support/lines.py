"""A line-based client for raw IMAP and LMTP conversations over loopback."""

from __future__ import annotations

import asyncio


class Client:
    """A line-based client that reads replies up to the one that ends them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def until(self, prefix: bytes, within: float = 30) -> list[bytes]:
        lines: list[bytes] = []
        async with asyncio.timeout(within):
            while not (line := await self.reader.readline()).startswith(prefix):
                assert line, lines
                lines.append(line)
        return [*lines, line]

    async def command(self, line: bytes, prefix: bytes) -> list[bytes]:
        self.writer.write(line + b"\r\n")
        return await self.until(prefix)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
