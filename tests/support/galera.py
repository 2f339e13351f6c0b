"""A 3-node MariaDB Galera cluster on loopback, started once per test session.

Each node is a ``mariadbd --no-defaults`` with the wsrep provider of Debian's
``galera-4``, in one temporary folder, on free ports: client, group
communication (gcomm), incremental state transfer (IST) and snapshot state
transfer (SST, rsync), each set per node because Galera's defaults clash on one
machine (IST on the gcomm port + 1, every SST on 4444). Node 1 bootstraps the
cluster; nodes 2 and 3 join one at a time (a join copies node 1's data with
rsync; two at once churn the cluster view). A node is ready when it is alive
and ``wsrep_local_state_comment`` is ``Synced`` and ``wsrep_ready`` is ``ON``.

As root the servers run as ``nobody``, which owns the whole folder: a joiner's
rsync daemon drops to ``nobody`` and must create files there (with
``--user=root`` the state transfer fails and the joiner aborts). Timeouts for
suspecting a dead peer are shortened (the keepalive must stay below a third of
``suspect_timeout``, or the node refuses to start). The machine's own MariaDB
on 3306 is left alone. The settings a real cluster needs are the same as here
and are explained in docs/cluster.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.private_mariadb import find_mariadbd, install_datadir, log_tail, terminate
from tests.support.s3server import free_ports

NODES = 3
_READY_TIMEOUT = 120.0  # seconds for one node; a join takes 5 to 7 on a busy machine
_PROVIDERS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so")


def find_provider() -> Path | None:
    """The Galera wsrep provider library, from Debian's ``galera-4``."""
    return next((Path(path) for path in _PROVIDERS if Path(path).exists()), None)


def database_url(port: int, database: str) -> str:
    """A LightMail ``[database] url`` for ``database`` as root on a loopback ``port``:
    a node's own, or a proxy's in front of nodes."""
    return f"mysql+asyncmy://root@127.0.0.1:{port}/{database}"


@dataclass(frozen=True)
class _Ports:
    client: int
    gcomm: int
    ist: int
    sst: int


