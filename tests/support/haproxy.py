"""Debian's HAProxy as the load balancer in front of LightMail
(scripts/system-packages.sh installs it): TCP mode, PROXY v2 to the servers.

It runs as an asyncio subprocess in the foreground (``-db``) so the servers keep
serving on the test's loop, and is stopped when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.require import require

_CONFIG = """\
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
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
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    require("haproxy", path is not None, "install Debian's haproxy (scripts/system-packages.sh)")
    assert path is not None
    fronts = {name: _free_port() for name in servers}
    config = _CONFIG + "".join(
        f"listen {name}\n    bind 127.0.0.1:{fronts[name]}\n"
        f"    server lightmail 127.0.0.1:{port} send-proxy-v2\n"
        for name, port in servers.items()
    )
    (folder / "haproxy.cfg").write_text(config)
    process = await asyncio.create_subprocess_exec(
        path, "-db", "-f", str(folder / "haproxy.cfg"), stderr=asyncio.subprocess.PIPE
    )
    try:
        for port in fronts.values():
            await _wait_listening(process, port)
        yield fronts
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _wait_listening(process: asyncio.subprocess.Process, port: int) -> None:
    for _ in range(100):
        if process.returncode is not None:
            assert process.stderr is not None
            raise RuntimeError(f"haproxy exited: {(await process.stderr.read()).decode()}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"haproxy is not listening on port {port}")
