"""A clamd client: ``INSTREAM`` scans fed chunk by chunk, and ``PING``.

The delivery code opens one :class:`ClamdScan` per message, calls
:meth:`ClamdScan.feed` for each chunk while it streams the message to the blob
store, then :meth:`ClamdScan.finish`. Nothing holds the message whole.

Protocol (clamd(8), "INSTREAM"): ``zINSTREAM\\0``, then chunks of
``<length: 4 octets, big-endian><data>``, then a zero-length chunk; the reply is
one ``\\0``-terminated line: ``stream: OK``, ``stream: NAME FOUND`` or
``... ERROR``.

Size: clamd refuses a stream longer than its ``StreamMaxLength`` with
``INSTREAM size limit exceeded. ERROR``, closes the connection and scans
*nothing*. So the client has its own ``stream_max_length`` (default 25 MiB,
clamd's default) and stops sending there: clamd then scans the first part and
the :class:`Verdict` says ``truncated``. If clamd's limit is lower than ours
(a configuration mismatch) clamd still answers "size limit exceeded"; that is
not a :class:`TemporaryFailure`, because a retry would fail the same way for
ever, so the verdict is ``infected=False, truncated=True, scanned=0`` (honest:
nothing was scanned, which the delivery policy treats like any truncated scan)
and a warning asks the operator to align the two limits.

Every network problem (refused, missing socket, reset, a timeout on connect,
write or read, an unexpected reply) raises :class:`TemporaryFailure` naming the
clamd address. Every await is bounded: ``connect_timeout`` for connecting,
``read_timeout`` for each write and for waiting on a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, assert_never

from lightmail.config import ListenAddress, TcpAddress, UnixAddress
from lightmail.errors import TemporaryFailure

log = logging.getLogger(__name__)

DEFAULT_STREAM_MAX_LENGTH = 25 * 1024 * 1024  # clamd's own default StreamMaxLength
_CHUNK = 64 * 1024  # octets per INSTREAM chunk
_MAX_REPLY = 4096  # a reply is one short line; anything longer is not clamd
_EARLY_REPLY_TIMEOUT = 1.0  # seconds to look for a reply after a failed write
_SIZE_LIMIT_REPLY = "INSTREAM size limit exceeded. ERROR"
_END = struct.pack(">I", 0)


@dataclass(frozen=True, slots=True)
class Verdict:
    infected: bool
    virus: str | None  # the signature name as clamd reports it (".UNOFFICIAL" for our own)
    scanned: int  # octets clamd scanned (<= stream_max_length)
    truncated: bool  # the message was longer than clamd accepts; only a first part was scanned


class ClamdClient:
    """Talks to one clamd; cheap to keep for the process lifetime (it holds no socket)."""

    def __init__(
        self,
        address: ListenAddress,
        *,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        stream_max_length: int = DEFAULT_STREAM_MAX_LENGTH,
    ) -> None:
        if stream_max_length <= 0:
            raise ValueError(f"stream_max_length must be positive, got {stream_max_length}")
        self.address = address
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.stream_max_length = stream_max_length
        self.description = f"clamd {address}"

    def scan(self) -> ClamdScan:
        """One ``INSTREAM`` session; use it as ``async with client.scan() as scan:``."""
        return ClamdScan(self)

    async def ping(self) -> None:
        """``PING`` -> ``PONG``; :class:`TemporaryFailure` for anything else."""
        connection = await _Connection.open(self)
        try:
            await connection.send(b"zPING\0")
            reply = await connection.reply()
        finally:
            connection.close()
        if reply != "PONG":
            raise TemporaryFailure(f"{self.description}: unexpected reply to PING: {reply!r}")


class ClamdScan:
    """One ``INSTREAM`` scan: ``feed`` chunks, then ``finish`` once.

    Leaving the ``async with`` block closes the connection whatever happened;
    a scan not finished is simply abandoned (clamd drops it).
    """

    def __init__(self, client: ClamdClient) -> None:
        self._client = client
        self._connection: _Connection | None = None
        self._sent = 0  # octets of message data sent
        self._truncated = False  # fed more than stream_max_length
        self._finished = False

    async def __aenter__(self) -> Self:
        if self._connection is not None or self._finished:
            raise RuntimeError("a ClamdScan is entered once")
        connection = await _Connection.open(self._client)
        try:
            await connection.send(b"zINSTREAM\0")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        self._finished = True
        if connection is not None:
            connection.close()

    async def feed(self, chunk: bytes) -> None:
        """Send ``chunk``; past ``stream_max_length`` the rest is counted, not sent."""
        connection = self._open_connection()
        room = self._client.stream_max_length - self._sent
        if len(chunk) > room:
            self._truncated = True
        data = memoryview(chunk)[: max(room, 0)]
        if not data:
            return
        frames = bytearray()
        for start in range(0, len(data), _CHUNK):
            piece = data[start : start + _CHUNK]
            frames += struct.pack(">I", len(piece))
            frames += piece
        await connection.send(frames)
        self._sent += len(data)

    async def finish(self) -> Verdict:
        """End the stream and return clamd's verdict."""
        connection = self._open_connection()
        self._finished = True
        await connection.send(_END)
        reply = await connection.reply()
        return self._verdict(reply)

    def _verdict(self, reply: str) -> Verdict:
        description = self._client.description
        if reply == _SIZE_LIMIT_REPLY:
            log.warning(
                "%s refused a %d-octet stream (its StreamMaxLength is lower than our "
                "stream_max_length %d) and scanned nothing; lower "
                "stream_max_length or raise clamd's StreamMaxLength",
                description,
                self._sent,
                self._client.stream_max_length,
            )
            return Verdict(infected=False, virus=None, scanned=0, truncated=True)
        if reply == "stream: OK":
            return Verdict(
                infected=False, virus=None, scanned=self._sent, truncated=self._truncated
            )
        found = reply.removeprefix("stream: ") if reply.startswith("stream: ") else ""
        if found.endswith(" FOUND"):
            name = found.removesuffix(" FOUND").strip()
            if name:
                return Verdict(
                    infected=True, virus=name, scanned=self._sent, truncated=self._truncated
                )
        if reply.endswith(" ERROR"):
            raise TemporaryFailure(f"{description} could not scan: {reply}")
        raise TemporaryFailure(f"{description}: unexpected reply to INSTREAM: {reply!r}")

    def _open_connection(self) -> _Connection:
        if self._connection is None or self._finished:
            raise RuntimeError("ClamdScan used outside its async with block or after finish()")
        return self._connection


