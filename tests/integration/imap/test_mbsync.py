"""mbsync (isync, from Debian) against the IMAP server, on both backends.

The IMAP issue asks that mbsync sync a 500-message account down to a local
Maildir and back up to a new account, twice, with no duplicates and
byte-identical messages. mbsync runs as an asyncio subprocess, so the server
keeps serving on the test's event loop meanwhile; the checks over IMAP use
imaplib in a worker thread.

mbsync 1.4 changes every message it copies in two ways, by design and with no
option to turn them off; the comparisons allow for exactly these and nothing
else:

* a Maildir holds Unix line endings: CRLF becomes LF on the way down and LF
  becomes CRLF again on the way up;
* each copied message gets one ``X-TUID: <12 characters>`` field, mbsync's
  transaction id for finding an appended message again, added as the last
  header field (an existing one is replaced, so a message that went down and
  up again still has just one).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lightmail.accounts.service import User
from lightmail.mailstore.store import Recipient
from tests.integration.imap.conftest import PASSWORD, ImapTarget
from tests.support.metrics import Changes
from tests.support.require import require

TOTAL = 500
# Folders other than INBOX and how many of the messages go there.
FOLDERS = {"Archive": 60, "Lists/Python": 40}
BIG = (7, 257)  # the indexes of the two ~100 KB messages
MBSYNC_TIMEOUT = 120.0

WORDS = ("mail", "store", "imap", "maildir", "sync", "folder", "body", "line", "quota", "thanks")

TUID = re.compile(rb"^X-TUID: [^\r\n]*\r?\n", re.MULTILINE)

Corpus = dict[str, list[bytes]]


# -- the messages ------------------------------------------------------------


def make_message(index: int, rng: random.Random) -> bytes:
    """Message ``index``: unique, CRLF line ends, in one of several shapes."""
    headers = [
        f"From: Sender {index} <sender{index}@example.org>",
        "To: Alice <alice@example.org>",
        f"Subject: Message {index} {rng.choice(WORDS)}",
        f"Date: Tue, 24 Nov 2026 10:{index % 60:02d}:00 +0100",
        f"Message-ID: <m{index}.{rng.getrandbits(32):08x}@example.org>",
    ]
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))]
    lines += [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(rng.randint(0, 40))]
    ending = "\r\n"
    kind = index % 7
    if index in BIG:
        headers.append("Content-Type: text/plain; charset=us-ascii")
        lines += [f"{n:06d} " + "y" * 90 for n in range(1050)]
    elif kind == 0:
        # SMTP dot-stuffing and mbox From_-quoting must not leak into storage.
        lines += [".", ".leading dot", "..two dots", "From the desk of Bob", "From ", ">From x"]
    elif kind == 1:
        headers += [
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        lines += ["Grüße aus Köln, ½ € — ça va? 日本語のテキスト", "Ünïcödé at the end"]
    elif kind == 2:
        payload = rng.randbytes(rng.randint(100, 6000))
        encoded = base64.encodebytes(payload).decode().strip().split("\n")
        headers += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="b{index}"']
        lines = [
            "This is a multi-part message in MIME format.",
            f"--b{index}",
            "Content-Type: text/plain; charset=utf-8",
            "",
            *lines,
            f"--b{index}",
            f"Content-Type: application/octet-stream; name=file{index}.bin",
            "Content-Transfer-Encoding: base64",
            "",
            *encoded,
            f"--b{index}--",
        ]
    elif kind == 3:
        # 8-bit Latin-1: not valid UTF-8, must come through as the same bytes.
        headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=iso-8859-1"]
        head = ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()
        return head + "Caf\xe9 cr\xe8me, \xbfqu\xe9 tal?\r\n".encode("latin-1")
    elif kind == 4:
        # A long folded header, trailing white space, a tab, an empty last line.
        headers.append("References: " + "\r\n ".join(f"<r{n}@example.org>" for n in range(30)))
        lines += ["trailing spaces   ", "\ttab first", ""]
    elif kind == 5:
        ending = ""  # no line end after the last line
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines) + ending).encode()


def make_corpus() -> Corpus:
    rng = random.Random(20261124)
    messages = [make_message(index, rng) for index in range(TOTAL)]
    corpus: Corpus = {}
    start = 0
    for folder, count in FOLDERS.items():
        corpus[folder] = messages[start : start + count]
        start += count
    corpus["INBOX"] = messages[start:]
    return corpus


async def deliver(target: ImapTarget, user: User, folder: str, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    [outcome] = await target.backend.store.deliver(
        [Recipient(user.id, user.address, folder)], source()
    )
    assert outcome.result is not None
    assert outcome.recipient.mailbox == folder


# -- comparing -----------------------------------------------------------------


def without_tuid(message: bytes) -> bytes:
    """``message`` less mbsync's X-TUID field, which must be there exactly once."""
    split = re.search(rb"\r?\n\r?\n", message)
    assert split is not None, message[:200]
    header, body = message[: split.start() + 1], message[split.start() + 1 :]
    if header.endswith(b"\r"):  # the CR of the header's last CRLF
        header, body = header + b"\n", body[1:]
    fields = TUID.findall(header)
    assert len(fields) == 1, f"{len(fields)} X-TUID fields in:\n{header.decode(errors='replace')}"
    return TUID.sub(b"", header) + body


