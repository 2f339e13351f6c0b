"""fetchmail (from Debian) against the POP3 server over STLS, on both backends.

fetchmail polls the account with ``keep`` and ``uidl`` into a local Maildir,
through a small MDA that stores each message it is handed unchanged (Python's
``mailbox.Maildir``). The server refuses plaintext logins from loopback
(``plaintext_networks`` is a documentation network), so a successful poll
proves fetchmail went through STLS; with ``sslcertck`` and the test CA as its
only trust anchor it verified the server certificate too. (getmail6 would be
the other obvious client, but it has no STLS for POP3, only POP3 over
implicit TLS, so it cannot do this.)

fetchmail changes every message it delivers in exactly one way, and the
comparison strips that and nothing else: it puts one ``Received:`` field
(``from localhost ... by <host> with POP3 (fetchmail-6.x) for <...>``, three
lines) in front of the header. No line-end normalisation is needed either:
``no stripcr`` keeps the CRLF line ends fetchmail would otherwise turn into LF
for an MDA, ``no rewrite`` leaves the address headers alone and ``no
mimedecode`` (the default) the bodies. So every message must be byte-identical
to the one delivered once that field is gone.

A second poll must fetch nothing: fetchmail remembers the UIDL values it has
seen, reports "200 messages (200 seen)", reads none and exits 1 ("no new mail").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from lightmail.accounts.service import User
from lightmail.mailstore.store import Recipient
from tests.integration.pop3.conftest import Pop3Factory, Pop3Target
from tests.support.require import require

TOTAL = 200
BIG = (11, 150)  # the indexes of the two ~100 KB messages
FETCHMAIL_TIMEOUT = 60.0

WORDS = ("mail", "store", "pop3", "maildir", "fetch", "uidl", "body", "line", "quota", "thanks")

# fetchmail's one addition: a Received field, first in the header, with continuation lines.
RECEIVED = re.compile(rb"\AReceived: [^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*")

MDA = """\
import mailbox
import sys

mailbox.Maildir(sys.argv[1], create=False).add(sys.stdin.buffer.read())
"""


# -- the messages ------------------------------------------------------------


def make_message(index: int, rng: random.Random) -> bytes:
    """Message ``index``: unique, CRLF line ends throughout, in one of several shapes."""
    headers = [
        f"From: Sender {index} <sender{index}@example.org>",
        "To: Alice <alice@example.org>",
        f"Subject: Message {index} {rng.choice(WORDS)}",
        f"Date: Tue, 24 Nov 2026 10:{index % 60:02d}:00 +0100",
        f"Message-ID: <p{index}.{rng.getrandbits(32):08x}@example.org>",
    ]
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))]
    lines += [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(rng.randint(0, 40))]
    kind = index % 6
    if index in BIG:
        headers.append("Content-Type: text/plain; charset=us-ascii")
        lines += [f"{n:06d} " + "y" * 90 for n in range(1050)]
    elif kind == 0:
        # POP3 dot-stuffing must be undone exactly, including a lone "." line.
        lines += [".", ".leading dot", "..two dots", "...", ". space", "From the desk of Bob"]
    elif kind == 1:
        headers += [
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        lines += ["Grüße aus Köln, ½ € — ça va? 日本語のテキスト", "Ünïcödé at the end"]
    elif kind == 2 and index % 4 == 2:  # every 12th: multi-part with a base64 attachment
        payload = rng.randbytes(rng.randint(100, 6000))
        encoded = base64.encodebytes(payload).decode().strip().split("\n")
        headers += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="b{index}"']
        lines = [
            "This is a multi-part message in MIME format.",
            f"--b{index}",
            "Content-Type: text/plain; charset=utf-8",
            "",
            *lines,
            ".dot inside a part",
            f"--b{index}",
            f"Content-Type: application/octet-stream; name=file{index}.bin",
            "Content-Transfer-Encoding: base64",
            "",
            *encoded,
            f"--b{index}--",
        ]
    elif kind == 3:
        # 8-bit Latin-1: not valid UTF-8, must come through as the same bytes.
        headers += [
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=iso-8859-1",
            "Content-Transfer-Encoding: 8bit",
        ]
        head = ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()
        return head + "Caf\xe9 cr\xe8me, \xbfqu\xe9 tal?\r\n.\xe9t\xe9\r\n".encode("latin-1")
    elif kind == 4:
        # A long folded header, trailing white space, a tab, an empty last line.
        headers.append("References: " + "\r\n ".join(f"<r{n}@example.org>" for n in range(30)))
        lines += ["trailing spaces   ", "\ttab first", ""]
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()


def make_messages() -> list[bytes]:
    rng = random.Random(20261124)
    return [make_message(index, rng) for index in range(TOTAL)]


async def deliver(target: Pop3Target, user: User, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    [outcome] = await target.backend.store.deliver([Recipient(user.id, user.address)], source())
    assert outcome.result is not None


# -- comparing -----------------------------------------------------------------


def without_received(message: bytes) -> bytes:
    """``message`` less the Received field fetchmail put first, which must be there."""
    match = RECEIVED.match(message)
    assert match is not None, message[:300]
    assert b"fetchmail" in match[0], match[0]
    return message[match.end() :]


def digests(messages: list[bytes]) -> Counter[str]:
    return Counter(hashlib.sha256(message).hexdigest() for message in messages)


def maildir_messages(maildir: Path) -> dict[str, bytes]:
    """Every message file in ``maildir``, by its name."""
    return {
        path.name: path.read_bytes() for sub in ("cur", "new") for path in (maildir / sub).iterdir()
    }


# -- fetchmail ---------------------------------------------------------------------


def write_fetchmailrc(target: Pop3Target, tmp_path: Path, user: User) -> Path:
    assert target.ca is not None
    ca_file = tmp_path / "ca.pem"
    target.ca.cert_pem.write_to_path(str(ca_file))
    mda = tmp_path / "maildir-mda"
    mda.write_text(f"#!{sys.executable} -IS\n{MDA}")  # isolated, no site
    mda.chmod(0o700)
    maildir = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"poll localhost service {target.port} protocol pop3 uidl auth password timeout 30\n"
        f'    user "{user.address}" password "secret"\n'
        "    sslproto tls1.2+ sslcertck\n"
        f"    sslcertfile {ca_file}\n"
        f'    mda "{mda} {maildir}"\n'
        "    keep no stripcr no rewrite no mimedecode\n"
    )
    rc.chmod(0o600)
    return rc


async def fetchmail(rc: Path, home: Path) -> tuple[int, str, float]:
    """One poll; fetchmail's exit status, its verbose output and the seconds taken."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "fetchmail",
        "--verbose",
        "--nodetach",
        "--fetchmailrc",
        str(rc),
        "--idfile",
        str(home / "fetchids"),
        "--pidfile",  # as root the lock is /var/run/fetchmail.pid, shared by every test run
        str(home / "fetchmail.pid"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "HOME": str(home), "FETCHMAILHOME": str(home)},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), FETCHMAIL_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        raise AssertionError(f"fetchmail timed out:\n{output.decode(errors='replace')}") from None
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace"), time.monotonic() - started


