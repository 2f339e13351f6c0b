"""A private Postfix instance for tests: its own main.cf, master.cf and queue.

The instance has no smtpd at all: mail enters through Postfix's ``sendmail``
(postdrop -> pickup -> cleanup -> qmgr) and leaves through the ``lmtp`` client
for the virtual domain, or is thrown away (``discard``) for every other
domain, so bounce notifications never try to reach the internet. Postfix logs
to ``maillog_file`` through ``postlogd`` instead of syslog.

Postfix insists on ownerships: the queue directory belongs to root and its
subdirectories to ``mail_owner`` (``postfix``), the ``maildrop`` and ``public``
directories to the ``postdrop`` group. ``postfix check`` creates what is
missing with the right owners (``post-install create-missing``). The whole
instance lives under a directory that the ``postfix`` user can traverse.

Needs root (Postfix's master runs as root), Debian's ``postfix`` package and
its ``postfix`` user and ``postdrop`` group.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

SBIN = "/usr/sbin:/usr/local/sbin"

# Every service runs unchrooted ("n" in the chroot column): chrooted daemons
# would resolve the LMTP socket path inside the queue directory.
MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def find_postfix() -> Path | None:
    """Debian's ``/usr/sbin/postfix`` (sbin is not on every PATH)."""
    found = shutil.which("postfix") or shutil.which("postfix", path=SBIN)
    return Path(found) if found else None


@dataclass(frozen=True, slots=True)
class Postfix:
    config_dir: Path
    queue_dir: Path
    log: Path
    sbin: Path  # where postfix, sendmail and postqueue live

    def command(self, name: str, *args: str, stdin: bytes | None = None) -> str:
        """Run a Postfix command on this instance; raise with its output if it fails."""
        flag = "-C" if name == "sendmail" else "-c"
        result = subprocess.run(
            [str(self.sbin / name), flag, str(self.config_dir), *args],
            input=stdin,
            capture_output=True,
            timeout=30,
            check=False,
        )
        output = (result.stdout + result.stderr).decode(errors="replace")
        if result.returncode != 0:
            # Postfix commands write errors to stderr only when it is a terminal;
            # otherwise to maillog_file (once main.cf lets them) or to syslog.
            raise RuntimeError(
                f"{name} {' '.join(args)} exited {result.returncode}: {output}\n"
                f"Postfix log:\n{self.log_text()[-4000:]}"
            )
        return output

    def sendmail(self, sender: str, recipients: list[str], message: bytes) -> None:
        self.command("sendmail", "-i", "-f", sender, "--", *recipients, stdin=message)

    def flush(self) -> None:
        self.command("postqueue", "-f")

    def queue_ids(self) -> list[str]:
        """The queue ids ``postqueue -p`` lists (empty when the queue is empty)."""
        listing = self.command("postqueue", "-p")
        return re.findall(r"^([0-9A-Za-z]+)[*!]?\s+\d+\s", listing, re.MULTILINE)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first match of ``pattern`` in the log, polling until it shows up."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log_text(), re.MULTILINE)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in Postfix's log:\n{self.log_text()}")
            time.sleep(0.1)


def main_cf(directory: Path, domain: str, transport: str, log: Path) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {directory / "spool"}
data_directory = {directory / "data"}
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.test.example
mydomain = test.example
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
biff = no
virtual_mailbox_domains = {domain}
virtual_transport = {transport}
default_transport = discard:tests send no mail outside the virtual domain
relay_transport = $default_transport
maillog_file = {log}
maillog_file_prefixes = {directory}
# Deferred mail waits for the default backoff (300 s and more): within a test only
# ``postqueue -f`` retries it.
lmtp_connect_timeout = 5s
"""


@contextmanager
def running_postfix(directory: Path, *, domain: str, transport: str) -> Iterator[Postfix]:
    """Configure, check and start a Postfix instance in ``directory``; stop it after.

    ``directory`` and its parents must be traversable by the ``postfix`` user.
    ``transport`` is the virtual domain's transport, e.g. ``lmtp:unix:/path``.
    """
    postfix = find_postfix()
    if postfix is None:
        raise RuntimeError("postfix not found: install Debian's postfix")
    config_dir = directory / "etc"
    queue_dir = directory / "spool"
    log = directory / "maillog"
    config_dir.mkdir(parents=True)
    queue_dir.mkdir(mode=0o755)
    (config_dir / "main.cf").write_text(main_cf(directory, domain, transport, log))
    (config_dir / "master.cf").write_text(MASTER_CF)
    instance = Postfix(config_dir, queue_dir, log, postfix.parent)
    instance.command("postfix", "check")  # creates the queue subdirectories
    instance.command("postfix", "start")
    try:
        yield instance
    finally:
        with suppress(RuntimeError, subprocess.TimeoutExpired):
            instance.command("postfix", "stop")
        if not _stopped(queue_dir):
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                instance.command("postfix", "abort")  # kills master and its children now
            _stopped(queue_dir)


def _stopped(queue_dir: Path, timeout: float = 10.0) -> bool:
    """``postfix stop`` returns before master has exited: wait until its process is gone."""
    pid_file = queue_dir / "pid" / "master.pid"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return True
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False