def digests(messages: list[bytes]) -> Counter[str]:
    return Counter(hashlib.sha256(message).hexdigest() for message in messages)


def assert_same(label: str, got: Corpus, expected: Corpus) -> None:
    """Same folders with messages, and per folder the same multiset of messages."""
    got = {folder: messages for folder, messages in got.items() if messages}
    assert sorted(got) == sorted(expected), label
    for folder, messages in expected.items():
        have, want = digests(got[folder]), digests(messages)
        duplicates = sum(count - 1 for count in have.values() if count > 1)
        assert duplicates == 0, f"{label} {folder}: {duplicates} duplicates"
        assert len(got[folder]) == len(messages), f"{label} {folder}: count"
        assert have == want, f"{label} {folder}: {len(have - want)} differ"


def to_lf(corpus: Corpus) -> Corpus:
    return {folder: [m.replace(b"\r\n", b"\n") for m in ms] for folder, ms in corpus.items()}


# -- mbsync ----------------------------------------------------------------------


def write_mbsyncrc(target: ImapTarget, tmp_path: Path, a: User, b: User) -> Path:
    """Channel ``down`` pairs A with maildir-a, channel ``up`` pairs B with maildir-b."""
    sections = []
    for name, channel, user in (("a", "down", a), ("b", "up", b)):
        maildir = tmp_path / f"maildir-{name}"
        sections.append(
            f"IMAPAccount {name}\n"
            f"Host {target.host}\n"
            f"Port {target.port}\n"
            f"User {user.address}\n"
            f"Pass {PASSWORD}\n"
            "SSLType None\n"
            "AuthMechs LOGIN\n"
            "\n"
            f"IMAPStore {name}-imap\n"
            f"Account {name}\n"
            "\n"
            f"MaildirStore {name}-local\n"
            f"Path {maildir}/\n"
            f"Inbox {maildir}/INBOX\n"
            "SubFolders Verbatim\n"
            "\n"
            f"Channel {channel}\n"
            f"Far :{name}-imap:\n"
            f"Near :{name}-local:\n"
            "Patterns *\n"
            "Create Both\n"
            "SyncState *\n"
        )
    rc = tmp_path / "mbsyncrc"
    rc.write_text("\n".join(sections))
    return rc


async def mbsync(rc: Path, channel: str) -> float:
    """Run one channel, fail with mbsync's output unless it exits 0; the seconds taken."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "mbsync",
        "-V",
        "-c",
        str(rc),
        channel,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), MBSYNC_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        raise AssertionError(f"mbsync {channel} timed out:\n{text}") from None
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"mbsync {channel} exited {process.returncode}:\n{text}"
    return time.monotonic() - started


def maildir_snapshot(root: Path) -> dict[str, bytes]:
    """Every message file under ``root``, by path relative to it."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for sub in ("cur", "new")
        for folder in root.rglob(sub)
        for path in folder.iterdir()
    }