# -- the test ----------------------------------------------------------------------


async def test_fetchmail_over_stls_into_a_maildir_then_nothing_new(
    pop3_factory: Pop3Factory, tmp_path: Path
) -> None:
    require("fetchmail", shutil.which("fetchmail") is not None, "run scripts/system-packages.sh")
    target = await pop3_factory(tls=True, plaintext_networks="192.0.2.0/24")
    user = await target.new_user()
    messages = make_messages()
    timings: dict[str, float] = {}
    started = time.monotonic()
    for message in messages:
        await deliver(target, user, message)
    timings["deliver"] = time.monotonic() - started
    rc = write_fetchmailrc(target, tmp_path, user)
    home = tmp_path / "fetchmail-home"
    home.mkdir(mode=0o700)
    maildir = tmp_path / "Maildir"

    # First poll: all 200, each with fetchmail's Received field and otherwise unchanged.
    status, log, timings["poll 1"] = await fetchmail(rc, home)
    assert status == 0, f"fetchmail exited {status}:\n{log}"
    assert "POP3> STLS" in log, log
    assert "upgrade to TLS succeeded" in log, log
    assert f"{TOTAL} messages for {user.address} at localhost" in log, log
    assert log.count("reading message") == TOTAL, log
    fetched = maildir_messages(maildir)
    assert len(fetched) == TOTAL
    got, want = digests([without_received(m) for m in fetched.values()]), digests(messages)
    assert got == want, f"{len(got - want)} differ"

    # Second poll: everything already seen by UIDL, nothing fetched.
    status, log, timings["poll 2"] = await fetchmail(rc, home)
    assert status == 1, f"fetchmail exited {status}, not 1 (no new mail):\n{log}"
    assert f"{TOTAL} messages ({TOTAL} seen) for {user.address}" in log, log
    assert "reading message" not in log, log
    assert maildir_messages(maildir) == fetched
    print(", ".join(f"{step} {seconds:.1f}s" for step, seconds in timings.items()))
