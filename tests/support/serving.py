"""``lightmail serve`` as a subprocess: its environment, its log, its worker processes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_LISTENING = re.compile(r"(\w+): listening on 127\.0\.0\.1:(\d+)")
_WORKER = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def storage_env(url: str, blobs: dict[str, Any]) -> dict[str, str]:
    """``LIGHTMAIL_*`` settings for a ``storage`` fixture's database and blob store."""
    if "root" in blobs:
        return {"LIGHTMAIL_DATABASE_URL": url, "LIGHTMAIL_BLOBS_URL": f"file:{blobs['root']}"}
    s3 = blobs["s3"]
    return {
        "LIGHTMAIL_DATABASE_URL": url,
        "LIGHTMAIL_BLOBS_URL": f"s3://{s3.bucket}/{blobs['prefix']}",
        "LIGHTMAIL_BLOBS_ENDPOINT": s3.endpoint,
        "LIGHTMAIL_BLOBS_REGION": s3.region,
        "LIGHTMAIL_BLOBS_ACCESS_KEY": s3.access_key,
        "LIGHTMAIL_BLOBS_SECRET_KEY": s3.secret_key,
    }


class Served:
    """A running ``lightmail serve``; its stderr is collected as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
        """Until ``text`` has appeared ``count`` times in the log."""
        deadline = time.monotonic() + timeout
        while self.log.count(text) < count:
            assert time.monotonic() < deadline, f"no {count} x {text!r} in:\n{self.log}"
            assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.log}"
            time.sleep(0.05)

    def port(self, listener: str) -> int:
        """The TCP port ``listener`` (imap, pop3, lmtp, api) listens on."""
        ports = {name: int(port) for name, port in _LISTENING.findall(self.log)}
        return ports[listener]

    def workers(self) -> dict[int, int]:
        """The pid of each worker index, as last started."""
        return {int(index): int(pid) for index, pid in _WORKER.findall(self.log)}

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        self.process.wait(timeout)
        self.close()
        return self.process.returncode

    def close(self) -> None:
        """Once the process has exited: read the rest of its log."""
        self._reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()


@contextmanager
def serving(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[Served]:
    """``lightmail serve ARGS`` in ``tmp_path`` with ``env`` over ours and IMAP, POP3,
    LMTP, the API and CalDAV on free ports; killed if still running at the end."""
    environ = {
        **os.environ,
        "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
        "LIGHTMAIL_LOG_LEVEL": "info",
        "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_LMTP_LISTEN": "127.0.0.1:0, unix:{data_dir}/lmtp.sock",
        "LIGHTMAIL_POP3_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_API_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_DAV_LISTEN": "127.0.0.1:0",
        **env,
    }
    environ.pop("LIGHTMAIL_CONFIG", None)
    (tmp_path / "data").mkdir(exist_ok=True)  # only SQLite makes it; the LMTP socket goes there
    process = subprocess.Popen(
        [sys.executable, "-m", "lightmail", "serve", *args],
        cwd=tmp_path,
        env=environ,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process)
    try:
        yield served
    finally:
        if process.poll() is None:
            for pid in served.workers().values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait()
        served.close()