class GaleraNode:
    """One ``mariadbd`` of the cluster."""

    def __init__(self, cluster: GaleraCluster, index: int, ports: _Ports) -> None:
        self.cluster = cluster
        self.index = index
        self.ports = ports
        self.root = cluster.root / f"n{index}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.ports.client

    def url(self, database: str) -> str:
        """A LightMail ``[database] url`` for ``database`` on this node."""
        return database_url(self.port, database)

    def _command(self, *, bootstrap: bool) -> list[str]:
        peers = ",".join(f"127.0.0.1:{node.ports.gcomm}" for node in self.cluster.nodes)
        provider_options = ";".join(
            [
                f"gmcast.listen_addr=tcp://127.0.0.1:{self.ports.gcomm}",
                f"ist.recv_addr=127.0.0.1:{self.ports.ist}",
                "gcache.size=16M",
                "evs.keepalive_period=PT0.5S",
                "evs.suspect_timeout=PT2S",
                "evs.inactive_timeout=PT4S",
            ]
        )
        return [
            str(self.cluster.mariadbd),
            "--no-defaults",
            *self.cluster.user,
            f"--datadir={self.root / 'data'}",
            f"--socket={self.root / 'sock'}",
            f"--pid-file={self.root / 'pid'}",
            f"--tmpdir={self.root / 'tmp'}",
            f"--log-error={self.root / 'error.log'}",
            "--bind-address=127.0.0.1",
            f"--port={self.port}",
            "--skip-name-resolve",
            "--wsrep-on=ON",
            f"--wsrep-provider={self.cluster.provider}",
            "--wsrep-cluster-name=lightmail-test",
            f"--wsrep-cluster-address=gcomm://{'' if bootstrap else peers}",
            *(["--wsrep-new-cluster"] if bootstrap else []),
            f"--wsrep-node-name=node{self.index}",
            f"--wsrep-node-address=127.0.0.1:{self.ports.gcomm}",
            f"--wsrep-node-incoming-address=127.0.0.1:{self.port}",
            f"--wsrep-provider-options={provider_options}",
            "--wsrep-sst-method=rsync",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.ports.sst}",
            # What Galera needs of every node (docs/cluster.md).
            "--binlog-format=ROW",
            "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
            # Small and fast: a test cluster keeps nothing worth an fsync.
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            "--aria-pagecache-buffer-size=1M",
            "--key-buffer-size=1M",
            "--innodb-log-buffer-size=2M",
            "--max-connections=300",
        ]

    def start(self, *, bootstrap: bool = False) -> None:
        """Start the node and wait until it is synced with the cluster."""
        self.process = subprocess.Popen(
            self._command(bootstrap=bootstrap),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Galera node {self.index} exited:\n{self.log_tail()}")
            status = self.status()
            if (status.get("wsrep_local_state_comment"), status.get("wsrep_ready")) == (
                "Synced",
                "ON",
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"Galera node {self.index} did not sync in time:\n{self.log_tail()}")

    def query(self, sql: str) -> list[list[str]]:
        """Rows of ``sql`` run as root over TCP with the ``mariadb`` client; [] if
        the node does not answer."""
        result = subprocess.run(
            [
                str(self.cluster.client),
                "--no-defaults",
                "--protocol=TCP",
                "-h127.0.0.1",
                f"-P{self.port}",
                "-uroot",
                "--connect-timeout=2",
                "-N",
                "-B",
                "-e",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            return []
        return [line.split("\t") for line in result.stdout.splitlines()]

    def status(self) -> dict[str, str]:
        """The node's ``wsrep_*`` status variables; empty if it does not answer."""
        rows = self.query("SHOW GLOBAL STATUS LIKE 'wsrep\\_%'")
        return {row[0].lower(): row[1] for row in rows if len(row) == 2}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.root / "error.log", lines)


class GaleraCluster:
    """Three Galera nodes in ``root``, started by :meth:`start` and stopped by :meth:`stop`."""

    def __init__(
        self, mariadbd: Path, install_db: Path, client: Path, provider: Path, root: Path
    ) -> None:
        self.mariadbd = mariadbd
        self.install_db = install_db
        self.client = client
        self.provider = provider
        self.root = root
        self.user = ["--user=nobody"] if os.geteuid() == 0 else []
        ports = free_ports(4 * NODES)
        self.nodes = [
            GaleraNode(self, index + 1, _Ports(*ports[4 * index : 4 * index + 4]))
            for index in range(NODES)
        ]

    def start(self) -> None:
        for node in self.nodes:
            (node.root / "data").mkdir(parents=True)  # the joiners' stay empty
            (node.root / "tmp").mkdir()  # see install_datadir
        if os.geteuid() == 0:
            for path in [self.root, *self.root.rglob("*")]:
                shutil.chown(path, "nobody", "nogroup")
        install_datadir(self.install_db, self.nodes[0].root / "data", self.user)
        self.nodes[0].start(bootstrap=True)
        for node in self.nodes[1:]:
            node.start()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def restart(self, node: GaleraNode) -> None:
        """Start a killed or stopped ``node`` again and wait until it is synced.

        It starts once the others have dropped its old self from their view: a
        node that comes back while it is still a member there can be left alone
        in a non-primary view. If it does not sync in time it is stopped and
        started once more (a rejoin on a loaded machine is sometimes refused)."""
        node.stop()
        others = [other for other in self.nodes if other is not node]
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline and any(
            other.status().get("wsrep_cluster_size") != str(len(others)) for other in others
        ):
            time.sleep(0.2)
        try:
            node.start()
        except RuntimeError:
            node.stop()
            node.start()


def galera_missing() -> str | None:
    """What a cluster needs and this machine lacks, with the Debian package to
    install; None when nothing is missing."""
    for component, found, package in (
        ("mariadbd", find_mariadbd() is not None, "mariadb-server"),
        ("the mariadb client", shutil.which("mariadb") is not None, "mariadb-client"),
        ("Galera's wsrep provider", find_provider() is not None, "galera-4"),
        ("rsync (state transfer)", shutil.which("rsync") is not None, "rsync"),
        ("ss (state transfer)", shutil.which("ss") is not None, "iproute2"),
    ):
        if not found:
            return f"{component} is missing: install Debian's {package}"
    return None


@contextmanager
def running_galera() -> Iterator[GaleraCluster]:
    """A 3-node Galera cluster (root, no password) in a temporary folder, until the
    block ends; :func:`galera_missing` first tells whether one can start."""
    binaries = find_mariadbd()
    client = shutil.which("mariadb")
    provider = find_provider()
    if binaries is None or client is None or provider is None:
        raise RuntimeError(galera_missing() or "Galera is not installed")
    root = Path(tempfile.mkdtemp(prefix="lightmail-galera-"))
    root.chmod(0o755)
    cluster = GaleraCluster(*binaries, Path(client), provider, root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
