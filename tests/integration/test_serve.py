"""``lightmail serve`` starts on the embedded default and stops cleanly on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_starts_and_stops_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    env = {
        **os.environ,
        "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
        "LIGHTMAIL_LOG_LEVEL": "info",
        "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",  # no fixed port: another test may hold it
        "LIGHTMAIL_LMTP_LISTEN": "127.0.0.1:0, unix:{data_dir}/lmtp.sock",
        "LIGHTMAIL_POP3_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_API_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_DAV_LISTEN": "127.0.0.1:0",
    }
    env.pop("LIGHTMAIL_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "lightmail", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "lightmail is running" in line:
            break
    log = "".join(lines)
    assert "lightmail is running" in log, log
    assert "database: sqlite+aiosqlite:///" in log
    assert "blobs: filesystem " in log
    assert "imap: listening on 127.0.0.1:" in log
    assert "pop3: listening on 127.0.0.1:" in log
    assert "api: listening on 127.0.0.1:" in log
    assert "dav: listening on 127.0.0.1:" in log
    assert "gc: every 5m, purging mail deleted more than 7d ago" in log
    assert f"lmtp: listening on unix:{tmp_path / 'data' / 'lmtp.sock'}" in log
    process.send_signal(signum)
    _, rest = process.communicate(timeout=30)
    log += rest
    assert process.returncode == 0, log
    assert "Traceback" not in log
    assert "stopped" in rest
    assert (tmp_path / "data" / "lightmail.db").exists()
    assert not (tmp_path / "data" / "lmtp.sock").exists()  # removed at stop


def serve_refused(tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``lightmail serve`` in ``tmp_path`` with ``settings`` over the environment,
    expected to stop at once."""
    env = {**os.environ, **settings}
    env.pop("LIGHTMAIL_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "lightmail", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_a_bad_config_with_one_line(tmp_path: Path) -> None:
    result = serve_refused(tmp_path, {"LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:99999"})
    assert result.returncode == 2
    assert result.stderr.startswith("lightmail: config [imap] listen = '127.0.0.1:99999'")
    assert result.stderr.count("\n") == 1


def test_serve_refuses_a_blob_cache_folder_it_cannot_make_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    settings = {
        "LIGHTMAIL_BLOBS_URL": "s3://mail",
        "LIGHTMAIL_BLOBS_CACHE_FOLDER": str(tmp_path / "file" / "copies"),
    }
    result = serve_refused(tmp_path, settings)
    assert result.returncode == 2
    assert result.stderr == (
        f"lightmail: config [blobs] cache_folder = '{tmp_path}/file/copies' is invalid: "
        "expected a folder LightMail can write (Not a directory)\n"
    )


def test_gc_run_without_once_keeps_running_until_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
        "LIGHTMAIL_LOG_LEVEL": "info",
        "LIGHTMAIL_GC_INTERVAL": "1s",
    }
    env.pop("LIGHTMAIL_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "lightmail", "gc", "run"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    assert "gc: every 1s" in process.stderr.readline()
    time.sleep(1.5)  # at least one run after the first
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "Traceback" not in rest


def test_serve_reads_the_config_file_given_before_the_command(tmp_path: Path) -> None:
    """``lightmail --config FILE serve``: FILE, not the defaults or ./config.ini."""
    config = tmp_path / "chosen.ini"
    config.write_text(
        "[server]\n"
        f"data_dir = {tmp_path / 'chosen-data'}\n"
        "[imap]\nlisten = 127.0.0.1:0\n"
        "[pop3]\nlisten = 127.0.0.1:0\n"
        "[lmtp]\nlisten = 127.0.0.1:0\n"
        "[api]\nlisten =\n"
        "[gc]\nenabled = false\n"
    )
    (tmp_path / "config.ini").write_text("[imap]\nlisten = 127.0.0.1:99999\n")  # not asked for
    env = {**os.environ, "LIGHTMAIL_LOG_LEVEL": "info"}
    env.pop("LIGHTMAIL_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "lightmail", "--config", str(config), "serve"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "lightmail is running" in line:
            break
    log = "".join(lines)
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=30)
    assert f"config: {config}\n" in log, log + rest
    assert "lightmail is running" in log
    assert "api: listening" not in log
    assert (tmp_path / "chosen-data" / "lightmail.db").exists()
    assert process.returncode == 0, log + rest
