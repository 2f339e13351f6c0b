"""A real clamd for tests, with our own one-signature database.

clamd cannot download signatures here (no freshclam), so the database is one
``.ndb`` body signature that matches the EICAR test string. clamd reports it as
``LightMail.Test.EICAR.UNOFFICIAL``: it appends ``.UNOFFICIAL`` to every
signature that is not from the official, signed databases. With one signature
clamd answers PING ~0.1 s after it starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from lightmail.config import TcpAddress, UnixAddress

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "LightMail.Test.EICAR"
REPORTED_NAME = f"{SIGNATURE}.UNOFFICIAL"  # how clamd names it in "stream: ... FOUND"
_READY_TIMEOUT = 30.0  # seconds; with our one signature clamd is ready in ~0.1 s


@dataclass(frozen=True, slots=True)
class Clamd:
    unix: UnixAddress
    tcp: TcpAddress
    stream_max_length: int  # clamd's StreamMaxLength, in octets
    log: Path


def find_clamd() -> Path | None:
    """``clamd`` on PATH, else Debian's ``/usr/sbin/clamd`` (sbin is not on every PATH)."""
    found = shutil.which("clamd") or shutil.which("clamd", path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


@contextmanager
def running_clamd(
    tmpdir: Path, *, stream_max_length: str = "1M", clamd: Path | None = None
) -> Iterator[Clamd]:
    """Run clamd in the foreground on a unix socket and a free loopback port; kill it after."""
    clamd = clamd or find_clamd()
    if clamd is None:
        raise RuntimeError("clamd not found: install Debian's clamav-daemon")
    tmpdir = Path(tmpdir)
    database = tmpdir / "db"
    database.mkdir(parents=True, exist_ok=True)
    # .ndb: Name:TargetType:Offset:HexSignature (0 = any file type, * = any offset).
    (database / "test.ndb").write_text(f"{SIGNATURE}:0:*:{EICAR.hex()}\n")
    unix = UnixAddress(tmpdir / "clamd.sock")
    tcp = TcpAddress("127.0.0.1", _free_port())
    log = tmpdir / "clamd.log"
    config = tmpdir / "clamd.conf"
    config.write_text(
        "\n".join(
            [
                "Foreground yes",
                f"DatabaseDirectory {database}",
                f"LocalSocket {unix.path}",
                f"TCPSocket {tcp.port}",
                f"TCPAddr {tcp.host}",
                f"StreamMaxLength {stream_max_length}",
                f"LogFile {log}",
                "LogTime yes",
                f"PidFile {tmpdir / 'clamd.pid'}",
                f"TemporaryDirectory {tmpdir}",
                "SelfCheck 0",  # no database reload checks
                "ConcurrentDatabaseReload no",
                # No "User": clamd keeps the uid that started it (root in the sandbox is fine).
                "",
            ]
        )
    )
    with ExitStack() as stack:
        output = stack.enter_context((tmpdir / "clamd.out").open("wb"))
        process = subprocess.Popen(
            [str(clamd), f"--config-file={config}"],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        stack.callback(_kill, process)
        server = Clamd(unix=unix, tcp=tcp, stream_max_length=_octets(stream_max_length), log=log)
        _wait_until_ready(server, process, tmpdir)
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _octets(size: str) -> int:
    units = {"K": 1024, "M": 1024 * 1024}
    unit = size[-1:].upper()
    return int(size[:-1]) * units[unit] if unit in units else int(size)


def _ping(address: UnixAddress | TcpAddress) -> bool:
    family = socket.AF_UNIX if isinstance(address, UnixAddress) else socket.AF_INET
    target = str(address.path) if isinstance(address, UnixAddress) else (address.host, address.port)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(target)
            sock.sendall(b"zPING\0")
            return sock.recv(16) == b"PONG\0"
    except OSError:
        return False


def _wait_until_ready(server: Clamd, process: subprocess.Popen[bytes], tmpdir: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"clamd exited with status {process.returncode}:\n{_tail(tmpdir)}")
        if _ping(server.unix) and _ping(server.tcp):
            return
        time.sleep(0.02)
    raise RuntimeError(f"clamd did not answer PING within {_READY_TIMEOUT:.0f} s:\n{_tail(tmpdir)}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: clamd and nothing else
    process.wait()


def _tail(tmpdir: Path, lines: int = 20) -> str:
    texts = []
    for name in ("clamd.out", "clamd.log"):
        with suppress(OSError):
            texts.extend((tmpdir / name).read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(texts) or "(no log)"
