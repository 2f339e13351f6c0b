"""Real mail transfer agents delivering to LightMail's LMTP server.

swaks speaks LMTP to the TCP port and the unix socket. A private Postfix
instance (see tests/support/postfix.py) takes mail from its ``sendmail`` and
delivers it with its ``lmtp`` client to LightMail's unix socket, as it would in
production with ``virtual_transport = lmtp:unix:...``.

Postfix and swaks run as subprocesses while the LMTP server runs in the test's
event loop: every blocking call goes through a thread or an asyncio subprocess
so the server keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from lightmail.accounts.service import User
from lightmail.config import TcpAddress, load_settings
from lightmail.errors import TemporaryFailure
from lightmail.lmtp.server import LmtpServer
from lightmail.mailstore.store import MailStore
from tests.conftest import Backend
from tests.integration.lmtp.conftest import LmtpTarget
from tests.integration.lmtp.test_delivery import stored, without_trace
from tests.support.postfix import Postfix, find_postfix, running_postfix
from tests.support.require import require

# A complete message, so we control every byte swaks and Postfix are given:
# lines that start with dots (one is a lone dot), 8-bit text, a long line.
MESSAGE = (
    b"Date: Tue, 24 Nov 2020 10:00:00 +0000\r\n"
    b"Message-ID: <mta-test@example.net>\r\n"
    b"From: Sender <sender@example.net>\r\n"
    b"To: someone@example.org\r\n"
    b"Subject: MTA test\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"First line.\r\n"
    b".A line that starts with a dot.\r\n"
    b"..Two dots.\r\n"
    b".\r\n"
    b"The line above is a lone dot.\r\n"
    b"8-bit: caf\xc3\xa9\r\n" + b"long " * 150 + b"\r\n"
    b"Last line.\r\n"
)

DELIVERY_TIMEOUT = 20.0  # seconds for Postfix to hand a message to LightMail


def find_swaks() -> str | None:
    return shutil.which("swaks")


async def swaks(*args: str) -> tuple[int, str]:
    """Run swaks; its exit status and its transcript (stdout and stderr together)."""
    process = await asyncio.create_subprocess_exec(
        "swaks",
        "--protocol",
        "LMTP",
        "--helo",
        "mta.example.org",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def replies_after_data(transcript: str) -> list[str]:
    """The server's replies after the end-of-data dot, one line each, as swaks shows them."""
    _, _, after = transcript.partition("\n -> .\n")
    assert after, f"no end of data in the swaks transcript:\n{transcript}"
    replies = []
    for line in after.splitlines():
        reply = re.match(r"^(?:<-|<\*\*) +(\d{3} .*)$", line)
        if reply is None:
            break
        replies.append(reply.group(1))
    return replies


def rcpt_replies(transcript: str) -> list[tuple[str, str]]:
    """Each RCPT TO address with the reply swaks shows for it."""
    return re.findall(r"^ -> RCPT TO:<(.*)>\n(?:<-|<\*\*) +(\d{3} .*)$", transcript, re.MULTILINE)


@pytest.fixture
def swaks_available() -> None:
    require(
        "swaks", find_swaks() is not None, "install Debian's swaks (scripts/system-packages.sh)"
    )


@pytest.fixture
def message_file(tmp_path: Path) -> Path:
    """MESSAGE for ``swaks --data @file``, ending with the end-of-data line.

    swaks always sends CRLF "." after the data: from a file that ends with CRLF it
    would send an empty line more than the file has. It takes a final "." line
    off the file first, so a file ending in "CRLF . CRLF" goes out byte for byte.
    """
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE + b".\r\n")
    return path


@pytest.mark.usefixtures("swaks_available")
@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
async def test_swaks_delivers_a_message_byte_for_byte(
    lmtp: LmtpTarget, message_file: Path, unix: bool
) -> None:
    user = await lmtp.new_user()
    where = (
        ["--socket", str(lmtp.socket_path)]
        if unix
        else ["--server", lmtp.host, "--port", str(lmtp.port)]
    )
    code, transcript = await swaks(
        *where, "--from", "sender@example.net", "--to", user.address, "--data", f"@{message_file}"
    )
    assert code == 0, transcript
    assert replies_after_data(transcript) == ["250 2.1.5 Delivered"], transcript
    # swaks stuffed the dot lines on the wire; LightMail took them off again.
    assert re.search(r"^ -> \.\.A line that starts with a dot\.\r$", transcript, re.MULTILINE)
    assert re.search(r"^ -> \.\.\r$", transcript, re.MULTILINE)
    [message] = await stored(lmtp, user)
    assert without_trace(message) == MESSAGE
    assert message.startswith(b"Return-Path: <sender@example.net>\r\n")


