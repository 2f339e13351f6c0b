"""An HTTP listener for a node: uvicorn in the node's own event loop.

The sockets are bound here (TCP, port 0 allowed, or unix sockets; in a worker
process, inherited from the supervisor under the listener's name) and handed
to uvicorn, whose own signal handling is switched off: the runtime owns
SIGTERM and SIGINT and calls :meth:`HttpServer.stop`, which stops accepting,
lets requests in progress finish (up to a grace period) and closes the
connections. With a certificate and key, the listener speaks TLS only.

uvicorn times a keep-alive wait only while nothing arrives, so a client that
sends its request head a byte a second would hold its connection forever.
Here (:class:`_H11Protocol`) each request head must arrive whole within
``header_timeout`` of the connection opening or of the previous answer,
else the connection is closed (with a 408 if part of a head came). With more
than ``max_connections`` connections open, every request is answered 503
(uvicorn's ``limit_concurrency``) until some close: at the latest when their
header deadline passes. The admin API (:mod:`lightmail.api.server`) and
CalDAV (:mod:`lightmail.dav.server`) are such listeners.

With ``[server] proxy_networks`` set, the TCP sockets are not handed to uvicorn
but served by :class:`~lightmail.net.acceptor.ProxyAcceptor`, which reads a
load balancer's PROXY header first (before TLS) and then builds uvicorn's
protocol for the connection, with the client address the header carried as the
request's client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from lightmail.config import ListenAddress, TcpAddress, UnixAddress
from lightmail.net.acceptor import Network, ProxyAcceptor
from lightmail.net.listener import (
    ListenError,
    bind_tcp,
    listen_error,
    remove_stale_socket,
    socket_address,
    take_inherited,
)
from lightmail.net.proxy import Endpoint

log = logging.getLogger(__name__)

_GRACE = 10.0  # seconds requests in progress get at stop
_BACKLOG = 511
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _H11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a total deadline on each request head (set per
    server by :func:`_protocol_class`)."""

    header_timeout: ClassVar[float] = 30.0

    def __init__(self, *args: Any, relayed_for: Endpoint | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._relayed_for = relayed_for  # the client a PROXY header named

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._relayed_for is not None:
            self.client = (str(self._relayed_for[0]), self._relayed_for[1])
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a whole head arrived, or the end
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # before a pipelined request's head is handled, which disarms
        super().on_response_complete()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a head came: say why we close
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def _protocol_class(header_timeout: float) -> type[_H11Protocol]:
    return type("_H11Protocol", (_H11Protocol,), {"header_timeout": header_timeout})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the runtime handles signals and calls ApiServer.stop()


class HttpServer:
    """Serves ``app`` on ``addresses``; satisfies :class:`lightmail.runtime.Service`.

    ``name`` names the listener in logs and the sockets a supervisor binds for it;
    ``tls`` is a (certificate, key) pair of files, or None for plain HTTP;
    ``proxy_networks`` the load balancers that must send a PROXY header.
    """

    def __init__(
        self,
        name: str,
        addresses: tuple[ListenAddress, ...],
        app: ASGIApp,
        *,
        header_timeout: float,
        max_connections: int,
        tls: tuple[Path, Path] | None = None,
        proxy_networks: Sequence[Network] = (),
    ) -> None:
        self.name = name
        self.addresses = addresses
        self.app = app
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.tls = tls
        self.proxy_networks = tuple(proxy_networks)
        self.bound_addresses: list[ListenAddress] = []
        self._sockets: list[socket.socket] = []
        self._unix_paths: list[Path] = []
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._acceptors: list[ProxyAcceptor] = []

    async def start(self) -> None:
        try:
            for index, address in enumerate(self.addresses):
                inherited = take_inherited(self.name, index)  # bound by a supervisor
                if inherited is None:
                    self._sockets.append(await self._bind(address))
                else:
                    self._sockets.extend(inherited)
                    self.bound_addresses.extend(socket_address(sock) for sock in inherited)
        except BaseException:
            self._close_sockets()
            raise
        cert, key = self.tls or (None, None)
        relayed = [s for s in self._sockets if self.proxy_networks and s.family != socket.AF_UNIX]
        http = _protocol_class(self.header_timeout)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            ws="none",
            http=http,
            # uvicorn answers 503 once this many connections (or requests in
            # progress) are open, counting the one asking: so +1.
            limit_concurrency=self.max_connections + 1,
            backlog=_BACKLOG,
            timeout_graceful_shutdown=int(_GRACE),
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
        # uvicorn's own start and stop lines ("Started server process") are noise
        # next to ours; its warnings and errors still show.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        server = _Server(config)
        self._server = server
        direct = [sock for sock in self._sockets if sock not in relayed]
        self._task = asyncio.create_task(server.serve(sockets=direct), name=self.name)
        while not server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise ListenError(f"{self.name}: the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

        def relayed_protocol(client: Endpoint | None) -> asyncio.Protocol:
            return http(config, server.server_state, server.lifespan.state, relayed_for=client)

        self._acceptors = [
            ProxyAcceptor(
                self.name,
                sock,
                self.proxy_networks,
                relayed_protocol,
                protocol=self.name,
                tls=config.ssl,
            )
            for sock in relayed
        ]
        for address in self.bound_addresses:
            log.info("%s: listening on %s%s", self.name, address, self.where(address))

    def where(self, address: ListenAddress) -> str:
        """What the log line saying where this listens adds for ``address``."""
        return ""

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        acceptors, self._acceptors = self._acceptors, []
        for acceptor in acceptors:
            acceptor.close()
        for acceptor in acceptors:
            await acceptor.wait_closed()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), _GRACE + 5)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            self._close_sockets()
            self._server = self._task = None

    # -- binding ---------------------------------------------------------------------

    async def _bind(self, address: ListenAddress) -> socket.socket:
        try:
            if isinstance(address, UnixAddress):
                await remove_stale_socket(self.name, address)
                return self._bind_unix(address)
            return self._bind_tcp(address)
        except OSError as error:
            raise listen_error(self.name, address, error) from None

    def _bind_tcp(self, address: TcpAddress) -> socket.socket:
        sock = bind_tcp(self.name, address, every=False)[0]
        host, port = sock.getsockname()[:2]
        self.bound_addresses.append(TcpAddress(host, port))
        return sock

    def _bind_unix(self, address: UnixAddress) -> socket.socket:
        path = address.path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(path))
            path.chmod(0o660)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._unix_paths.append(path)
        self.bound_addresses.append(address)
        return sock

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                path.unlink()
        self._unix_paths = []
