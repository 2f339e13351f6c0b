"""Debian's HAProxy (scripts/system-packages.sh installs it), in TCP mode: as the
load balancer in front of LightMail (PROXY v2 to the servers), or as the
database address that fails over from one Galera node to the next.

It runs as an asyncio subprocess in the foreground (``-db``) so the servers keep
serving on the test's loop, logs to ``haproxy.log`` in the test's folder, and
is stopped when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from tests.support.require import require

_CONFIG = """\
global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
"""

# One database address per LightMail node (docs/cluster.md, "When a part fails"):
# the first server takes every connection, the others are ``backup`` and take
# over once a health check (a TCP connect every 200 ms) fails. Connections to a
# server marked down are closed at once, so the pool's connections fail and new
# ones reach the backup; a connection HAProxy could not make to a server that
# is not marked down yet goes to another (redispatch) instead of failing.
_DATABASE = """\
listen {name}
    bind 127.0.0.1:{front}
    option tcp-check
    option redispatch
    retries 2
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    default-server inter 200ms fall 1 rise 1 on-marked-down shutdown-sessions
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def haproxy(folder: Path, servers: dict[str, int]) -> AsyncIterator[dict[str, int]]:
    """HAProxy relaying a loopback port to each of ``servers`` (name: port on
    127.0.0.1) with ``send-proxy-v2``; yields the port in front of each."""
    fronts = {name: _free_port() for name in servers}
    config = "".join(
        f"listen {name}\n    bind 127.0.0.1:{fronts[name]}\n"
        f"    server lightmail 127.0.0.1:{port} send-proxy-v2\n"
        for name, port in servers.items()
    )
    async with _running(folder, config, fronts):
        yield fronts


@contextlib.asynccontextmanager
async def failover(
    folder: Path, routes: Mapping[str, Sequence[int]]
) -> AsyncIterator[dict[str, int]]:
    """HAProxy relaying a loopback port per name of ``routes`` to the first of
    its database ports on 127.0.0.1 while that one is up, else to the next that
    is (``backup``); yields the port in front of each name."""
    fronts = {name: _free_port() for name in routes}
    config = "".join(
        _DATABASE.format(name=name, front=fronts[name])
        + "".join(
            f"    server db{index} 127.0.0.1:{port} check{' backup' if index else ''}\n"
            for index, port in enumerate(ports)
        )
        for name, ports in routes.items()
    )
    async with _running(folder, config, fronts):
        yield fronts


@contextlib.asynccontextmanager
async def _running(folder: Path, listeners: str, fronts: dict[str, int]) -> AsyncIterator[None]:
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    require("haproxy", path is not None, "install Debian's haproxy (scripts/system-packages.sh)")
    assert path is not None
    (folder / "haproxy.cfg").write_text(_CONFIG + listeners)
    log = folder / "haproxy.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            path, "-db", "-f", str(folder / "haproxy.cfg"), stdout=output, stderr=output
        )
    try:
        for port in fronts.values():
            await _wait_listening(process, port, log)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _wait_listening(process: asyncio.subprocess.Process, port: int, log: Path) -> None:
    for _ in range(100):
        if process.returncode is not None:
            raise RuntimeError(f"haproxy exited: {await asyncio.to_thread(log.read_text)}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"haproxy is not listening on port {port}")
