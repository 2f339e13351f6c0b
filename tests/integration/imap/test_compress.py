"""COMPRESS=DEFLATE (RFC 4978) over a raw socket, on both backends; mbsync, which
turns it on when offered, is tests/integration/imap/test_mbsync.py."""

from __future__ import annotations

import asyncio
import zlib

from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_commands import MESSAGE, deliver
from tests.integration.imap.test_hostile import Wire, connect, login


class Deflated:
    """The client's side of a compressed connection: lines out, lines in."""

    def __init__(self, wire: Wire) -> None:
        self.sock = wire.sock
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self.pending = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH))

    def line(self) -> bytes:
        while b"\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.pending += self.inflate.decompress(chunk)
        line, self.pending = self.pending.split(b"\r\n", 1)
        return line

    def until(self, tag: bytes) -> list[bytes]:
        lines = [self.line()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        return lines


async def test_compress_deflate_after_login(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user.id, user.address, MESSAGE)

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b"P COMPRESS DEFLATE\r\n")  # a command of the authenticated state
            assert wire.line().startswith(b"P BAD ")
            wire.send(b"C CAPABILITY\r\n")
            assert b"COMPRESS=DEFLATE" not in wire.line()
            wire.until(b"C")
            login(wire, user)
            wire.send(b"C CAPABILITY\r\n")
            assert b" COMPRESS=DEFLATE" in wire.line()
            wire.until(b"C")
            wire.send(b"X COMPRESS GZIP\r\n")
            assert wire.line().startswith(b"X BAD ")
            wire.send(b"Z COMPRESS deflate\r\n")
            assert wire.line() == b"Z OK DEFLATE active"  # sent as it is

            deflated = Deflated(wire)
            deflated.send(b"S SELECT INBOX\r\n")
            assert deflated.until(b"S")[-1].startswith(b"S OK [READ-WRITE]")
            deflated.send(b"F FETCH 1 BODY.PEEK[]\r\n")
            lines = deflated.until(b"F")
            assert lines[0] == b"* 1 FETCH (BODY[] {%d}" % len(MESSAGE)
            assert b"\r\n".join(lines[:-1]).endswith(b")")
            assert MESSAGE.rstrip(b"\r\n") in b"\r\n".join(lines)
            deflated.send(b"C CAPABILITY\r\n")
            assert b"COMPRESS" not in deflated.line()
            deflated.until(b"C")
            deflated.send(b"Y COMPRESS DEFLATE\r\n")  # once is all
            assert deflated.line() == b"Y BAD DEFLATE is active already"
            deflated.send(b"L LOGOUT\r\n")
            assert deflated.until(b"L") == [b"* BYE Logging out", b"L OK completed"]

    await asyncio.to_thread(conversation)


async def test_a_corrupt_stream_after_compress_ends_the_session(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"Z COMPRESS DEFLATE\r\n")
            assert wire.line() == b"Z OK DEFLATE active"
            wire.send(b"S SELECT INBOX\r\n")  # not compressed: not DEFLATE either
            assert wire.closed()

    await asyncio.to_thread(conversation)
