"""One client connection: bounded reads, drained writes, timeouts and STARTTLS.

The protocol receivers (IMAP, POP3, LMTP) are sans-I/O objects; the one
driver they share (:mod:`lightmail.net.driver`) owns one :class:`Connection`
and loops ``read`` → feed the receiver → ``write`` the replies. This module is
that driver's only view of the socket.

It sits on an :class:`asyncio.Protocol` of its own rather than a
``StreamReader`` so that it controls the receive buffer:

- the buffer is bounded: above ``high_water`` bytes the transport stops
  reading (the kernel's window then pushes back on the client) and resumes
  once a ``read`` drains it below ``high_water // 4``; a client that floods
  cannot grow memory beyond ``high_water`` plus one transport read;
- :meth:`Connection.start_tls` drops whatever was received in plaintext
  before the handshake, so bytes a client (or a man in the middle) pipelined
  after ``STARTTLS`` never reach the session as if they had come over TLS
  (RFC 3501 §6.2.1, RFC 2595 §3.1, CVE-2011-0411);
- :meth:`Connection.start_compression` turns on DEFLATE both ways (IMAP's
  COMPRESS, RFC 4978), above TLS: what arrives is inflated into the same
  bounded buffer, at most up to ``high_water`` at a time, so a small
  compressed input that inflates to gigabytes (a "zip bomb") is read as
  slowly as the session consumes it; what is written is deflated and
  flushed (``Z_SYNC_FLUSH``) with each write, so every reply reaches the
  client whole.

Errors are subclasses of :class:`StreamError` (itself a ``ConnectionError``):
the peer went away, stayed silent or stopped reading. They are not bugs; the
session ends and the connection is closed.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import os
import ssl
import zlib
from collections.abc import Callable
from typing import TypeAlias, TypeVar, cast

log = logging.getLogger(__name__)

_T = TypeVar("_T")

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

READ_SIZE = 64 * 1024  # most bytes one read() returns
HIGH_WATER = 256 * 1024  # receive buffer size at which reading pauses
CLOSE_TIMEOUT = 5.0  # seconds a graceful close may take before the connection is aborted
# Our DEFLATE compressor (RFC 4978 lets each side choose): level 1, the cheapest, a
# 4 KiB window and memLevel 5: about 32 KiB of zlib state per compressing connection
# (zlib's deflate takes 2**(window_bits + 2) + 2**(mem_level + 9) bytes). The client's
# stream is inflated with the full 32 KiB window, which its compressor may use.
DEFLATE_LEVEL = 1
DEFLATE_WINDOW_BITS = 12
DEFLATE_MEM_LEVEL = 5


class StreamError(ConnectionError):
    """The connection cannot carry on: the peer closed, stalled or failed TLS."""


class ConnectionClosed(StreamError):
    """The connection is closed (by the peer, by us, or after an error)."""


class IdleTimeout(StreamError):
    """Nothing arrived within the read timeout; the connection is still open."""


class DeadlineExceeded(IdleTimeout):
    """The total time allowed for a phase (logging in, one command, DATA) ran out,
    however much the peer sent meanwhile; the connection is still open."""


class WriteTimeout(StreamError):
    """The peer did not read what we wrote within the timeout; the connection was aborted."""


class ShutdownRequested(Exception):
    """The server is stopping; raised instead of reading a new request."""


class Woken(Exception):
    """A read that may be woken (:meth:`Connection.read_request`) was, by
    :meth:`Connection.wake`, before anything arrived."""


class TlsHandshakeFailed(StreamError):
    """The TLS handshake failed or timed out; the connection was closed."""


def _session_id() -> str:
    """8 characters of base32 (40 random bits): short enough for every log line."""
    return base64.b32encode(os.urandom(5)).decode("ascii").lower()


def format_address(name: object) -> str:
    """``203.0.113.5:51234``, ``[2001:db8::1]:51234`` or ``unix`` / ``unix:PATH``."""
    if isinstance(name, tuple) and len(name) >= 2:
        host, port = str(name[0]), name[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(name, bytes):  # an abstract or non-UTF-8 unix socket name
        name = name.decode("utf-8", "backslashreplace")
    return f"unix:{name}" if isinstance(name, str) and name else "unix"


def ip_of(name: object) -> IPAddress | None:
    """The peer's address, IPv4-mapped IPv6 (``::ffff:192.0.2.1``) as IPv4; None for unix."""
    if not (isinstance(name, tuple) and len(name) >= 2):
        return None
    try:
        address = ipaddress.ip_address(str(name[0]))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ConnectionProtocol(asyncio.Protocol):
    """The asyncio side of a :class:`Connection`; listeners pass it to ``create_server``.

    It buffers what arrives and wakes the one reader, and tracks write pauses
    and the end of the connection. ``on_connection`` receives the new
    :class:`Connection` from ``connection_made``.
    """

    transport: asyncio.Transport  # set by connection_made

    def __init__(
        self,
        on_connection: Callable[[Connection], None] | None = None,
        *,
        high_water: int = HIGH_WATER,
    ) -> None:
        self._on_connection = on_connection
        self.high_water = high_water
        self.buffer = bytearray()
        self.connection: Connection | None = None
        self.reading_paused = False
        self.eof = False
        self.lost = False
        self.tls = False  # eof_received's answer must be False over TLS
        self._inflate: zlib._Decompress | None = None  # after start_inflating
        self._compressed = b""  # received, not yet inflated (the buffer was full)
        self._read_waiter: asyncio.Future[bool] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self.woken = False  # by Connection.wake, and not yet seen by a read

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.connection = Connection(self.transport, self)
        if self._on_connection is not None:
            self._on_connection(self.connection)

    def data_received(self, data: bytes) -> None:
        if self._inflate is None:
            self.buffer += data
        else:
            self._compressed += data
            self.inflate()
        if (len(self.buffer) >= self.high_water or self._compressed) and not self.reading_paused:
            self.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        # Over plain TCP keep our half open, so a client that shuts down its
        # sending side after its last command still gets the reply.
        return not self.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.eof = True
        self._wake_reader()
        _settle(self._write_waiter, None)
        _settle(self._lost_waiter, None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    @property
    def writing_paused(self) -> bool:
        """The transport's write buffer is above its high-water mark."""
        return self._writing_paused

    def resume_writing(self) -> None:
        self._writing_paused = False
        _settle(self._write_waiter, None)

    # --- used by Connection ----------------------------------------------

    def start_inflating(self) -> None:
        """From now on what arrives is a raw DEFLATE stream (RFC 1951, RFC 4978)."""
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)

    def inflate(self) -> None:
        """Inflate what is pending into the buffer, up to ``high_water`` bytes of it.

        A stream that is not DEFLATE, or that ends (a final block), ends the
        connection: IMAP has no way back to uncompressed.
        """
        inflate = self._inflate
        if inflate is None:
            return
        while self._compressed and len(self.buffer) < self.high_water:
            try:
                data = inflate.decompress(self._compressed, self.high_water - len(self.buffer))
            except zlib.error as error:
                log.info("%s: compressed stream is corrupt: %s", self._id(), error)
                self._compressed = b""
                self.transport.abort()
                return
            self._compressed = inflate.unconsumed_tail
            self.buffer += data
            if inflate.eof:
                log.info("%s: client ended its compressed stream", self._id())
                self._compressed = b""
                self.transport.close()
                return
            if not data:
                break

    def _id(self) -> str:
        return self.connection.id if self.connection is not None else "-"

    def pause_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.pause_reading()
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()

    async def wait_readable(self, until: float) -> bool:
        """Wait for bytes, the end of the stream or a wake-up: True when one came,
        False when the event loop's clock reached ``until`` first. One timer on
        the waiter, cheaper than an ``asyncio.timeout`` around it for every read."""
        if self._read_waiter is not None:
            raise RuntimeError("another task is already reading this connection")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._read_waiter = waiter
        timer = loop.call_at(until, _settle, waiter, False)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._read_waiter = None

    async def wait_writable(self) -> None:
        """Return once the transport's write buffer is below its high-water mark."""
        while self._writing_paused and not self.lost:
            if self._write_waiter is None or self._write_waiter.done():
                self._write_waiter = asyncio.get_running_loop().create_future()
            # Shared by concurrent writers; shielded so one writer's timeout
            # does not cancel the others' wait.
            await asyncio.shield(self._write_waiter)

    async def wait_lost(self) -> None:
        if not self.lost:
            self._lost_waiter = self._lost_waiter or asyncio.get_running_loop().create_future()
            await asyncio.shield(self._lost_waiter)

    def wake(self) -> None:
        self.woken = True
        self._wake_reader()

    def _wake_reader(self) -> None:
        _settle(self._read_waiter, True)


