"""``lightmail serve --workers 2``: a supervisor keeps two worker processes serving
on the same listening sockets."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

from tests.support.serving import Served, serving, storage_env


def greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        return client.recv(100)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def started(served: Served, workers: int = 2) -> None:
    served.wait_for("lightmail is running", workers)


def test_a_killed_worker_is_replaced_and_the_listeners_keep_serving(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    with serving(tmp_path, storage_env(*storage), "--workers", "2") as served:
        started(served)
        imap = served.port("imap")
        first = served.workers()
        os.kill(first[0], signal.SIGKILL)
        for _ in range(5):  # worker 1 alone serves every connection meanwhile
            assert greeting(imap).startswith(b"* OK")
            assert greeting(served.port("pop3")).startswith(b"+OK")
        served.wait_for("worker 0 started", 2)
        started(served, 3)
        assert served.workers()[0] != first[0]
        assert served.workers()[1] == first[1]
        assert f"worker 0 (pid {first[0]}) exited with status -9" in served.log
        assert greeting(imap).startswith(b"* OK")
        last = served.workers()
        assert served.stop(signal.SIGTERM) == 0, served.log
    assert "Traceback" not in served.log
    assert all(gone(pid) for pid in last.values())
    assert served.log.count("lightmail: stopped") == 2  # each worker
    assert served.log.rstrip().endswith("lightmail.workers: stopped")
    assert not (tmp_path / "data" / "lmtp.sock").exists()  # removed at stop


def test_only_the_first_worker_runs_the_gc(tmp_path: Path) -> None:
    with serving(tmp_path, {}, "--workers", "2") as served:
        started(served)
        assert served.log.count("gc: every 5m") == 1
        assert served.stop(signal.SIGINT) == 0, served.log


def test_workers_must_be_a_number_or_auto(tmp_path: Path) -> None:
    with serving(tmp_path, {}, "--workers", "0") as served:
        assert served.process.wait(60) == 2
    assert "--workers: '0' is not a number from 1 to 1024 or auto" in served.log