class _Connection:
    """One non-blocking socket to clamd; every await bounded, every error a TemporaryFailure.

    Plain sockets rather than asyncio streams: when clamd answers early and closes
    (size limit exceeded), a write fails with EPIPE, and the reply must still be
    read from the socket, which a stream transport closes on the first write error.
    """

    def __init__(self, client: ClamdClient, sock: socket.socket) -> None:
        self._client = client
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._early_reply: str | None = None  # read after a failed write

    @classmethod
    async def open(cls, client: ClamdClient) -> _Connection:
        try:
            async with _in_time(
                client.connect_timeout, f"{client.description}: no connection within"
            ):
                sock = await _connect(client.address)
        except OSError as exc:
            raise TemporaryFailure(f"{client.description}: cannot connect: {_reason(exc)}") from exc
        return cls(client, sock)

    async def send(self, data: bytes | bytearray) -> None:
        """Write ``data``; dropped once clamd has answered early (see ``_early_reply``)."""
        if self._early_reply is not None:
            return
        description = self._client.description
        try:
            async with _in_time(self._client.read_timeout, f"{description}: write timed out after"):
                await self._loop.sock_sendall(self._sock, data)
        except OSError as exc:
            # clamd answers "size limit exceeded" and closes while we are still
            # writing: keep its reply for reply(), which is what the caller wants.
            self._early_reply = await self._reply_if_any()
            if self._early_reply is None:
                raise TemporaryFailure(f"{description}: write failed: {_reason(exc)}") from exc

    async def reply(self) -> str:
        """Read one ``\\0``-terminated reply line."""
        if self._early_reply is not None:
            return self._early_reply
        description = self._client.description
        try:
            async with _in_time(self._client.read_timeout, f"{description}: no reply within"):
                return await self._read_reply()
        except OSError as exc:
            raise TemporaryFailure(f"{description}: read failed: {_reason(exc)}") from exc

    async def _read_reply(self) -> str:
        received = bytearray()
        while b"\0" not in received:
            if len(received) > _MAX_REPLY:
                raise TemporaryFailure(
                    f"{self._client.description}: reply longer than {_MAX_REPLY} octets"
                )
            data = await self._loop.sock_recv(self._sock, _MAX_REPLY)
            if not data:
                raise TemporaryFailure(
                    f"{self._client.description}: connection closed before the reply "
                    f"(got {bytes(received[:80])!r})"
                )
            received += data
        line = received[: received.index(b"\0")]
        return line.decode("utf-8", "replace").strip()

    async def _reply_if_any(self) -> str | None:
        """A reply already sent by clamd, after a failed write; ``None`` if there is none."""
        try:
            async with asyncio.timeout(min(self._client.read_timeout, _EARLY_REPLY_TIMEOUT)):
                return await self._read_reply()
        except (TimeoutError, OSError, TemporaryFailure):
            return None

    def close(self) -> None:
        self._sock.close()


@contextlib.asynccontextmanager
async def _in_time(seconds: float, failure: str) -> AsyncIterator[None]:
    """Bound the block to ``seconds``; past them, ``TemporaryFailure("<failure> <seconds> s")``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise TemporaryFailure(f"{failure} {seconds:g} s") from None


async def _connect(address: ListenAddress) -> socket.socket:
    """A connected non-blocking socket; the caller bounds the time."""
    loop = asyncio.get_running_loop()
    match address:
        case UnixAddress(path):
            targets: list[tuple[int, Any]] = [(socket.AF_UNIX, str(path))]
        case TcpAddress(host, port):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            targets = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
        case _:
            assert_never(address)
    error: OSError = OSError(f"no address for {address}")
    for family, target in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, target)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
