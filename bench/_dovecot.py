"""Run a throwaway Dovecot IMAP or LMTP server for benchmarks, configured in a temporary folder.

Needs Debian's ``dovecot-imapd`` (``apt-get install dovecot-imapd``), or
``dovecot-lmtpd`` for :func:`running_dovecot_lmtp`, or ``dovecot-pop3d`` for
:func:`running_dovecot_pop3`. The
server gets its own ``dovecot.conf`` (no system configuration is read): IMAP
only, on 127.0.0.1 and a free port, no TLS, plaintext LOGIN allowed, users in
a passwd-file with one static uid/gid, maildir under the temporary folder.
Run as root, the mail user is ``nobody`` and Dovecot's own processes use the
``dovecot``/``dovenull`` users the package created; run as another user,
everything runs as that user.

``running_dovecot`` starts ``dovecot -F -c CONF`` as a child and stops it (and
removes the folder) when the block ends.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

_READY_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class DovecotServer:
    host: str
    port: int
    pid: int  # the master process; its children serve the connections
    workdir: Path

    def log_tail(self, lines: int = 20) -> str:
        return _tail(self.workdir / "dovecot.log", lines)


def find_dovecot() -> Path | None:
    for candidate in (shutil.which("dovecot"), "/usr/sbin/dovecot"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def dovecot_missing(protocol: str) -> str | None:
    """Why Dovecot cannot serve ``protocol`` (imap, pop3, lmtp) here; None if it can.

    Debian's ``dovecot-PROTOCOLd`` installs the service binary (and
    ``dovecot-core``, the master), which a benchmark checks before its
    LightMail runs rather than after them.
    """
    folders = ("/usr/lib/dovecot", "/usr/libexec/dovecot")
    if find_dovecot() is None or not any(Path(f, protocol).is_file() for f in folders):
        return f"Dovecot's {protocol} service not found: apt-get install dovecot-{protocol}d"
    return None


def _dovecot_for(protocol: str) -> Path:
    """The ``dovecot`` master binary, once ``protocol``'s service is known to be there."""
    dovecot = find_dovecot()
    missing = dovecot_missing(protocol)
    if dovecot is None or missing is not None:
        raise RuntimeError(missing)
    return dovecot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_dovecot(
    users: Mapping[str, str],
    *,
    max_connections: int = 1000,
    login_mode: str = "performance",
) -> Iterator[DovecotServer]:
    """Run Dovecot for ``users`` (address -> password hash such as ``{ARGON2ID}$argon2id$...``).

    ``max_connections`` sizes the process and client limits (one ``imap``
    process per logged-in connection, Dovecot's only supported mode).
    ``login_mode`` is ``performance`` (a few ``imap-login`` processes serving
    many clients each) or ``security`` (Dovecot's default: one ``imap-login``
    process per connection).
    """
    dovecot = _dovecot_for("imap")
    if login_mode not in ("performance", "security"):
        raise ValueError(f"login_mode {login_mode!r}")
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="lightmail-dovecot-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        mail_uid, mail_gid, internal_user, login_user = _identities()
        workdir.chmod(0o755)  # the mail user must reach mail/ below it
        mail = workdir / "mail"
        mail.mkdir()
        os.chown(mail, mail_uid, mail_gid)
        passwd = workdir / "passwd"
        passwd.write_text("".join(f"{user}:{hash_}::::::\n" for user, hash_ in users.items()))
        passwd.chmod(0o644)
        port = free_port()
        cpus = os.cpu_count() or 1
        limit = max_connections + 100
        if login_mode == "performance":
            login = (
                f"  service_count = 0\n  process_min_avail = {cpus}\n"
                f"  process_limit = {cpus}\n  client_limit = {limit}\n"
            )
        else:
            login = f"  service_count = 1\n  process_limit = {limit}\n"
        conf = workdir / "dovecot.conf"
        conf.write_text(
            f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {workdir}/run
state_dir = {workdir}/state
instance_name = lightmail-bench-{port}
log_path = {workdir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# The auth cache, as LightMail's [auth] cache_ttl: a returning login skips the hash.
auth_cache_size = 10M
auth_cache_ttl = 5 mins
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {min(mail_uid, 500)}
first_valid_gid = {min(mail_gid, 500)}
mail_location = maildir:{mail}/%u/Maildir
mail_max_userip_connections = {limit}
default_process_limit = {limit}
default_client_limit = {4 * limit}
default_vsz_limit = 1G
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={mail}/%u
}}
namespace inbox {{
  inbox = yes
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{login}}}
service imap {{
  process_limit = {limit}
}}
service auth {{
  client_limit = {4 * limit}
}}
service anvil {{
  client_limit = {4 * limit}
}}
"""
        )
        log = stack.enter_context((workdir / "stdout.log").open("wb"))
        process = subprocess.Popen(
            [str(dovecot), "-F", "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        stack.callback(_stop, process)
        server = DovecotServer("127.0.0.1", port, process.pid, workdir)
        _wait_until_ready(server, process)
        yield server


def _identities() -> tuple[int, int, str, str]:
    """(mail uid, mail gid, default_internal_user, default_login_user).

    As root: ``nobody`` owns the mail and Dovecot's processes use the
    ``dovecot``/``dovenull`` users the package created; otherwise everything is
    the current user.
    """
    if os.getuid() == 0:
        mail_user, mail_group = "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
        internal_user, login_user = "dovecot", "dovenull"
    else:
        mail_user = pwd.getpwuid(os.getuid()).pw_name
        mail_group = grp.getgrgid(os.getgid()).gr_name
        internal_user = login_user = mail_user
    return (
        pwd.getpwnam(mail_user).pw_uid,
        grp.getgrnam(mail_group).gr_gid,
        internal_user,
        login_user,
    )


@contextmanager
def running_dovecot_lmtp(
    addresses: Iterable[str], *, process_limit: int = 100
) -> Iterator[DovecotServer]:
    """Run Dovecot as an LMTP server delivering to maildir for ``addresses``.

    Only ``protocols = lmtp``, on 127.0.0.1 and a free port. The users are in
    a passwd-file (unknown recipients are refused at RCPT); each one's mail
    goes to ``workdir/mail/ADDRESS/Maildir`` (see :func:`maildir_count`).
    Dovecot's defaults are kept otherwise (one ``lmtp`` process per
    connection, reused; ``mail_fsync = optimized``).
    """
    dovecot = _dovecot_for("lmtp")
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="lightmail-dovecot-lmtp-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        mail_uid, mail_gid, internal_user, login_user = _identities()
        workdir.chmod(0o755)  # the mail user must reach mail/ below it
        mail = workdir / "mail"
        mail.mkdir()
        os.chown(mail, mail_uid, mail_gid)
        passwd = workdir / "passwd"
        # user:password:uid:gid:gecos:home:shell:extra; the password is never used (LMTP).
        passwd.write_text(
            "".join(
                f"{address}:{{PLAIN}}unused:{mail_uid}:{mail_gid}::{mail}/{address}::\n"
                for address in addresses
            )
        )
        passwd.chmod(0o644)
        port = free_port()
        conf = workdir / "dovecot.conf"
        conf.write_text(
            f"""\
