"""The supervisor: binds the listening sockets once and keeps N workers serving on them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from lightmail.config import ListenAddress, Settings, UnixAddress
from lightmail.metrics import MULTIPROCESS_DIR
from lightmail.net.listener import (
    bind_tcp,
    bind_unix,
    remove_socket_file,
    remove_stale_socket,
    socket_key,
)
from lightmail.runtime import hint_first_steps, open_node, stop_signals
from lightmail.workers.channel import Channel
from lightmail.workers.hub import Hub

log = logging.getLogger("lightmail.workers")

_RESTART_DELAY = 1.0  # seconds before restarting a worker that died ...
_MAX_RESTART_DELAY = 30.0  # ... doubled while it keeps dying soon after starting, up to this
_STABLE = 10.0  # seconds a worker must have run for its next restart to wait the least again
_STOP_TIMEOUT = 40.0  # seconds workers get to stop (their sessions get 10 + 5) before SIGKILL

# Unix socket files: the mode, owner and group the single-process listeners give them.
_UnixOptions = tuple[int | None, str | None, str | None]
_DEFAULT_UNIX: _UnixOptions = (0o660, None, None)


@dataclass(frozen=True, slots=True)
class _Listener:
    """What a worker's listener binds when it runs alone (Listener, HttpServer)."""

    name: str
    addresses: tuple[ListenAddress, ...]
    unix: _UnixOptions = _DEFAULT_UNIX
    every_address: bool = True  # of those a host name resolves to; the API takes the first


def _listeners(settings: Settings) -> Iterator[_Listener]:
    lmtp = settings.lmtp
    owner, group = lmtp.socket_owner or None, lmtp.socket_group or None
    yield _Listener("lmtp", lmtp.listen, (lmtp.socket_mode, owner, group))
    for name, section in (("imap", settings.imap), ("pop3", settings.pop3)):
        yield _Listener(name, section.listen)
        yield _Listener(f"{name}s", section.tls_listen)  # () without [tls]
    yield _Listener("api", settings.api.listen, every_address=False)
    yield _Listener("dav", settings.dav.listen, every_address=False)
    yield _Listener("davs", settings.dav.tls_listen, every_address=False)  # () without [tls]


