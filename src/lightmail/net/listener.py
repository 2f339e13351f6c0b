"""Listening sockets for one protocol: TCP, unix sockets, implicit TLS, limits, shutdown.

A :class:`Listener` binds its addresses, wraps each accepted socket in a
:class:`~lightmail.net.stream.Connection` and runs the protocol's handler on it
as its own task. It satisfies :class:`lightmail.runtime.Service`.

Limits are checked once a connection is made (for implicit TLS, after the
handshake, which is bounded by ``tls_handshake_timeout``): over
``max_connections`` in total or ``max_per_ip`` from one client (one IPv4
address, or one IPv6 /64, the block one subscriber usually holds) the
connection gets the optional ``refuse`` line and is closed. Unix socket
clients count only toward ``max_connections``.

Connections accepted, open and refused are counted per ``protocol`` (IMAP and
IMAPS listeners both count as ``imap``) in :mod:`lightmail.metrics`.

In a worker process (:mod:`lightmail.workers`) the supervisor has bound the
sockets already (:func:`bind_tcp`, :func:`bind_unix`); :func:`inherit_sockets`
hands them to this process's listeners, which then serve on them instead of
binding, and :func:`count_across_node` makes their limiters count every
worker's connections.

With ``proxy_networks`` (``[server] proxy_networks``), TCP sockets are served
by a :class:`~lightmail.net.acceptor.ProxyAcceptor`: a peer in those networks
(a load balancer) sends a PROXY header first, before the TLS handshake, and
the client address it carries is the connection's peer before the limits
above are checked, so ``max_per_ip`` counts clients, not the load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import ssl
import stat
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lightmail.config import ImapSettings, ListenAddress, Pop3Settings, TcpAddress, UnixAddress
from lightmail.errors import LightMailError
from lightmail.metrics import CONNECTIONS_ACCEPTED, CONNECTIONS_OPEN, CONNECTIONS_REFUSED
from lightmail.net.acceptor import PROXY_HEADER_TIMEOUT, Network, ProxyAcceptor
from lightmail.net.limits import SessionLimiter, SharedCounts, connection_limiter
from lightmail.net.proxy import Endpoint
from lightmail.net.stream import Connection, ConnectionProtocol, StreamError

log = logging.getLogger(__name__)

Handler = Callable[[Connection], Awaitable[None]]

TLS_HANDSHAKE_TIMEOUT = 15.0  # seconds, for implicit TLS
_CANCEL_TIMEOUT = 5.0  # seconds cancelled handlers get to unwind at stop()
_BACKLOG = 511


class ListenError(LightMailError):
    """An address could not be bound; ``str()`` names the listener and the address."""


class _Server(Protocol):
    """What a listener keeps of a listening socket: an ``asyncio.Server`` or a
    :class:`ProxyAcceptor`."""

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class Listener:
    """One protocol's listening sockets and the connections they accepted."""

    def __init__(
        self,
        name: str,
        addresses: Sequence[ListenAddress],
        handler: Handler,
        *,
        tls: ssl.SSLContext | None = None,
        max_connections: int = 1000,
        max_per_ip: int = 50,
        refuse: bytes | None = None,
        unix_mode: int | None = 0o660,
        unix_owner: str | None = None,
        unix_group: str | None = None,
        tls_handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
        protocol: str | None = None,
        proxy_networks: Sequence[Network] = (),
        proxy_header_timeout: float = PROXY_HEADER_TIMEOUT,
    ) -> None:
        self.name = name
        self.protocol = protocol or name  # the metrics label: imap, pop3, lmtp
        self.addresses = tuple(addresses)
        self.tls = tls
        self.max_connections = max_connections
        self.refuse = refuse
        self.unix_mode = unix_mode
        self.unix_owner = unix_owner
        self.unix_group = unix_group
        self.tls_handshake_timeout = tls_handshake_timeout
        self.proxy_networks = tuple(proxy_networks)
        self.proxy_header_timeout = proxy_header_timeout
        self.bound: list[str] = []  # "127.0.0.1:1143", "unix:/run/lightmail/lmtp.sock"
        self.bound_addresses: list[ListenAddress] = []  # with the ports actually bound
        self._handler = handler
        self._per_ip = connection_limiter(f"{name} per_ip", max_per_ip, lazy=True)
        self._servers: list[_Server] = []
        self._unix_files: list[tuple[Path, int, int]] = []  # path, st_dev, st_ino
        self._tasks: dict[asyncio.Task[None], Connection] = {}
        self._stopping = False
        self._accepted = CONNECTIONS_ACCEPTED.labels(self.protocol)
        self._open = CONNECTIONS_OPEN.labels(self.protocol)

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._tasks)

    async def start(self) -> None:
        """Bind every address (raises :class:`ListenError`), then accept connections."""
        self._stopping = False
        try:
            for index, address in enumerate(self.addresses):
                inherited = take_inherited(self.name, index)
                if inherited is not None:
                    for sock in inherited:
                        self._servers.append(await self._serve_on(sock))
                elif isinstance(address, UnixAddress):
                    self._servers.append(await self._bind_unix(address))
                else:
                    self._servers.extend(await self._bind_tcp(address))
        except BaseException:
            await self._close_servers()
            raise
        tls = " (TLS)" if self.tls is not None else ""
        for where in self.bound:
            log.info("%s: listening on %s%s", self.name, where, tls)

    async def stop(self, grace: float = 10) -> None:
        """Stop accepting; ask sessions to end; after ``grace`` seconds cancel the rest."""
        self._stopping = True
        for server in self._servers:
            server.close()  # stop accepting now; the sockets are released below
        tasks = set(self._tasks)
        for connection in self._tasks.values():
            connection.request_shutdown()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            if pending:
                log.info(
                    "%s: cancelling %d sessions still open after %gs",
                    self.name,
                    len(pending),
                    grace,
                )
                for task in pending:
                    task.cancel()
                _, stuck = await asyncio.wait(pending, timeout=_CANCEL_TIMEOUT)
                for task in stuck:
                    log.error(
                        "%s: session %s ignored cancellation", self.name, self._tasks[task].id
                    )
                    self._tasks[task].abort()
        await self._close_servers()

    # --- binding -----------------------------------------------------------

    async def _bind_tcp(self, address: TcpAddress) -> list[_Server]:
        if self.proxy_networks:
            return [await self._serve_on(sock) for sock in bind_tcp(self.name, address)]
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                self._protocol,
                address.host,
                address.port,
                reuse_address=True,
                backlog=_BACKLOG,
                **self._tls_options(),
            )
        except OSError as error:
            raise self._error(address, error) from None
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            actual = TcpAddress(host, port)
            self.bound_addresses.append(actual)
            self.bound.append(str(actual))
        return [server]

    async def _bind_unix(self, address: UnixAddress) -> asyncio.Server:
        await remove_stale_socket(self.name, address)
        sock = bind_unix(self.name, address, self.unix_mode, self.unix_owner, self.unix_group)
        try:
            info = address.path.stat()
            server = await asyncio.get_running_loop().create_unix_server(
                self._protocol, sock=sock, backlog=_BACKLOG, **self._tls_options()
            )
        except OSError as error:
            sock.close()
            with contextlib.suppress(OSError):
                if address.path.is_socket():
                    address.path.unlink()
            raise self._error(address, error) from None
        self._unix_files.append((address.path, info.st_dev, info.st_ino))
        self.bound_addresses.append(address)
        self.bound.append(str(address))
        return server

    async def _serve_on(self, sock: socket.socket) -> _Server:
        """Serve on a bound socket: one the supervisor bound (it keeps the socket
        file), or a TCP socket whose peers may be proxies."""
        loop = asyncio.get_running_loop()
        server: _Server
        if sock.family == socket.AF_UNIX:
            server = await loop.create_unix_server(
                self._protocol, sock=sock, backlog=_BACKLOG, **self._tls_options()
            )
        elif self.proxy_networks:
            server = ProxyAcceptor(
                self.name,
                sock,
                self.proxy_networks,
                self._relayed_protocol,
                protocol=self.protocol,
                tls=self.tls,
                tls_handshake_timeout=self.tls_handshake_timeout,
                header_timeout=self.proxy_header_timeout,
            )
        else:
            server = await loop.create_server(
                self._protocol, sock=sock, backlog=_BACKLOG, **self._tls_options()
            )
        address = socket_address(sock)
        self.bound_addresses.append(address)
        self.bound.append(str(address))
        return server

    def _tls_options(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        return {"ssl": self.tls, "ssl_handshake_timeout": self.tls_handshake_timeout}

    def _error(self, address: ListenAddress, error: OSError | LookupError) -> ListenError:
        return listen_error(self.name, address, error)

    async def _close_servers(self) -> None:
        """Stop accepting and unlink our socket files; safe to call twice."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            # From Python 3.12 this also waits for open connections, including
            # implicit-TLS handshakes that have not reached a session yet.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CANCEL_TIMEOUT):
                    await server.wait_closed()
        files, self._unix_files = self._unix_files, []
        for path, device, inode in files:
            remove_socket_file(path, device, inode)
        self.bound.clear()
        self.bound_addresses.clear()

    # --- connections -------------------------------------------------------

    def _protocol(self) -> asyncio.Protocol:
        return ConnectionProtocol(self._accept)

    def _relayed_protocol(self, client: Endpoint | None) -> asyncio.Protocol:
        """For a :class:`ProxyAcceptor`: ``client`` is the address a PROXY header carried."""
        if client is None:
            return self._protocol()

        def accept(connection: Connection) -> None:
            connection.relayed_for(client)
            self._accept(connection)

        return ConnectionProtocol(accept)

    def _accept(self, connection: Connection) -> None:
        """Called from ``connection_made``: admit the connection or refuse it."""
        key = _ip_key(connection.peer_ip)
        if self._stopping:
            CONNECTIONS_REFUSED.labels(self.protocol, "shutdown").inc()
            connection.refuse(None)
            return
        if len(self._tasks) >= self.max_connections:
            log.warning(
                "%s: refused %s: %d connections open (max_connections)",
                self.name,
                connection.peer,
                len(self._tasks),
            )
            CONNECTIONS_REFUSED.labels(self.protocol, "max_connections").inc()
            connection.refuse(self.refuse)
            return
        if key is not None and not self._per_ip.try_acquire(key):
            log.warning(
                "%s: refused %s: %d connections from %s (max_per_ip)",
                self.name,
                connection.peer,
                self._per_ip.count(key),
                key,
            )
            CONNECTIONS_REFUSED.labels(self.protocol, "max_per_ip").inc()
            connection.refuse(self.refuse)
            return
        task = asyncio.get_running_loop().create_task(
            self._serve(connection), name=f"{self.name}-{connection.id}"
        )
        self._tasks[task] = connection
        self._accepted.inc()
        self._open.inc()

        def done(task: asyncio.Task[None]) -> None:
            del self._tasks[task]
            self._open.dec()
            if key is not None:
                self._per_ip.release(key)
            if not task.cancelled() and (error := task.exception()) is not None:
                # Only BaseExceptions other than CancelledError get here.
                log.error("%s: session %s ended by %r", self.name, connection.id, error)

        task.add_done_callback(done)

    async def _serve(self, connection: Connection) -> None:
        via = f" via proxy {connection.proxy}" if connection.proxy else ""
        log.debug("%s: %s connected from %s%s", self.name, connection.id, connection.peer, via)
        try:
            await self._handler(connection)
        except StreamError as error:
            log.info("%s: %s from %s: %s", self.name, connection.id, connection.peer, error)
        except Exception:
            log.exception(
                "%s: session %s from %s failed", self.name, connection.id, connection.peer
            )
        finally:
            await connection.close()
            log.debug("%s: %s closed", self.name, connection.id)


def listen_error(name: str, address: ListenAddress, error: OSError | LookupError) -> ListenError:
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:
        reason = str(error) or type(error).__name__
    return ListenError(f"{name}: cannot listen on {address}: {reason}")


# Sockets a supervisor bound for this worker process, by socket_key().
_inherited: dict[str, list[socket.socket]] = {}


def socket_key(name: str, index: int) -> str:
    """Names the sockets of listener ``name``'s ``index``-th address."""
    return f"{name}/{index}"


def inherit_sockets(sockets: Mapping[str, list[socket.socket]]) -> None:
    """Make the listeners of this process serve on ``sockets`` (by :func:`socket_key`)
    instead of binding their addresses."""
    _inherited.update(sockets)


def take_inherited(name: str, index: int) -> list[socket.socket] | None:
    """The inherited sockets for listener ``name``'s ``index``-th address, once."""
    return _inherited.pop(socket_key(name, index), None)


def socket_address(sock: socket.socket) -> ListenAddress:
    """Where a bound socket listens."""
    if sock.family == socket.AF_UNIX:
        return UnixAddress(Path(sock.getsockname()))
    host, port = sock.getsockname()[:2]
    return TcpAddress(host, port)


def bind_tcp(name: str, address: TcpAddress, *, every: bool = True) -> list[socket.socket]:
    """Listening sockets on every address ``address.host`` resolves to (as
    ``loop.create_server`` binds them), or on the first one only when not
    ``every``; raises :class:`ListenError`."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, where in list(dict.fromkeys(infos))[: None if every else 1]:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(where)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except OSError as error:
        for sock in sockets:
            sock.close()
        raise listen_error(name, address, error) from None
    return sockets


def bind_unix(
    name: str, address: UnixAddress, mode: int | None, owner: str | None, group: str | None
) -> socket.socket:
    """A listening unix socket with its file's mode and owner set; raises :class:`ListenError`.

    Call :func:`remove_stale_socket` first."""
    path = address.path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        # Not listening yet: until chmod and chown are done, connects are refused.
        if mode is not None:
            path.chmod(mode)
        if owner is not None or group is not None:
            shutil.chown(path, owner, group)  # type: ignore[arg-type]
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except (OSError, LookupError) as error:
        sock.close()
        with contextlib.suppress(OSError):
            if path.is_socket():
                path.unlink()
        raise listen_error(name, address, error) from None
    return sock


def remove_socket_file(path: Path, device: int, inode: int) -> None:
    """Unlink the socket file at ``path`` unless another has replaced it since."""
    with contextlib.suppress(OSError):
        info = path.lstat()
        if (info.st_dev, info.st_ino) == (device, inode):
            path.unlink()


async def remove_stale_socket(name: str, address: UnixAddress) -> None:
    """Unlink a socket file nobody listens on; refuse to touch anything else."""
    path = address.path
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise listen_error(name, address, error) from None
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"{name}: cannot listen on {address}: not a socket file")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        async with asyncio.timeout(1):
            await asyncio.get_running_loop().sock_connect(probe, os.fspath(path))
    except (OSError, TimeoutError):
        try:
            path.unlink(missing_ok=True)  # stale: left by a process that died
        except OSError as error:
            raise listen_error(name, address, error) from None
        log.info("%s: removed stale socket file %s", name, path)
        return
    finally:
        probe.close()
    raise ListenError(f"{name}: cannot listen on {address}: another server uses it")


def _ip_key(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> Hashable | None:
    """What ``max_per_ip`` counts: the IPv4 address or the IPv6 /64; None for unix sockets."""
    if isinstance(ip, ipaddress.IPv6Address) and not ip.is_loopback:
        return ipaddress.IPv6Network((ip, 64), strict=False)
    return ip


class ListeningService:
    """A protocol server made of listeners (:class:`lightmail.runtime.Service`)."""

    name: str
    listeners: list[Listener]

    async def start(self) -> None:
        for listener in self.listeners:
            await listener.start()

    async def stop(self) -> None:
        for listener in self.listeners:
            await listener.stop()


class LoginService(ListeningService, ABC):
    """A protocol clients log in to (IMAP, POP3): its listeners and the count of
    each user's connections (``[<name>] max_connections_per_user``) its sessions keep.

    Listeners on ``settings.listen`` (plain, STARTTLS-capable) and, when a
    certificate is configured, ``settings.tls_listen`` (implicit TLS, named
    ``<name>s``: IMAPS, POP3S), within the section's connection limits, with
    PROXY headers from ``proxy_networks``. With ``shared`` (``[notify] url``) the
    per-user cap holds for the cluster.
    Subclasses set ``name`` and implement ``serve``.
    """

    def __init__(
        self,
        settings: ImapSettings | Pop3Settings,
        tls: ssl.SSLContext | None,
        *,
        refuse: bytes,
        proxy_networks: Sequence[Network],
        shared: SharedCounts | None = None,
    ) -> None:
        name = f"{self.name} per_user"
        local = connection_limiter(name, settings.max_connections_per_user)
        self.per_user: SessionLimiter = local if shared is None else shared.limiter(name, local)
        kinds: list[tuple[str, tuple[ListenAddress, ...], ssl.SSLContext | None]]
        kinds = [(self.name, settings.listen, None)]
        if tls is not None and settings.tls_listen:
            kinds.append((f"{self.name}s", settings.tls_listen, tls))
        self.listeners = [
            Listener(
                listener_name,
                addresses,
                self.serve,
                tls=context,
                max_connections=settings.max_connections,
                max_per_ip=settings.max_connections_per_ip,
                refuse=refuse,
                protocol=self.name,
                proxy_networks=proxy_networks,
            )
            for listener_name, addresses, context in kinds
        ]

    @abstractmethod
    async def serve(self, connection: Connection) -> None:
        """Run one connection's session until it ends."""
