"""Debian's curl as an IMAP and POP3 client (scripts/system-packages.sh installs it).

curl uses SASL-IR whenever the server advertises it and parses FETCH data only
when it comes as a literal, so it finds interop bugs Python's clients forgive.
It runs as an asyncio subprocess: the server keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass

from tests.support.require import require

TIMEOUT = 60.0


@dataclass(frozen=True)
class CurlResult:
    returncode: int
    stdout: bytes
    stderr: str  # with -v: the protocol lines, ``> `` sent and ``< `` received


def need_curl() -> str:
    path = shutil.which("curl")
    require("curl", path is not None, "install Debian's curl (scripts/system-packages.sh)")
    assert path is not None
    return path


async def curl(*args: str) -> CurlResult:
    """Run ``curl -v -sS --max-time ... args``."""
    process = await asyncio.create_subprocess_exec(
        need_curl(),
        "-v",
        "--silent",
        "--show-error",
        "--max-time",
        str(int(TIMEOUT)),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT + 10)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"curl {' '.join(args)} did not finish") from None
    assert process.returncode is not None
    return CurlResult(process.returncode, stdout, stderr.decode("utf-8", "replace"))


def sent(result: CurlResult) -> list[str]:
    """The protocol lines curl sent (``-v`` shows them as ``> line``)."""
    return [line[2:] for line in result.stderr.splitlines() if line.startswith("> ")]
