"""OBJECTID (RFC 8474) over a raw socket, on both backends: MAILBOXID from CREATE,
SELECT and STATUS, kept by RENAME; EMAILID shared by a COPY; THREADID shared by a
reply; SEARCH EMAILID and THREADID."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_condstore import command
from tests.integration.imap.test_hostile import connect, login

ROOT = b"From: a@example.org\r\nSubject: plans\r\nMessage-ID: <root@example.org>\r\n\r\nfirst\r\n"
REPLY = (
    b"From: b@example.org\r\nSubject: Re: plans\r\nMessage-ID: <reply@example.org>\r\n"
    b"In-Reply-To: <root@example.org>\r\nReferences: <root@example.org>\r\n\r\nsecond\r\n"
)
OTHER = b"From: c@example.org\r\nSubject: other\r\n\r\nno id at all\r\n"


def _ids(lines: list[bytes]) -> dict[int, tuple[bytes, bytes]]:
    found = {}
    for line in lines:
        match = re.fullmatch(rb"\* (\d+) FETCH \(EMAILID \((\S+)\) THREADID \((\S+)\)\)", line)
        if match is not None:
            found[int(match[1])] = (match[2], match[3])
    return found


async def test_object_ids_of_mailboxes_and_messages(imap: ImapTarget) -> None:
    user = await imap.new_user()
    store = imap.backend.store
    for message in (ROOT, REPLY, OTHER):

        async def source(data: bytes = message) -> AsyncIterator[bytes]:
            yield data

        await store.append(user.id, "INBOX", source())
    inbox = await store.get_mailbox(user.id, "INBOX")

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"C CAPABILITY\r\n")
            assert b" OBJECTID" in wire.line()
            command(wire, b"c", b"NOOP")
            created = command(wire, b"a", b"CREATE Projects")[-1]
            match = re.fullmatch(rb"a OK \[MAILBOXID \((F\d+)\)\] Create completed", created)
            assert match is not None
            projects = match[1]
            assert command(wire, b"b", b"STATUS Projects (MAILBOXID MESSAGES)")[0] == (
                b"* STATUS Projects (MAILBOXID (" + projects + b") MESSAGES 0)"
            )
            command(wire, b"r", b"RENAME Projects Plans")
            assert command(wire, b"s", b"STATUS Plans (MAILBOXID)")[0] == (
                b"* STATUS Plans (MAILBOXID (" + projects + b"))"
            )
            selected = command(wire, b"e", b"EXAMINE INBOX")
            assert b"* OK [MAILBOXID (F%d)] Ok" % inbox.id in selected

            ids = _ids(command(wire, b"f", b"FETCH 1:* (EMAILID THREADID)"))
            assert set(ids) == {1, 2, 3}
            (root_email, root_thread), (reply_email, reply_thread) = ids[1], ids[2]
            assert root_thread == reply_thread  # one thread
            assert len({root_email, reply_email, ids[3][0]}) == 3
            assert ids[3][1] not in (root_thread,)
            for value in (*ids[1], *ids[2], *ids[3]):
                assert re.fullmatch(rb"[MT][0-9a-f]{24,32}", value), value

            # A copy is the same message: the same EMAILID and THREADID (section 5.1).
            command(wire, b"g", b"COPY 1 Plans")
            command(wire, b"h", b"SELECT Plans")
            assert _ids(command(wire, b"i", b"FETCH 1 (EMAILID THREADID)")) == {1: ids[1]}
            command(wire, b"j", b"SELECT INBOX")
            assert command(wire, b"k", b"SEARCH EMAILID " + reply_email)[0] == b"* SEARCH 2"
            assert command(wire, b"l", b"SEARCH THREADID " + root_thread)[0] == b"* SEARCH 1 2"
            assert command(wire, b"m", b"SEARCH EMAILID " + reply_email.upper())[0] == b"* SEARCH"
            wire.send(b"n SEARCH EMAILID not/an/id\r\n")
            assert wire.line().startswith(b"n BAD ")

    await asyncio.to_thread(conversation)