protocols = lmtp
listen = 127.0.0.1
base_dir = {workdir}/run
state_dir = {workdir}/state
instance_name = lightmail-bench-lmtp-{port}
log_path = {workdir}/dovecot.log
ssl = no
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {min(mail_uid, 500)}
first_valid_gid = {min(mail_gid, 500)}
mail_location = maildir:{mail}/%u/Maildir
postmaster_address = postmaster@bench.example
default_process_limit = {process_limit + 10}
default_vsz_limit = 1G
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
namespace inbox {{
  inbox = yes
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  process_limit = {process_limit}
}}
"""
        )
        log = stack.enter_context((workdir / "stdout.log").open("wb"))
        process = subprocess.Popen(
            [str(dovecot), "-F", "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        stack.callback(_stop, process)
        server = DovecotServer("127.0.0.1", port, process.pid, workdir)
        _wait_until_ready(server, process, greeting=b"220 ", goodbye=b"QUIT\r\n")
        yield server


@contextmanager
def running_dovecot_pop3(
    users: Mapping[str, str],
    maildrops: Mapping[str, Iterable[bytes]],
    *,
    max_connections: int = 100,
) -> Iterator[DovecotServer]:
    """Run Dovecot as a POP3 server for ``users`` (address -> password hash).

    Only ``protocols = pop3``, on 127.0.0.1 and a free port, no TLS, plaintext
    USER/PASS allowed, a few ``pop3-login`` processes serving many clients
    each (``performance`` mode), one ``pop3`` process per logged-in
    connection. Before it starts, each address's messages in ``maildrops``
    (whole messages, CRLF line ends) are written to ``workdir/mail/ADDRESS/Maildir/new``
    as a delivery agent would, owned by the mail user.
    """
    dovecot = _dovecot_for("pop3")
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="lightmail-dovecot-pop3-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        mail_uid, mail_gid, internal_user, login_user = _identities()
        workdir.chmod(0o755)  # the mail user must reach mail/ below it
        mail = workdir / "mail"
        mail.mkdir()
        os.chown(mail, mail_uid, mail_gid)
        for address, messages in maildrops.items():
            _write_maildir(mail / address, messages, mail_uid, mail_gid)
        passwd = workdir / "passwd"
        passwd.write_text("".join(f"{user}:{hash_}::::::\n" for user, hash_ in users.items()))
        passwd.chmod(0o644)
        port = free_port()
        cpus = os.cpu_count() or 1
        limit = max_connections + 100
        conf = workdir / "dovecot.conf"
        conf.write_text(
            f"""\
