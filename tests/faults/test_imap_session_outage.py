"""An IMAP session stays up when the database fails under a command.

Before the fix the error reply path announced the changes another session had
made, which reads the database, failed again, and the exception ended the
session. The reply must need nothing from the database, and the session
catches up on its next command once the database is back.
"""

from __future__ import annotations

from tests.faults.conftest import RigFactory
from tests.support.private_mariadb import PrivateMariaDB

MESSAGE = b"From: a@example.org\r\nSubject: hello\r\n\r\nHello.\r\n"


async def test_database_down_with_changes_pending_answers_unavailable_and_keeps_session(
    rig_factory: RigFactory, private_mariadb: PrivateMariaDB
) -> None:
    rig = await rig_factory()
    user = await rig.new_user()
    watcher, changer = await rig.imap_client(user), await rig.imap_client(user)
    assert (await changer.command("APPEND INBOX", MESSAGE))[0].startswith(b"OK")
    for client in (watcher, changer):
        assert (await client.command("SELECT INBOX"))[0].startswith(b"OK")
    assert (await changer.command("STORE 1 +FLAGS.SILENT (\\Flagged)"))[0].startswith(b"OK")
    await changer.close()
    private_mariadb.kill()
    try:
        status, _ = await watcher.command("FETCH 1 BODY.PEEK[]")
        assert status.startswith(b"NO [UNAVAILABLE]"), status
        status, _ = await watcher.command("STATUS INBOX (MESSAGES)")
        assert status.startswith(b"NO [UNAVAILABLE]"), status
    finally:
        private_mariadb.start()
    status, untagged = await watcher.command("NOOP")
    assert status.startswith(b"OK"), status
    assert any(b"FETCH" in line and b"\\Flagged" in line for line in untagged), untagged
    status, lines = await watcher.command("FETCH 1 BODY.PEEK[]")
    assert status.startswith(b"OK"), status
    assert MESSAGE in lines[0]
    await watcher.close()
