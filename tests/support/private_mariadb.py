"""A MariaDB server of the test session's own, which a fault test may freeze and kill.

The machine's MariaDB on 3306 is shared by everyone; this one runs on a free
loopback port from a temporary data directory, so stopping it hurts no one.
It is one plain (non-Galera) ``mariadbd`` started with ``--no-defaults``; as
root it runs as ``nobody``, which must own the directory. A restart with the
same command keeps the data (InnoDB recovers what was committed).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.require import require

_READY_TIMEOUT = 60.0  # seconds; an idle machine is ready in under one


def find_mariadbd() -> tuple[Path, Path] | None:
    """``mariadbd`` and ``mariadb-install-db``, from PATH or /usr/sbin."""
    found = []
    for name in ("mariadbd", "mariadb-install-db"):
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if path is None:
            return None
        found.append(Path(path))
    return found[0], found[1]


class PrivateMariaDB:
    """One ``mariadbd`` in ``root``: start, freeze (SIGSTOP), thaw, kill -9, restart."""

    def __init__(self, mariadbd: Path, install_db: Path, root: Path) -> None:
        self.mariadbd = mariadbd
        self.install_db = install_db
        self.root = root
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def server_url(self) -> str:
        """The URL of the server (no database), as LightMail's config takes it."""
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}"

    def url(self, database: str) -> str:
        return f"{self.server_url}/{database}"

    def _user(self) -> list[str]:
        return ["--user=nobody"] if os.geteuid() == 0 else []

    def install(self) -> None:
        data = self.root / "data"
        for path in (self.root, data, self.root / "tmp"):
            path.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(path, "nobody", "nogroup")
        install_datadir(self.install_db, data, self._user())

    def start(self) -> None:
        """Start the server and wait until a TCP login works."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the private MariaDB is already running")
        log = (self.root / "error.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(self.mariadbd),
                "--no-defaults",
                *self._user(),
                f"--datadir={self.root / 'data'}",
                f"--socket={self.root / 'mysqld.sock'}",
                f"--pid-file={self.root / 'mysqld.pid'}",
                f"--tmpdir={self.root / 'tmp'}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                "--skip-name-resolve",
                "--innodb-log-file-size=16M",
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=1",
                "--aria-pagecache-buffer-size=1M",
                "--key-buffer-size=1M",
                "--max-connections=300",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.frozen = False
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the private MariaDB exited:\n{self.log_tail()}")
            if _login_works(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"the private MariaDB did not answer in time:\n{self.log_tail()}")

    def freeze(self) -> None:
        """SIGSTOP: the server holds every connection open and answers nothing."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """kill -9, as a crash or an OOM kill would end it."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.frozen = False

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.frozen:
            self.thaw()
        terminate(self.process)

    def _signal(self, signum: signal.Signals) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("the private MariaDB is not running")
        self.process.send_signal(signum)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.root / "error.log", lines)


def install_datadir(install_db: Path, data: Path, user: list[str]) -> None:
    """A new data directory where root logs in over TCP with no password.

    Its temporary tables go to ``tmp`` beside ``data``, never to /tmp: a
    ``mariadbd`` that starts removes every ``#sql*`` file in its tmpdir, so
    two servers starting at once on /tmp (another xdist worker's, a Galera
    node) would delete each other's, and the installation fails with
    "Unknown table 'mysql.tmp_user_nopasswd'".
    """
    done = subprocess.run(
        [
            str(install_db),
            "--no-defaults",
            *user,
            f"--datadir={data}",
            f"--tmpdir={data.parent / 'tmp'}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--innodb-log-file-size=16M",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"mariadb-install-db for {data} exited {done.returncode}: {said}")


def terminate(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM, and SIGKILL if the server has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _login_works(port: int) -> bool:
    """Whether the server sends its handshake on a new TCP connection (it is up
    and accepting logins; during InnoDB recovery it does not listen yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.settimeout(1)
            return len(sock.recv(64)) > 4
    except OSError:
        return False


@pytest.fixture(scope="session")
def private_mariadb() -> Iterator[PrivateMariaDB]:
    """A MariaDB of this test session's own on a free loopback port (root, no password)."""
    binaries = find_mariadbd()
    require(
        "mariadbd",
        binaries is not None,
        "install Debian's mariadb-server (scripts/system-packages.sh)",
    )
    assert binaries is not None
    root = Path(tempfile.mkdtemp(prefix="lightmail-mariadb-"))
    root.chmod(0o755)
    server = PrivateMariaDB(*binaries, root)
    try:
        server.install()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
