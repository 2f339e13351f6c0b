"""QUOTA (RFC 9208) on the account quota, on both backends: GETQUOTAROOT and
GETQUOTA over a raw socket and through imapclient, STATUS DELETED and
DELETED-STORAGE, APPEND and COPY refused with OVERQUOTA (MOVE never); STATUS
APPENDLIMIT (RFC 7889)."""

from __future__ import annotations

import asyncio

from lightmail.accounts.service import User
from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_commands import MESSAGE, deliver
from tests.integration.imap.test_hostile import connect, login
from tests.integration.imap.test_imapclient import APPENDLIMIT
from tests.integration.imap.test_imapclient import connect as imapclient_connect
from tests.integration.imap.test_list_extended import _command


async def _holding(imap: ImapTarget, messages: int, *, quota: int) -> User:
    """A user with ``quota`` and ``messages`` copies of MESSAGE in INBOX."""
    user = await imap.backend.new_user(quota=quota)
    for _ in range(messages):
        await deliver(imap, user.id, user.address, MESSAGE)
    return user


async def test_getquotaroot_and_getquota_report_the_account_quota(imap: ImapTarget) -> None:
    """STORAGE in units of 1024 octets: usage rounded up, the limit rounded down."""
    user = await _holding(imap, 3, quota=10 * 1024 + 500)
    unlimited = await imap.new_user()
    used = -(-3 * len(MESSAGE) // 1024)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            assert _command(wire, b"GETQUOTAROOT INBOX") == [
                b'* QUOTAROOT INBOX ""',
                b'* QUOTA "" (STORAGE %d 10)' % used,
            ]
            # The mailbox need not exist (section 4.1.2).
            assert _command(wire, b"GETQUOTAROOT Later/Maybe")[0] == b'* QUOTAROOT Later/Maybe ""'
            assert _command(wire, b'GETQUOTA ""') == [b'* QUOTA "" (STORAGE %d 10)' % used]
            wire.send(b'G GETQUOTA "#user/other"\r\n')
            assert wire.line() == b"G NO [NONEXISTENT] No such quota root"
            wire.send(b'H SETQUOTA "" (STORAGE 1)\r\n')  # no QUOTASET: not a command here
            assert wire.line().startswith(b"H BAD ")
        with connect(imap) as wire:
            login(wire, unlimited)
            assert _command(wire, b"GETQUOTAROOT INBOX") == [
                b'* QUOTAROOT INBOX ""',
                b'* QUOTA "" ()',
            ]

    await asyncio.to_thread(conversation)


async def test_status_deleted_and_the_overquota_code(imap: ImapTarget) -> None:
    user = await _holding(imap, 3, quota=3 * len(MESSAGE))

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            _command(wire, b"SELECT INBOX")
            _command(wire, b"STORE 1,3 +FLAGS.SILENT (\\Deleted)")
            assert _command(wire, b"STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)") == [
                b"* STATUS INBOX (MESSAGES 3 DELETED 2 DELETED-STORAGE %d)" % (2 * len(MESSAGE))
            ]
            # RFC 7889 section 3: the APPENDLIMIT the capability shows, per mailbox too.
            limit = APPENDLIMIT
            assert _command(wire, b"STATUS Sent (APPENDLIMIT)") == [
                b"* STATUS Sent (APPENDLIMIT %d)" % limit
            ]
            assert b"* STATUS Trash (APPENDLIMIT %d)" % limit in _command(
                wire, b'LIST "" "Trash" RETURN (STATUS (APPENDLIMIT))'
            )
            wire.send(b"A APPEND INBOX {5+}\r\nHi!\r\n\r\n")
            assert wire.line() == b"A NO [OVERQUOTA] Quota exceeded"
        with imapclient_connect(imap, user) as client:
            assert client.has_capability("QUOTA")
            assert client.has_capability("QUOTA=RES-STORAGE")
            roots, quotas = client.get_quota_root("INBOX")
            assert roots.mailbox == "INBOX"
            assert roots.quota_roots == [""]
            assert [(q.quota_root, q.resource, q.usage, q.limit) for q in quotas] == [
                ("", "STORAGE", -(-3 * len(MESSAGE) // 1024), 3 * len(MESSAGE) // 1024)
            ]

    await asyncio.to_thread(conversation)


async def test_copy_past_the_quota_is_overquota_and_move_goes_through(imap: ImapTarget) -> None:
    """RFC 9208 section 4.3.1: COPY refused with OVERQUOTA, nothing copied; a MOVE
    leaves the usage as it was, so a full account can still clear its INBOX."""
    user = await _holding(imap, 2, quota=3 * len(MESSAGE))

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            _command(wire, b"SELECT INBOX")
            wire.send(b"C UID COPY 1:2 Archive\r\n")
            assert wire.line() == b"C NO [OVERQUOTA] Quota exceeded"
            assert _command(wire, b"STATUS Archive (MESSAGES)") == [
                b"* STATUS Archive (MESSAGES 0)"
            ]
            wire.send(b"M UID MOVE 1:2 Trash\r\n")
            lines = wire.until(b"M")
            assert lines[-1].startswith(b"M OK"), lines
            assert _command(wire, b"STATUS Trash (MESSAGES)") == [b"* STATUS Trash (MESSAGES 2)"]

    await asyncio.to_thread(conversation)
