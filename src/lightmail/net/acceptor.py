"""Accepting connections behind a load balancer that speaks the PROXY protocol.

With ``[server] proxy_networks`` set, a listening socket is served by a
:class:`ProxyAcceptor` instead of ``loop.create_server``: it accepts each
connection itself and, when the peer is inside those networks, reads the
PROXY header (:mod:`lightmail.net.proxy`) from the raw socket within
``header_timeout`` seconds, before anything else happens on it: before the
TLS handshake of an implicit-TLS port and before any greeting. Exactly the
header's bytes are read, so what follows it (a TLS ClientHello, a pipelined
command) stays in the kernel for the transport. The socket then goes to
``loop.connect_accepted_socket`` with the listener's TLS context, and the
protocol is built knowing the client's address the header carried.

A trusted peer that sends no header, a bad one or one too slowly is closed
with one log line giving the reason; no greeting is sent. A peer outside
``proxy_networks`` is served at once, as without PROXY: a header from it is
just bad input to the protocol behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import TypeAlias

from lightmail.metrics import CONNECTIONS_REFUSED
from lightmail.net.proxy import Endpoint, ProxyHeader, ProxyHeaderReader, ProxyProtocolError
from lightmail.net.stream import format_address, ip_of

log = logging.getLogger(__name__)

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
ProtocolFactory = Callable[[Endpoint | None], asyncio.BaseProtocol]
"""Builds a connection's protocol given the client address a PROXY header carried
(None: the socket's own peer is the client)."""

PROXY_HEADER_TIMEOUT = 5.0  # seconds a trusted proxy has to send its header
_ACCEPT_RETRY_DELAY = 1.0  # seconds to wait after accept() fails for lack of resources
_TRANSIENT_ACCEPT_ERRORS = (errno.ECONNABORTED, errno.EAGAIN, errno.EPROTO, errno.EINTR)


def is_trusted(networks: Sequence[Network], address: object) -> bool:
    """Whether ``address`` (a socket's peer name) is inside ``networks``."""
    ip = ip_of(address)
    return ip is not None and any(ip in network for network in networks)


async def read_proxy_header(sock: socket.socket, timeout: float) -> Endpoint | None:  # noqa: ASYNC109
    """Read one PROXY header from ``sock`` and nothing after it; the client's
    address, or None when the header carries none. Raises :class:`ProxyProtocolError`
    (the reason) when the header is bad, late or missing."""
    loop = asyncio.get_running_loop()
    reader = ProxyHeaderReader()
    try:
        async with asyncio.timeout(timeout):
            while not isinstance(event := reader.next_event(), ProxyHeader):
                data = await loop.sock_recv(sock, reader.wanted)
                if not data:
                    raise ProxyProtocolError("closed before a whole PROXY header came")
                reader.receive_data(data)
    except TimeoutError:
        raise ProxyProtocolError(f"no whole PROXY header within {timeout:g}s") from None
    except OSError as error:
        raise ProxyProtocolError(f"reading the PROXY header failed: {error}") from None
    return event.source


class ProxyAcceptor:
    """Accepts on one listening socket; the stand-in for an ``asyncio.Server``
    (``close``, ``wait_closed``) where ``proxy_networks`` is set."""

    def __init__(
        self,
        name: str,
        sock: socket.socket,
        networks: Sequence[Network],
        factory: ProtocolFactory,
        *,
        protocol: str,
        tls: ssl.SSLContext | None = None,
        tls_handshake_timeout: float = 15.0,
        header_timeout: float = PROXY_HEADER_TIMEOUT,
    ) -> None:
        self.name = name
        self.sock = sock
        sock.setblocking(False)  # as create_server does: a worker's inherited socket
        self.networks = tuple(networks)
        self._factory = factory
        self._refused = CONNECTIONS_REFUSED.labels(protocol, "proxy_header")
        self._tls = tls
        self._tls_handshake_timeout = tls_handshake_timeout
        self._header_timeout = header_timeout
        self._admitting: set[asyncio.Task[None]] = set()  # header reads and handshakes
        self._task = asyncio.get_running_loop().create_task(
            self._accept_loop(), name=f"{name}-accept"
        )

    def close(self) -> None:
        """Stop accepting and drop connections not admitted yet; the listening
        socket is closed once the accept loop has let go of it (:meth:`wait_closed`)."""
        self._task.cancel()
        for task in self._admitting:
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._task, *self._admitting, return_exceptions=True)
        self.sock.close()  # also when the loop was cancelled before it started

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._accept_forever(loop)
        finally:
            # Only now: the loop's pending accept no longer watches the descriptor.
            self.sock.close()

    async def _accept_forever(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                client, address = await loop.sock_accept(self.sock)
            except OSError as error:
                if error.errno in _TRANSIENT_ACCEPT_ERRORS:
                    continue
                log.error("%s: accepting failed: %s", self.name, error)
                await asyncio.sleep(_ACCEPT_RETRY_DELAY)  # out of descriptors or memory
                continue
            client.setblocking(False)
            task = loop.create_task(self._admit(client, address))
            self._admitting.add(task)
            task.add_done_callback(functools.partial(self._admitted, client))

    def _admitted(self, sock: socket.socket, task: asyncio.Task[None]) -> None:
        self._admitting.discard(task)
        if task.cancelled():  # at stop, maybe before the task ever ran
            sock.close()

    async def _admit(self, sock: socket.socket, address: object) -> None:
        source: Endpoint | None = None
        try:
            if is_trusted(self.networks, address):
                source = await read_proxy_header(sock, self._header_timeout)
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: self._factory(source),
                sock,
                ssl=self._tls,
                ssl_handshake_timeout=self._tls_handshake_timeout if self._tls else None,
            )
        except ProxyProtocolError as error:
            log.info("%s: closed %s from a proxy: %s", self.name, format_address(address), error)
            self._refused.inc()
            sock.close()
        except (OSError, ssl.SSLError, TimeoutError) as error:
            where = format_address(address)
            log.debug("%s: %s failed before the session: %r", self.name, where, error)
            with contextlib.suppress(OSError):
                sock.close()