@pytest.mark.usefixtures("swaks_available")
async def test_swaks_multiple_recipients_with_one_unknown(
    lmtp: LmtpTarget, message_file: Path
) -> None:
    alice, bob = await lmtp.new_user(), await lmtp.new_user()
    unknown = f"nobody@{lmtp.backend.domain}"
    code, transcript = await swaks(
        "--socket",
        str(lmtp.socket_path),
        "--from",
        "sender@example.net",
        "--to",
        f"{alice.address},{unknown},{bob.address}",
        "--data",
        f"@{message_file}",
    )
    assert rcpt_replies(transcript) == [
        (alice.address, "250 2.1.5 Recipient OK"),
        (unknown, "550 5.1.1 No such user here"),
        (bob.address, "250 2.1.5 Recipient OK"),
    ], transcript
    # LMTP: one reply after DATA for each accepted recipient, in RCPT order.
    assert replies_after_data(transcript) == ["250 2.1.5 Delivered"] * 2, transcript
    assert code == 0, transcript
    [to_alice], [to_bob] = await stored(lmtp, alice), await stored(lmtp, bob)
    assert without_trace(to_alice) == without_trace(to_bob) == MESSAGE


# --- Postfix -------------------------------------------------------------------------


@pytest.fixture
def postfix_available() -> None:
    require(
        "Postfix",
        find_postfix() is not None and os.geteuid() == 0,
        "install Debian's postfix (scripts/system-packages.sh) and run the tests as root "
        "(Postfix's master runs as root)",
    )


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the ``postfix`` user can traverse (pytest's tmp_path parents are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="lightmail-postfix-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class LightMail:
    """LightMail's LMTP server on a socket Postfix's lmtp client (user postfix) can use."""

    def __init__(self, backend: Backend, data_dir: Path, socket_path: Path) -> None:
        self.backend = backend
        self.data_dir = data_dir
        self.socket_path = socket_path
        self.server: LmtpServer | None = None

    async def start(self) -> LmtpTarget:
        environ = {
            "LIGHTMAIL_SERVER_DATA_DIR": str(self.data_dir),
            "LIGHTMAIL_SERVER_HOSTNAME": "mx.test.example",
            "LIGHTMAIL_LMTP_LISTEN": f"127.0.0.1:0, unix:{self.socket_path}",
            # As in production: the socket belongs to Postfix's group, not to everyone.
            "LIGHTMAIL_LMTP_SOCKET_MODE": "0660",
            "LIGHTMAIL_LMTP_SOCKET_GROUP": "postfix",
        }
        server = LmtpServer(
            load_settings(None, environ), self.backend.store, self.backend.accounts, scanner=None
        )
        await server.start()
        self.server = server
        tcp = next(a for a in server.listener.bound_addresses if isinstance(a, TcpAddress))
        return LmtpTarget(self.backend, server, tcp.host, tcp.port, self.socket_path)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None


@pytest.fixture
async def lightmail(
    postfix_available: None, backend: Backend, tmp_path: Path, shared_dir: Path
) -> AsyncIterator[LightMail]:
    """Not started: tests start it (or not) themselves."""
    service = LightMail(backend, tmp_path / "data", shared_dir / "lmtp.sock")
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def postfix(lightmail: LightMail, shared_dir: Path) -> Iterator[Postfix]:
    transport = f"lmtp:unix:{lightmail.socket_path}"
    with running_postfix(
        shared_dir / "postfix", domain=lightmail.backend.domain, transport=transport
    ) as instance:
        yield instance


async def wait_stored(target: LmtpTarget, user: User, postfix: Postfix) -> list[bytes]:
    """The user's INBOX once something arrived, polling for up to DELIVERY_TIMEOUT."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not (messages := await stored(target, user)):
        if time.monotonic() > deadline:
            pytest.fail(
                f"nothing delivered in {DELIVERY_TIMEOUT} s; Postfix log:\n{postfix.log_text()}"
            )
        await asyncio.sleep(0.1)
    return messages


def without_postfix_received(message: bytes) -> bytes:
    """Drop the Received header Postfix's pickup adds on top (with its folded lines)."""
    assert message.startswith(b"Received: by mta.test.example (Postfix"), message[:200]
    lines = message.split(b"\r\n")
    end = 1
    while lines[end][:1] in (b" ", b"\t"):
        end += 1
    return b"\r\n".join(lines[end:])


def as_submitted(message: bytes) -> bytes:
    """What sendmail reads: text lines ended by LF (Postfix stores them as CRLF again)."""
    return message.replace(b"\r\n", b"\n")


async def sendmail(postfix: Postfix, recipients: list[str], message: bytes = MESSAGE) -> None:
    await asyncio.to_thread(
        postfix.sendmail, "sender@example.net", recipients, as_submitted(message)
    )


async def test_postfix_delivers_over_the_unix_socket(
    lightmail: LightMail, postfix: Postfix
) -> None:
    target = await lightmail.start()
    user = await target.new_user()
    await sendmail(postfix, [user.address])
    [message] = await wait_stored(target, user, postfix)
    assert message.startswith(b"Return-Path: <sender@example.net>\r\n")
    assert without_postfix_received(without_trace(message)) == MESSAGE
    await asyncio.to_thread(postfix.wait_for_log, rf"to=<{re.escape(user.address)}>.*status=sent")
    assert await asyncio.to_thread(postfix.queue_ids) == []


async def test_postfix_bounces_an_unknown_recipient(lightmail: LightMail, postfix: Postfix) -> None:
    target = await lightmail.start()
    bystander = await target.new_user()
    unknown = f"nobody@{target.backend.domain}"
    await sendmail(postfix, [unknown])
    found = await asyncio.to_thread(
        postfix.wait_for_log, rf"to=<{re.escape(unknown)}>.*status=bounced \((.*)\)$"
    )
    assert "550 5.1.1 No such user here" in found.group(1)
    assert "in reply to RCPT TO command" in found.group(1)
    # Not queued for a retry, and not stored anywhere.
    assert await asyncio.to_thread(postfix.queue_ids) == []
    assert await stored(target, bystander) == []
    assert [key async for page in target.backend.blobs.list("eml/") for key in page] == []


async def test_postfix_delivers_to_some_recipients_and_bounces_the_others(
    lightmail: LightMail, postfix: Postfix
) -> None:
    target = await lightmail.start()
    alice, full, bob = (
        await target.new_user(),
        await target.new_user(quota=100),
        await target.new_user(),
    )
    unknown = f"nobody@{target.backend.domain}"
    await sendmail(postfix, [alice.address, unknown, full.address, bob.address])
    [to_alice] = await wait_stored(target, alice, postfix)
    [to_bob] = await wait_stored(target, bob, postfix)
    assert without_trace(to_alice) == without_trace(to_bob)
    assert without_postfix_received(without_trace(to_bob)) == MESSAGE
    for address, reply in [
        (unknown, "550 5.1.1 No such user here"),
        (full.address, "552 5.2.2 Mailbox full"),
    ]:
        found = await asyncio.to_thread(
            postfix.wait_for_log, rf"to=<{re.escape(address)}>.*status=bounced \((.*)\)$"
        )
        assert reply in found.group(1)
    for user in (alice, bob):
        found = await asyncio.to_thread(
            postfix.wait_for_log, rf"to=<{re.escape(user.address)}>.*status=sent \((.*)\)$"
        )
        assert found.group(1) == "250 2.1.5 Delivered"
    assert await stored(target, full) == []
    assert await asyncio.to_thread(postfix.queue_ids) == []


@pytest.mark.parametrize("trouble", ["lightmail down", "store failing"])
async def test_postfix_defers_a_temporary_failure_and_delivers_once_after(
    lightmail: LightMail, postfix: Postfix, monkeypatch: pytest.MonkeyPatch, trouble: str
) -> None:
    target = await lightmail.start()
    user = await target.new_user()  # users live in the database, not in the LMTP server
    with monkeypatch.context() as patch:
        if trouble == "lightmail down":
            await lightmail.stop()
            assert not lightmail.socket_path.exists()
            expected = f"connect to mta.test.example[{lightmail.socket_path}]"
        else:

            async def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise TemporaryFailure("injected: the database is down")

            patch.setattr(MailStore, "_insert_object_key", unavailable)
            expected = "451 4.3.0 Temporary failure, try again later (in reply to end of DATA"

        await sendmail(postfix, [user.address])
        found = await asyncio.to_thread(
            postfix.wait_for_log, rf"to=<{re.escape(user.address)}>.*status=deferred \((.*)\)$"
        )
        assert expected in found.group(1)
        [queue_id] = await asyncio.to_thread(postfix.queue_ids)
        assert await stored(target, user) == []

    if trouble == "lightmail down":
        target = await lightmail.start()
    # Deferred mail waits minutes for its next try: only the flush delivers it now.
    await asyncio.to_thread(postfix.flush)
    [message] = await wait_stored(target, user, postfix)
    assert without_postfix_received(without_trace(message)) == MESSAGE
    await asyncio.to_thread(postfix.wait_for_log, rf"{queue_id}: removed")
    assert await asyncio.to_thread(postfix.queue_ids) == []
    assert len(re.findall(rf"{queue_id}: to=<.*status=sent", postfix.log_text())) == 1
    assert len(await stored(target, user)) == 1