def _settle(waiter: asyncio.Future[_T] | None, value: _T) -> None:
    """Give ``waiter`` its result, unless it has one or there is none."""
    if waiter is not None and not waiter.done():
        waiter.set_result(value)


class Connection:
    """One client connection, driven by one session task.

    Built by the listener; sessions use :meth:`read_request` (which raises
    :class:`ShutdownRequested` once the listener called :meth:`request_shutdown`,
    so that they say BYE), :meth:`read`, :meth:`write`, :meth:`start_tls` and
    :meth:`close`. Only one task may read at a time: whatever else a session waits
    for (IDLE's change events) wakes that read with :meth:`wake`, so a connection
    costs one task, not one per thing it waits for.
    """

    def __init__(self, transport: asyncio.Transport, protocol: ConnectionProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False
        self.id = _session_id()
        peername = transport.get_extra_info("peername")
        self.peer: str = format_address(peername) if isinstance(peername, tuple) else "unix"
        self.peer_ip: IPAddress | None = ip_of(peername)
        self.local: str = format_address(transport.get_extra_info("sockname"))
        self.proxy: str | None = None  # the load balancer's address, after relayed_for
        self.is_tls: bool = transport.get_extra_info("sslcontext") is not None
        protocol.tls = self.is_tls
        self.shutdown_requested = False  # by the listener when the server stops
        self._deflate: zlib._Compress | None = None  # after start_compression

    def relayed_for(self, client: tuple[IPAddress, int]) -> None:
        """The peer is a trusted proxy whose PROXY header said ``client`` (address,
        port) connected: that is the peer from now on, for logs, limits and
        policy; :attr:`proxy` keeps the proxy's own address."""
        self.proxy = self.peer
        name = (str(client[0]), client[1])
        self.peer, self.peer_ip = format_address(name), ip_of(name)

    def __repr__(self) -> str:
        tls = " tls" if self.is_tls else ""
        return f"<Connection {self.id} {self.peer}{tls}>"

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read (at most the high-water mark plus one read)."""
        return len(self._protocol.buffer)

    @property
    def at_eof(self) -> bool:
        """The peer closed its side and everything it sent has been read."""
        return self._protocol.eof and not self._protocol.buffer

    @property
    def is_closing(self) -> bool:
        return self._closed or self._protocol.lost or self._transport.is_closing()

    # The timeouts below are parameters (ASYNC109) because each maps to its own
    # error and reaction: an idle client gets a BYE, a stalled one is aborted.

    def request_shutdown(self) -> None:
        """The server is stopping: the pending or next :meth:`read_request` raises
        :class:`ShutdownRequested` unless bytes are waiting."""
        self.shutdown_requested = True
        self._protocol.wake()

    def wake(self) -> None:
        """Make the pending or next :meth:`read_request` that may be woken raise
        :class:`Woken` unless bytes are waiting (reads that may not be woken go on)."""
        self._protocol.wake()

    async def read(
        self,
        timeout: float,  # noqa: ASYNC109
        max_bytes: int = READ_SIZE,
        *,
        deadline: float | None = None,
        wakeable: bool = False,
    ) -> bytes:
        """The next bytes received (1 to ``max_bytes``), or ``b""`` at end of stream.

        End of stream is the peer closing or resetting the connection, or our
        own close. Raises :class:`IdleTimeout` when nothing arrives within
        ``timeout`` seconds (the connection stays open, e.g. to send BYE).
        ``deadline`` (the event loop's clock) bounds the total time, not just the
        silence: a peer that trickles a byte at a time gets :class:`DeadlineExceeded`
        once it has passed, even if bytes are waiting. With ``wakeable``, a
        :meth:`wake` before bytes arrive raises :class:`Woken`.
        Cancel-safe: a cancelled read loses no data.
        """
        protocol = self._protocol
        now = asyncio.get_running_loop().time()
        until, by_deadline = now + timeout, False
        if deadline is not None:
            if deadline <= now:
                raise DeadlineExceeded("the time allowed ran out")
            if deadline < until:
                until, by_deadline = deadline, True
        if not protocol.buffer and not protocol.eof:
            while not (protocol.buffer or protocol.eof or (wakeable and protocol.woken)):
                if not await protocol.wait_readable(until):
                    if by_deadline:
                        raise DeadlineExceeded("the time allowed ran out")
                    raise IdleTimeout(f"nothing received for {timeout:g} seconds")
            if not protocol.buffer and not protocol.eof:
                protocol.woken = False
                raise Woken
        if len(protocol.buffer) <= max_bytes:
            data = bytes(protocol.buffer)
            protocol.buffer.clear()
        else:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]  # O(1): CPython moves a bytearray's start
        protocol.inflate()  # what waited for room, when compressed
        if protocol.reading_paused and len(protocol.buffer) <= protocol.high_water // 4:
            protocol.resume_reading()
        return data

    async def read_request(
        self,
        timeout: float,  # noqa: ASYNC109
        *,
        deadline: float | None = None,
    ) -> bytes:
        """:meth:`read`, unless the server is stopping first: then ShutdownRequested,
        so the session can say goodbye in its protocol (BYE, 421) and end; or
        :class:`Woken` after :meth:`wake`. Bytes that are waiting win over both."""
        if self.shutdown_requested and not self._protocol.buffer:
            raise ShutdownRequested
        try:
            return await self.read(timeout, deadline=deadline, wakeable=True)
        except Woken:
            if self.shutdown_requested:
                raise ShutdownRequested from None
            raise

    async def write(self, data: bytes, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Send ``data`` and wait until the transport's buffer has room again.

        Raises :class:`ConnectionClosed` when the connection is closed, and
        :class:`WriteTimeout` (after aborting the connection) when the peer
        reads nothing for ``timeout`` seconds. Write large replies in chunks:
        each call buffers all of ``data`` before waiting.
        """
        if self.is_closing:
            raise ConnectionClosed("connection closed")
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self._transport.write(data)
        if not self._protocol.writing_paused:  # the usual case: no wait, no timer
            if self._protocol.lost:
                raise ConnectionClosed("connection closed by peer")
            return
        try:
            async with asyncio.timeout(timeout):
                await self._protocol.wait_writable()
        except TimeoutError:
            self._abort()
            raise WriteTimeout(f"peer read nothing for {timeout:g} seconds") from None
        if self._protocol.lost:
            raise ConnectionClosed("connection closed by peer")

    async def start_tls(self, context: ssl.SSLContext, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Upgrade to TLS as the server side; call right after sending the go-ahead reply.

        Bytes received before the handshake are discarded: they came in
        plaintext after the STARTTLS command (RFC 3501 §6.2.1, RFC 2595 §3.1;
        the CVE-2011-0411 injection). The caller must equally drop anything its
        own protocol object still buffers. Raises :class:`TlsHandshakeFailed`
        (the connection is then closed) or :class:`ConnectionClosed`.
        """
        if self.is_tls:
            raise RuntimeError("the connection already uses TLS")
        if self.is_closing:
            raise ConnectionClosed("connection closed")
        protocol = self._protocol
        self._discard_buffered("in plaintext after STARTTLS")
        protocol.eof = False  # nothing to read yet over TLS; a real EOF ends the handshake
        protocol.tls = True
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport,
                protocol,
                context,
                server_side=True,
                ssl_handshake_timeout=timeout,
            )
        except (OSError, TimeoutError, asyncio.CancelledError) as error:
            self._lose()
            if isinstance(error, asyncio.CancelledError):
                raise
            raise TlsHandshakeFailed(f"TLS handshake failed: {error}") from None
        if transport is None:  # the peer closed during the handshake
            self._lose()
            raise ConnectionClosed("connection closed during the TLS handshake")
        # loop.start_tls switched the socket to the TLS protocol before its first
        # await, so the buffer now holds only decrypted bytes. It also resumed
        # reading if a full buffer had paused it.
        protocol.reading_paused = False
        protocol.transport = self._transport = transport
        self.is_tls = True

    @property
    def is_compressed(self) -> bool:
        return self._deflate is not None

    def start_compression(self) -> None:
        """DEFLATE both ways from here on (RFC 4978); call once the go-ahead reply
        was written. Bytes received before it were sent before the client saw it,
        which RFC 4978 forbids: they are dropped, as after STARTTLS."""
        if self._deflate is not None:
            raise RuntimeError("the connection is compressed already")
        self._discard_buffered("before COMPRESS was answered")
        self._deflate = zlib.compressobj(
            DEFLATE_LEVEL, zlib.DEFLATED, -DEFLATE_WINDOW_BITS, DEFLATE_MEM_LEVEL
        )
        self._protocol.start_inflating()

    def _discard_buffered(self, sent: str) -> None:
        """Drop what was received and not read: the client sent it too early."""
        protocol = self._protocol
        if protocol.buffer:
            log.info("%s: discarded %d bytes sent %s", self.id, len(protocol.buffer), sent)
            protocol.buffer.clear()

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:  # noqa: ASYNC109
        """Flush and close; abort if that takes more than ``timeout`` seconds. Idempotent."""
        self._closed = True
        if not self._transport.is_closing():
            self._transport.close()
        try:
            async with asyncio.timeout(timeout):
                await self._protocol.wait_lost()
        except TimeoutError:
            log.debug("%s: close timed out; aborting", self.id)
            self._abort()
            try:
                async with asyncio.timeout(1):
                    await self._protocol.wait_lost()
            except TimeoutError:
                self._protocol.connection_lost(None)

    def refuse(self, line: bytes | None) -> None:
        """Send ``line`` (if any) and close; for over-limit connections."""
        self._closed = True
        if line:
            self._transport.write(line)
        self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping anything not yet sent."""
        self._abort()

    def _abort(self) -> None:
        self._closed = True
        self._transport.abort()

    def _lose(self) -> None:
        """After a failed handshake: the old transport is gone and will not report it."""
        self._abort()
        self._protocol.connection_lost(None)
