"""Debian's curl against the IMAP server, on both backends (issue #13, interop).

curl logs in with SASL-IR whenever the server advertises it (RFC 4959), so an
initial response that is not base64-decoded locks it out; and it parses FETCH
data only when it comes as a literal (exit 8, "Failed to parse FETCH
response", for a quoted string). Each test runs one curl command line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

from lightmail.accounts.service import User
from lightmail.mailstore.store import Recipient
from tests.integration.imap.conftest import PASSWORD, ImapTarget
from tests.support.curl import curl, sent

MESSAGE = (
    b"From: Bob Example <bob@example.org>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Lunch on Friday\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
)

MULTIPART = (
    b"From: carol@example.org\r\n"
    b"Subject: Report\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"See the attachment.\r\n"
    b"--XX\r\n"
    b"Content-Type: application/pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--XX--\r\n"
)


async def deliver(target: ImapTarget, user: User, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    await target.backend.store.deliver([Recipient(user.id, user.address)], source())


def url(target: ImapTarget, path: str = "") -> str:
    return f"imap://{target.host}:{target.port}/{path}"


def credentials(user: User) -> list[str]:
    return ["--user", f"{user.address}:{PASSWORD}"]


def initial_response(result_sent: list[str], mechanism: str) -> bytes:
    """The decoded SASL-IR curl sent with ``AUTHENTICATE mechanism``."""
    pattern = re.compile(rf"\S+ AUTHENTICATE {mechanism} ([A-Za-z0-9+/=]+)$")
    found = [m.group(1) for line in result_sent if (m := pattern.match(line))]
    assert len(found) == 1, result_sent
    return base64.b64decode(found[0])


async def test_curl_list_logs_in_with_plain_initial_response(imap: ImapTarget) -> None:
    user = await imap.new_user()
    result = await curl(*credentials(user), url(imap))
    assert result.returncode == 0, result.stderr
    assert initial_response(sent(result), "PLAIN") == f"\0{user.address}\0{PASSWORD}".encode()
    assert b'* LIST (\\HasNoChildren) "/" INBOX\r\n' in result.stdout
    assert b'* LIST (\\HasNoChildren \\Trash) "/" Trash\r\n' in result.stdout


async def test_curl_list_logs_in_with_login_initial_response(imap: ImapTarget) -> None:
    user = await imap.new_user()
    result = await curl("--login-options", "AUTH=LOGIN", *credentials(user), url(imap))
    assert result.returncode == 0, result.stderr
    assert initial_response(sent(result), "LOGIN") == user.address.encode()
    assert b'* LIST (\\HasNoChildren) "/" INBOX\r\n' in result.stdout


async def test_curl_wrong_password_is_refused(imap: ImapTarget) -> None:
    user = await imap.new_user()
    result = await curl("--user", f"{user.address}:wrong", url(imap))
    assert result.returncode == 67, result.stderr  # CURLE_LOGIN_DENIED
    assert result.stdout == b""


async def test_curl_select_and_search(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)
    await deliver(imap, user, MULTIPART)
    result = await curl(*credentials(user), url(imap, "INBOX?SUBJECT%20Report"))
    assert result.returncode == 0, result.stderr
    assert any(line.endswith(" SELECT INBOX") for line in sent(result)), result.stderr
    assert result.stdout == b"* SEARCH 2\r\n"


async def test_curl_fetch_by_uid(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)
    await deliver(imap, user, MULTIPART)
    result = await curl(*credentials(user), url(imap, "INBOX/;UID=2"))
    assert result.returncode == 0, result.stderr
    assert any(line.endswith(" UID FETCH 2 BODY[]") for line in sent(result)), result.stderr
    assert result.stdout == MULTIPART
    result = await curl(*credentials(user), url(imap, "INBOX/;UID=1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == MESSAGE


async def test_curl_fetch_small_section_sent_as_literal(imap: ImapTarget) -> None:
    """A body part with no line end fits a quoted string; curl needs a literal."""
    user = await imap.new_user()
    await deliver(imap, user, MULTIPART)
    result = await curl(*credentials(user), url(imap, "INBOX/;UID=1/;SECTION=1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"See the attachment."
    result = await curl(*credentials(user), url(imap, "INBOX/;UID=1/;SECTION=2"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"JVBERi0xLjQK"
    result = await curl(*credentials(user), url(imap, "INBOX/;UID=1/;SECTION=1/;PARTIAL=4.3"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"the"


async def test_curl_fetch_empty_section_sent_as_empty_literal(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MULTIPART)
    result = await curl(*credentials(user), url(imap, "INBOX/;UID=1/;SECTION=9"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""


async def test_curl_append_upload(imap: ImapTarget, tmp_path: Path) -> None:
    user = await imap.new_user()
    upload = tmp_path / "message.eml"
    upload.write_bytes(MESSAGE)
    result = await curl(*credentials(user), "--upload-file", str(upload), url(imap, "INBOX"))
    assert result.returncode == 0, result.stderr
    assert any(" APPEND INBOX " in line for line in sent(result)), result.stderr
    store = imap.backend.store
    inbox = await store.get_mailbox(user.id, "INBOX")
    [info] = await store.list_messages(inbox)
    assert b"".join([chunk async for chunk in store.read_message(info)]) == MESSAGE
    # And back down again with curl.
    result = await curl(*credentials(user), url(imap, f"INBOX/;UID={info.uid}"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == MESSAGE