def maildir_corpus(snapshot: dict[str, bytes], tuid: bool = True) -> Corpus:
    corpus: Corpus = {}
    for name, content in snapshot.items():
        folder = name.rsplit("/", 2)[0]
        corpus.setdefault(folder, []).append(without_tuid(content) if tuid else content)
    return corpus


def copy_maildir(source: Path, dest: Path) -> None:
    """A copy of ``source`` less channel ``down``'s sync state, for a new pairing."""
    shutil.copytree(source, dest)
    for state in dest.rglob(".mbsyncstate*"):
        state.unlink()


# -- IMAP --------------------------------------------------------------------------


def ok(result: tuple[str, Any]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return list(data)


async def fetch_all(target: ImapTarget, user: User) -> Corpus:
    """Every message of every selectable mailbox of ``user``, by BODY.PEEK[]."""

    def conversation() -> Corpus:
        corpus: Corpus = {}
        with target.client(user) as client:
            for line in ok(client.list('""', "*")):
                match = re.fullmatch(rb'\(([^)]*)\) "/" "?([^"]*)"?', line)
                assert match is not None, line
                if b"\\Noselect" in match[1]:
                    continue
                folder = match[2].decode()
                count = int(ok(client.select(f'"{folder}"', readonly=True))[0])
                messages: list[bytes] = []
                if count:
                    data = ok(client.fetch("1:*", "(BODY.PEEK[])"))
                    messages = [item[1] for item in data if isinstance(item, tuple)]
                    assert len(messages) == count, folder
                corpus[folder] = messages
                ok(client.close())
        return corpus

    return await asyncio.to_thread(conversation)


# -- the test ----------------------------------------------------------------------


async def test_mbsync_down_and_up_again(imap: ImapTarget, tmp_path: Path) -> None:
    require("mbsync", shutil.which("mbsync") is not None, "run scripts/system-packages.sh")
    a = await imap.new_user()
    b = await imap.new_user()
    await imap.backend.store.create_mailbox(a.id, "Lists/Python")
    corpus = make_corpus()
    for folder, messages in corpus.items():
        for message in messages:
            await deliver(imap, a, folder, message)
    assert_same("A as delivered", await fetch_all(imap, a), corpus)
    rc = write_mbsyncrc(imap, tmp_path, a, b)
    commands = Changes()
    maildir_a, maildir_b = tmp_path / "maildir-a", tmp_path / "maildir-b"
    maildir_a.mkdir()
    timings: dict[str, float] = {}

    # Down: every message once, with LF line ends and an X-TUID field.
    timings["down 1"] = await mbsync(rc, "down")
    after_down = maildir_snapshot(maildir_a)
    assert len(after_down) == TOTAL
    assert_same("Maildir", maildir_corpus(after_down), to_lf(corpus))

    # Down again: nothing to do, on either side.
    timings["down 2"] = await mbsync(rc, "down")
    assert maildir_snapshot(maildir_a) == after_down
    in_a = await fetch_all(imap, a)
    assert_same("A after two syncs", in_a, corpus)

    # Up to B from a copy of the Maildir: CRLF again, one (new) X-TUID each.
    copy_maildir(maildir_a, maildir_b)
    timings["up 1"] = await mbsync(rc, "up")
    in_b = await fetch_all(imap, b)
    assert sorted(in_b) == sorted(in_a)  # the same folders, "Lists" and all
    assert_same("B", {folder: list(map(without_tuid, ms)) for folder, ms in in_b.items()}, corpus)
    after_up = maildir_snapshot(maildir_b)
    assert after_up == maildir_snapshot(maildir_a)

    # Up again: B has each message once still, and the Maildir is unchanged.
    timings["up 2"] = await mbsync(rc, "up")
    assert await fetch_all(imap, b) == in_b
    assert maildir_snapshot(maildir_b) == after_up
    # mbsync turns on COMPRESS=DEFLATE (RFC 4978) when offered: all four ran compressed.
    assert commands("lightmail_commands_total", protocol="imap", command="compress") >= 4
    print(", ".join(f"{step} {seconds:.1f}s" for step, seconds in timings.items()))