protocols = pop3
listen = 127.0.0.1
base_dir = {workdir}/run
state_dir = {workdir}/state
instance_name = lightmail-bench-pop3-{port}
log_path = {workdir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# The auth cache, as LightMail's [auth] cache_ttl: a returning login skips the hash.
auth_cache_size = 10M
auth_cache_ttl = 5 mins
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {min(mail_uid, 500)}
first_valid_gid = {min(mail_gid, 500)}
mail_location = maildir:{mail}/%u/Maildir
mail_max_userip_connections = {limit}
default_process_limit = {limit}
default_client_limit = {4 * limit}
default_vsz_limit = 1G
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={mail}/%u
}}
namespace inbox {{
  inbox = yes
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  process_min_avail = {cpus}
  process_limit = {cpus}
  client_limit = {limit}
}}
service pop3 {{
  process_limit = {limit}
}}
service auth {{
  client_limit = {4 * limit}
}}
service anvil {{
  client_limit = {4 * limit}
}}
"""
        )
        log = stack.enter_context((workdir / "stdout.log").open("wb"))
        process = subprocess.Popen(
            [str(dovecot), "-F", "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        stack.callback(_stop, process)
        server = DovecotServer("127.0.0.1", port, process.pid, workdir)
        _wait_until_ready(server, process, greeting=b"+OK", goodbye=b"QUIT\r\n")
        yield server


def _write_maildir(home: Path, messages: Iterable[bytes], uid: int, gid: int) -> None:
    """``home/Maildir`` with ``messages`` in new/, all owned by ``uid``/``gid``."""
    maildir = home / "Maildir"
    for folder in (home, maildir, maildir / "new", maildir / "cur", maildir / "tmp"):
        folder.mkdir(exist_ok=True)
        os.chown(folder, uid, gid)
    stamp = int(time.time())
    for number, message in enumerate(messages):
        size = len(message)
        path = maildir / "new" / f"{stamp}.M{number}P{os.getpid()}.bench,S={size},W={size}"
        path.write_bytes(message)
        os.chown(path, uid, gid)


def maildir_count(server: DovecotServer, address: str) -> int:
    """Messages in ``address``'s maildir INBOX (new/ and cur/) of a Dovecot LMTP server."""
    maildir = server.workdir / "mail" / address / "Maildir"
    total = 0
    for sub in ("new", "cur"):
        with suppress(FileNotFoundError):
            total += sum(1 for _ in (maildir / sub).iterdir())
    return total


def _wait_until_ready(
    server: DovecotServer,
    process: subprocess.Popen[bytes],
    *,
    greeting: bytes = b"* OK",
    goodbye: bytes = b"",
) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"dovecot exited with status {process.returncode}:\n"
                f"{_tail(server.workdir / 'stdout.log')}\n{server.log_tail()}"
            )
        try:
            with socket.create_connection((server.host, server.port), timeout=2) as sock:
                if sock.recv(1024).startswith(greeting):
                    if goodbye:
                        sock.sendall(goodbye)
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"dovecot did not answer within {_READY_TIMEOUT:.0f} s:\n{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the master (it stops its children), then SIGKILL after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after it.
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) if it has gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            values[name] = int(rest.split()[0])
    return values.get("Rss", 0), values.get("Pss", 0)


def tree_memory_kb(root: int) -> tuple[int, int, int]:
    """(RSS sum, PSS sum, process count) of ``root`` and its descendants."""
    pids = process_tree(root)
    rss = pss = 0
    for pid in pids:
        one_rss, one_pss = memory_kb(pid)
        rss += one_rss
        pss += one_pss
    return rss, pss, len(pids)
