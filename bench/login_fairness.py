"""Login fairness: a legitimate login while one client address guesses passwords.

Starts ``lightmail serve`` (SQLite, IMAP only, every [auth] key at its
default) as a child process in a temporary folder, with two users: alice (the
legitimate user) and mallory. Then:

1. ``--attackers`` threads (default 20) log in again and again over IMAP from
   127.0.0.2 with wrong passwords (for mallory, or for alice with
   ``--target alice``), reconnecting whenever the server hangs up, while
   alice logs in ``--logins`` times (default 10, one every 0.5 s) from
   127.0.0.1. Printed: the latency of alice's LOGIN (connect + greeting +
   LOGIN), first login and all logins p50/max, and how many guesses were
   answered.
2. With no attack: ``--probes`` failed logins (default 5) each for an
   unknown user and for a known user with a wrong password, each from its own
   address (127.0.1.N and 127.0.2.N) and each known one for its own user
   (probeN), so that no throttling is involved: every known user's password
   is checked. Printed: the answer time p50/min/max of each.

``--src`` runs another checkout's code (its ``src`` folder) with this
environment, e.g. the code before the login hardening::

    git worktree add /tmp/authbase fdb5633
    uv run python bench/login_fairness.py --src /tmp/authbase/src
    uv run python bench/login_fairness.py
    uv run python bench/login_fairness.py --target alice --attackers 10
"""

from __future__ import annotations

import argparse
import imaplib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "correct horse battery staple"
DOMAIN = "bench.example"


class SourceImap(imaplib.IMAP4):
    """imaplib from a chosen loopback source address."""

    def __init__(self, source: str, port: int) -> None:
        self.source = source
        super().__init__("127.0.0.1", port, timeout=60)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection(
            (self.host, self.port), timeout, source_address=(self.source, 0)
        )


def _env(src: Path, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTMAIL_")}
    env.update(
        PYTHONPATH=str(src),
        LIGHTMAIL_SERVER_DATA_DIR=str(data),
        LIGHTMAIL_IMAP_LISTEN="127.0.0.1:0",
        LIGHTMAIL_POP3_LISTEN="",
        LIGHTMAIL_LMTP_LISTEN="",
        LIGHTMAIL_API_LISTEN="",
        LIGHTMAIL_DAV_LISTEN="",
        LIGHTMAIL_GC_ENABLED="false",
        LIGHTMAIL_LOG_LEVEL="info",
    )
    return env


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "lightmail", *args], env=env, check=True, capture_output=True
    )


@contextmanager
def server(src: Path, probes: int) -> Iterator[int]:
    with tempfile.TemporaryDirectory(prefix="login-fairness-") as folder:
        env = _env(src, Path(folder) / "data")
        _cli(env, "domain", "add", DOMAIN)
        for user in ("alice", "mallory", *(f"probe{n}" for n in range(probes))):
            _cli(env, "user", "add", f"{user}@{DOMAIN}", "--password", PASSWORD)
        process = subprocess.Popen(
            [sys.executable, "-m", "lightmail", "serve"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            found = re.search(r"imap: listening on 127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found[1])
            if "lightmail is running" in line:
                break
        if port is None:
            process.kill()
            raise SystemExit("the server did not start")
        # Keep reading its log (throttling warnings), so its stderr never fills up.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        try:
            yield port
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def login_seconds(source: str, port: int, user: str, password: str) -> tuple[float, bool]:
    started = time.perf_counter()
    client = SourceImap(source, port)
    try:
        client.login(user, password)
        ok = True
    except imaplib.IMAP4.error:
        ok = False
    finally:
        elapsed = time.perf_counter() - started
        client.shutdown()
    return elapsed, ok


def attack(port: int, target: str, stop: threading.Event, answered: list[int]) -> None:
    n = 0
    while not stop.is_set():
        try:
            client = SourceImap("127.0.0.2", port)
        except OSError:
            time.sleep(0.1)  # refused (max_connections_per_ip): try again
            continue
        try:
            while not stop.is_set():
                n += 1
                try:
                    client.login(target, f"guess-{threading.get_ident()}-{n}")
                except imaplib.IMAP4.abort:
                    break  # BYE after max_login_failures
                except imaplib.IMAP4.error:
                    answered.append(1)
        except OSError:
            pass
        finally:
            client.shutdown()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    parser.add_argument("--attackers", type=int, default=20)
    parser.add_argument("--logins", type=int, default=10)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--target", choices=["mallory", "alice"], default="mallory")
    args = parser.parse_args()
    alice, target = f"alice@{DOMAIN}", f"{args.target}@{DOMAIN}"
    print(f"code: {args.src}; cores: {os.cpu_count()}")
    with server(args.src, args.probes) as port:
        stop = threading.Event()
        answered: list[int] = []
        threads = [
            threading.Thread(target=attack, args=(port, target, stop, answered))
            for _ in range(args.attackers)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # let the attack get going
        started = time.perf_counter()
        latencies, failures = [], 0
        for _ in range(args.logins):
            seconds, ok = login_seconds("127.0.0.1", port, alice, PASSWORD)
            latencies.append(seconds)
            failures += not ok
            time.sleep(0.5)
        attack_seconds = time.perf_counter() - started + 1.0
        stop.set()
        for thread in threads:
            thread.join()
        print(
            f"legitimate login during {args.attackers} attacker threads on {target} "
            f"from 127.0.0.2: first {_ms(latencies[0])}, "
            f"p50 {_ms(statistics.median(latencies))}, max {_ms(max(latencies))}, "
            f"{failures} of {args.logins} refused"
        )
        print(f"guesses answered: {len(answered)} in {attack_seconds:.0f} s")

        time.sleep(2.0)  # let the last answers drain
        for net, label, user in ((1, "unknown user", "nobody"), (2, "known user", "probe")):
            times = [
                login_seconds(f"127.0.{net}.{n + 1}", port, f"{user}{n}@{DOMAIN}", "wrong")[0]
                for n in range(args.probes)
            ]
            print(
                f"failed login, {label}, wrong password: p50 {_ms(statistics.median(times))}, "
                f"min {_ms(min(times))}, max {_ms(max(times))}"
            )


if __name__ == "__main__":
    main()