class Supervisor:
    """Runs ``count`` workers until SIGTERM or SIGINT, then stops them all."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self._sockets: dict[str, list[socket.socket]] = {}
        self._unix_files: list[tuple[Path, int, int]] = []
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._hub = Hub(settings.auth)
        self._stop = asyncio.Event()
        self._metrics: Path | None = None
        self._ready_once: set[int] = set()  # the workers that have served: all, once running
        self._wake = asyncio.Event()  # set by SIGTERM or SIGINT, or a failed start
        self._failed_start: int | None = None  # the exit status of a worker that could not start

    async def run(self) -> None:
        settings = self.settings
        log.info(
            "config: %s", settings.config_file or "no file (built-in defaults and environment)"
        )
        async with open_node(settings) as node:  # the schema is current before workers start
            await hint_first_steps(node)
        try:
            await self._bind()
            # The workers' metrics: a fresh folder, so no sample of an earlier run counts.
            self._metrics = Path(tempfile.mkdtemp(prefix="lightmail-metrics-"))
            with stop_signals() as self._wake:
                keepers = [asyncio.create_task(self._keep(index)) for index in range(self.count)]
                log.info("starting %d workers", self.count)
                await self._wake.wait()
                log.info("stopping %d workers", len(self._processes))
                self._stop.set()
                for process in self._processes.values():
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGTERM)
                _, late = await asyncio.wait(keepers, timeout=_STOP_TIMEOUT)
                for index, process in self._processes.items():
                    log.error("worker %d (pid %d) did not stop: killing it", index, process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                if late:
                    await asyncio.wait(late)
        finally:
            self._close()
        log.info("stopped")
        if self._failed_start is not None:
            # As one process would: it has said why; exit with its status (75: try again).
            raise SystemExit(self._failed_start if self._failed_start > 0 else 1)

    async def _bind(self) -> None:
        for listener in _listeners(self.settings):
            name = listener.name
            for index, address in enumerate(listener.addresses):
                key = socket_key(name, index)
                if isinstance(address, UnixAddress):
                    await remove_stale_socket(name, address)
                    self._sockets[key] = [bind_unix(name, address, *listener.unix)]
                    info = address.path.stat()
                    self._unix_files.append((address.path, info.st_dev, info.st_ino))
                else:
                    self._sockets[key] = bind_tcp(name, address, every=listener.every_address)

    def _close(self) -> None:
        if self._metrics is not None:
            shutil.rmtree(self._metrics, ignore_errors=True)
        for sockets in self._sockets.values():
            for sock in sockets:
                sock.close()
        self._sockets.clear()
        for path, device, inode in self._unix_files:
            remove_socket_file(path, device, inode)
        self._unix_files.clear()

    def _ready(self, index: int, pid: int) -> None:
        log.info("worker %d (pid %d) is serving", index, pid)
        if len(self._ready_once) == self.count:
            return  # a restarted worker: the node has been running
        self._ready_once.add(index)
        if len(self._ready_once) == self.count and not self._stop.is_set():
            log.info(
                "lightmail is running with %d workers (data in %s); stop with Ctrl-C or SIGTERM",
                self.count,
                self.settings.server.data_dir,
            )

    async def _keep(self, index: int) -> None:
        """Run worker ``index`` until stopping, restarting it whenever it exits."""
        loop = asyncio.get_running_loop()
        delay = _RESTART_DELAY
        while not self._stop.is_set():
            started = loop.time()
            process = await self._run_worker(index)
            if self._stop.is_set():
                log.info("worker %d (pid %d) stopped", index, process.pid)
                return
            if len(self._ready_once) < self.count:  # not running yet: a restart would fail alike
                log.error(
                    "worker %d (pid %d) exited with status %s while starting; stopping",
                    index,
                    process.pid,
                    process.returncode,
                )
                if self._failed_start is None:
                    self._failed_start = process.returncode
                self._wake.set()
                return
            if loop.time() - started >= _STABLE:
                delay = _RESTART_DELAY
            log.error(
                "worker %d (pid %d) exited with status %s; restarting it in %gs",
                index,
                process.pid,
                process.returncode,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, _MAX_RESTART_DELAY)

    async def _run_worker(self, index: int) -> asyncio.subprocess.Process:
        """Start worker ``index`` and serve its channel until it exits."""
        ours, theirs = socket.socketpair()
        fds = [theirs.fileno(), *(sock.fileno() for s in self._sockets.values() for sock in s)]
        command = [sys.executable, "-m", "lightmail"]
        if self.settings.config_file is not None:
            command += ["--config", str(self.settings.config_file)]
        command += ["serve", "--worker-channel", str(theirs.fileno())]
        try:
            env = {**os.environ, MULTIPROCESS_DIR: str(self._metrics)}
            process = await asyncio.create_subprocess_exec(*command, pass_fds=fds, env=env)
        finally:
            theirs.close()
        self._processes[index] = process
        log.info("worker %d started (pid %d)", index, process.pid)
        if self._stop.is_set():  # SIGTERM came while it was starting
            process.send_signal(signal.SIGTERM)
        channel = await Channel.open(ours)
        sockets = {key: [sock.fileno() for sock in s] for key, s in self._sockets.items()}
        # What the others watch, taken with no wait before it joins (see hub).
        watched = self._hub.watched_elsewhere(index)
        channel.send({"index": index, "sockets": sockets, "watched": watched})
        self._hub.join(index, channel)
        try:
            while (message := await channel.receive()) is not None:
                if message["op"] == "ready":
                    self._ready(index, process.pid)
                else:
                    await self._hub.handle(index, message)
        except Exception:  # a message it should not have sent
            log.exception("worker %d (pid %d): bad message; stopping it", index, process.pid)
            process.kill()
        finally:
            self._hub.leave(index)
            await channel.close()
        try:
            await process.wait()
        finally:
            del self._processes[index]
            # Its live gauges (open connections) end; its counters still count.
            mark_process_dead(process.pid, str(self._metrics))  # type: ignore[no-untyped-call]
        return process
