"""IMAP commands through Python's imaplib against a running server, on both backends.

imaplib is blocking, so each client conversation runs in a worker thread
while the server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lightmail.mailstore.store import Recipient
from tests.integration.imap.conftest import ImapFactory, ImapTarget

MESSAGE = (
    b"From: Bob Example <bob@example.org>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Lunch on Friday\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
    b"Message-ID: <lunch@example.org>\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
    b".leading dot line\r\n"
)

MULTIPART = (
    b"From: carol@example.org\r\n"
    b"Subject: Report\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"See the attachment.\r\n"
    b"--XX\r\n"
    b"Content-Type: application/pdf; name=report.pdf\r\n"
    b"Content-Disposition: attachment; filename=report.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--XX--\r\n"
)


def ok(result: tuple[str, Any]) -> list[Any]:
    """The data of a command that must succeed."""
    typ, data = result
    assert typ == "OK", data
    return list(data)


async def deliver(target: ImapTarget, user_id: int, address: str, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    await target.backend.store.deliver([Recipient(user_id, address)], source())


async def test_greeting_capability_and_login(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with imap.client() as client:
            assert "IMAP4REV1" in client.capabilities
            assert "IDLE" in client.capabilities
            assert "AUTH=PLAIN" in client.capabilities
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                client.login(user.address, "wrong")
            data = ok(client.login(user.address, "secret"))
            assert b"[CAPABILITY IMAP4rev1" in data[0]
            typ, _ = client.select("INBOX")
            assert typ == "OK"
            ok(client.noop())

    await asyncio.to_thread(conversation)


async def test_authenticate_plain_with_initial_response(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with imap.client() as client:
            ok(client.authenticate("PLAIN", lambda _: f"\0{user.address}\0secret".encode()))
            assert client.state == "AUTH"

    await asyncio.to_thread(conversation)


async def test_login_disabled_outside_plaintext_networks(imap_factory: ImapFactory) -> None:
    target = await imap_factory(plaintext_networks="192.0.2.0/24")
    user = await target.new_user()

    def conversation() -> None:
        with target.client() as client:
            assert "LOGINDISABLED" in client.capabilities
            with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
                client.login(user.address, "secret")

    await asyncio.to_thread(conversation)


async def test_mailbox_management_and_list(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with imap.client(user) as client:
            ok(client.create("Projects/2026"))
            ok(client.create("Entwürfe".encode("utf-7").replace(b"+", b"&").decode()))
            listing = ok(client.list('""', "*"))
            lines = {line.decode() for line in listing}
            assert '(\\HasChildren) "/" Projects' in lines
            assert '(\\HasNoChildren) "/" Projects/2026' in lines
            assert '(\\HasNoChildren \\Sent) "/" Sent' in lines
            assert '(\\HasNoChildren) "/" INBOX' in lines
            assert '(\\HasNoChildren) "/" Entw&APw-rfe' in lines
            top = ok(client.list('""', "%"))
            assert b'(\\HasChildren) "/" Projects' in top
            assert not any(b"2026" in line for line in top)
            assert ok(client.list('""', '""')) == [b'(\\Noselect) "/" ""']
            ok(client.rename("Projects", "Work"))
            assert any(b"Work/2026" in x for x in ok(client.list("Work/", "*")))
            ok(client.delete("Work"))
            remaining = ok(client.list('""', "Work*"))
            assert b'(\\Noselect \\HasChildren) "/" Work' in remaining
            typ, data = client.delete("INBOX")
            assert typ == "NO"
            typ, data = client.select("Nowhere")
            assert typ == "NO"
            assert "NONEXISTENT" in str(data)
            ok(client.subscribe("Work/2026"))
            assert b'() "/" Work/2026' in ok(client.lsub('""', "*"))
            ok(client.unsubscribe("Work/2026"))
            assert b'() "/" Work/2026' not in ok(client.lsub('""', "*"))

    await asyncio.to_thread(conversation)


async def test_append_select_fetch(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with imap.client(user) as client:
            data = ok(client.append("INBOX", "(\\Flagged $Work)", None, MESSAGE))
            assert re.match(rb"\[APPENDUID \d+ 1\]", data[0])
            ok(client.append("INBOX", None, '"01-Jan-2026 12:00:00 +0000"', MULTIPART))
            assert ok(client.select("INBOX")) == [b"2"]
            assert client.untagged_responses.get("RECENT") == [b"2"]

            data = ok(client.fetch("1", "(UID FLAGS RFC822.SIZE ENVELOPE)"))
            line = data[0]
            assert isinstance(line, bytes)
            assert b"UID 1" in line
            assert b"FLAGS (\\Flagged $Work \\Recent)" in line
            assert f"RFC822.SIZE {len(MESSAGE)}".encode() in line
            assert b'"Lunch on Friday" (("Bob Example" NIL "bob" "example.org"))' in line

            data = ok(client.fetch("2", "(INTERNALDATE BODYSTRUCTURE)"))
            line = data[0]
            assert isinstance(line, bytes)
            assert b'INTERNALDATE "01-Jan-2026 12:00:00 +0000"' in line
            assert b'("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 19 0' in line
            assert b'"APPLICATION" "PDF" ("NAME" "report.pdf")' in line
            assert b'"MIXED" ("BOUNDARY" "XX")' in line

            # BODY.PEEK leaves \Seen alone; BODY[] sets it and says so.
            data = ok(client.fetch("1", "(BODY.PEEK[])"))
            assert data[0][1] == MESSAGE
            assert b"\\Seen" not in ok(client.fetch("1", "(FLAGS)"))[0]
            data = ok(client.fetch("1", "(BODY[TEXT])"))
            assert data[0][1] == b"Shall we meet at noon?\r\n.leading dot line\r\n"
            assert b"\\Seen" in data[1]

            data = ok(client.fetch("2", "(BODY[2] BODY[2.MIME] BODY.PEEK[1]<4.3>)"))
            # Body data always as literals (curl parses nothing else), even when short.
            assert data[0] == (b"2 (BODY[2] {12}", b"JVBERi0xLjQK")
            assert data[1][0].startswith(b" BODY[2.MIME] {")
            assert data[1][1].startswith(b"Content-Type: application/pdf")
            assert data[2] == (b" BODY[1]<4> {3}", b"the")
            assert data[3] == b" FLAGS (\\Seen \\Recent))"

            data = ok(client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT DATE)])"))
            assert data[0][1] == (
                b"Subject: Lunch on Friday\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\n\r\n"
            )
            data = ok(client.fetch("1:*", "(RFC822.HEADER)"))
            assert data[0][1] == MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
            data = ok(client.uid("FETCH", "2", "(RFC822)"))
            assert data[0][1] == MULTIPART
            assert b"UID 2" in data[0][0]

            with pytest.raises(imaplib.IMAP4.error, match="Invalid message sequence number"):
                client.fetch("3", "(FLAGS)")

    await asyncio.to_thread(conversation)


async def test_append_large_message_streams(imap: ImapTarget) -> None:
    user = await imap.new_user()
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 5000

    def conversation() -> None:
        with imap.client(user) as client:
            ok(client.append("INBOX", None, None, body))
            ok(client.select("INBOX", readonly=True))
            data = ok(client.fetch("1", "(RFC822.SIZE BODY.PEEK[])"))
            assert data[0][1] == body
            typ, data = client.append("Missing", None, None, b"Subject: x\r\n\r\nx\r\n")
            assert typ == "NO"
            assert b"TRYCREATE" in data[0]

    await asyncio.to_thread(conversation)


async def test_store_search_copy_move_expunge(imap: ImapTarget) -> None:
    user = await imap.new_user()
    for _ in range(3):
        await deliver(imap, user.id, user.address, MESSAGE)
    await deliver(imap, user.id, user.address, MULTIPART)

    def conversation() -> None:
        with imap.client(user) as client:
            ok(client.select("INBOX"))
            data = ok(client.store("1:2", "+FLAGS", "(\\Seen Important)"))
            assert data == [
                b"1 (FLAGS (\\Seen Important \\Recent))",
                b"2 (FLAGS (\\Seen Important \\Recent))",
            ]
            assert ok(client.store("2", "-FLAGS.SILENT", "(Important)")) == [None]
            assert ok(client.search(None, "SEEN")) == [b"1 2"]
            assert ok(client.search(None, "UNSEEN")) == [b"3 4"]
            assert ok(client.search(None, "KEYWORD", "Important")) == [b"1"]
            assert ok(client.search(None, "OR", "SUBJECT", "report", "UID", "1")) == [b"1 4"]
            assert ok(client.search(None, "NOT", "FROM", "bob")) == [b"4"]
            assert ok(client.search(None, "BODY", "noon", "2:*")) == [b"2 3"]
            assert ok(client.search(None, "TEXT", "REPORT")) == [b"4"]
            assert ok(client.search(None, "SENTON", "24-Nov-2026")) == [b"1 2 3"]
            assert ok(client.search(None, "LARGER", "300")) == [b"4"]
            assert ok(client.uid("SEARCH", "ALL")) == [b"1 2 3 4"]
            typ, data = client.search("ISO-8859-9", "ALL")
            assert typ == "NO"
            assert b"BADCHARSET" in data[0]

            data = ok(client.copy("1:2", "Archive"))
            assert re.match(rb"\[COPYUID \d+ 1:2 1:2\]", data[0])
            data = ok(client.uid("MOVE", "3", "Trash"))
            assert client.untagged_responses.pop("EXPUNGE") == [b"3"]
            assert ok(client.search(None, "ALL")) == [b"1 2 3"]

            ok(client.store("1", "+FLAGS", "(\\Deleted)"))
            assert ok(client.expunge()) == [b"1"]
            ok(client.store("1:2", "+FLAGS", "(\\Deleted)"))
            client.untagged_responses.clear()
            data = ok(client.uid("EXPUNGE", "4"))
            assert client.untagged_responses.get("EXPUNGE") == [b"2"]
            assert ok(client.uid("SEARCH", "ALL")) == [b"2"]
            ok(client.close())
            status = ok(client.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)"))
            assert status == [b"INBOX (MESSAGES 0 UIDNEXT 5 UNSEEN 0)"]
            status = ok(client.status("Archive", "(MESSAGES RECENT)"))
            assert status == [b"Archive (MESSAGES 2 RECENT 2)"]

    await asyncio.to_thread(conversation)


async def test_read_only_examine(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user.id, user.address, MESSAGE)

    def conversation() -> None:
        with imap.client(user) as client:
            typ, _ = client.select("INBOX", readonly=True)
            assert typ == "OK"
            typ, _data = client.store("1", "+FLAGS", "(\\Seen)")
            assert typ == "NO"
            client.fetch("1", "(BODY[])")
            assert b"\\Seen" not in ok(client.fetch("1", "(FLAGS)"))[0]

    await asyncio.to_thread(conversation)


async def test_two_sessions_see_each_others_changes(imap: ImapTarget) -> None:
    user = await imap.new_user()
    for _ in range(3):
        await deliver(imap, user.id, user.address, MESSAGE)

    def conversation() -> None:
        with imap.client(user) as first, imap.client(user) as second:
            ok(first.select("INBOX"))
            ok(second.select("INBOX"))
            ok(first.store("2", "+FLAGS", "(\\Flagged)"))
            ok(second.noop())
            flags = second.untagged_responses.pop("FETCH", [])
            assert any(b"\\Flagged" in x for x in flags)
            ok(first.store("1", "+FLAGS", "(\\Deleted)"))
            ok(first.expunge())
            ok(second.noop())
            assert second.untagged_responses.pop("EXPUNGE") == [b"1"]
            # Message 2 of before is message 1 now.
            assert ok(second.fetch("1", "(UID)")) == [b"1 (UID 2)"]
            # No EXPUNGE while answering FETCH: the next NOOP announces it.
            ok(first.store("1", "+FLAGS", "(\\Deleted)"))
            ok(first.expunge())
            second.untagged_responses.clear()
            _typ, _data = second.fetch("1:*", "(UID)")
            assert "EXPUNGE" not in second.untagged_responses
            ok(second.noop())
            assert second.untagged_responses.pop("EXPUNGE") == [b"1"]

    await asyncio.to_thread(conversation)


async def test_idle_sees_a_delivery_within_a_second(imap: ImapTarget) -> None:
    user = await imap.new_user()
    loop = asyncio.get_running_loop()

    def conversation() -> float:
        with imap.client(user) as client:
            ok(client.select("INBOX"))
            sock = client.socket()
            tag = b"I1"
            sock.sendall(tag + b" IDLE\r\n")
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"+ ")
            started = loop.time()
            asyncio.run_coroutine_threadsafe(
                deliver(imap, user.id, user.address, MESSAGE), loop
            ).result(timeout=10)
            sock.settimeout(5)
            line = reader.readline()
            waited = loop.time() - started
            assert line == b"* 1 EXISTS\r\n"
            sock.sendall(b"DONE\r\n")
            while not line.startswith(tag):
                line = reader.readline()
            assert line.startswith(b"I1 OK")
            return waited

    assert await asyncio.to_thread(conversation) < 1.0


async def test_namespace_id_enable_unselect(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with imap.client(user) as client:
            assert ok(client.namespace()) == [b'(("" "/")) NIL NIL']
            typ, _ = client.xatom("ID", '("name" "test")')
            assert typ == "OK"
            assert b'"LightMail"' in client.untagged_responses["ID"][0]
            ok(client.select("INBOX"))
            typ, _ = client.xatom("UNSELECT")
            assert typ == "OK"
            with pytest.raises(imaplib.IMAP4.error, match="not valid in authenticated state"):
                client.fetch("1", "(FLAGS)")

    await asyncio.to_thread(conversation)


async def test_garbage_gets_bad_and_the_connection_survives(imap: ImapTarget) -> None:
    def conversation() -> None:
        with socket.create_connection((imap.host, imap.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            sock.sendall(b"\x00\xff garbage\r\n")
            assert reader.readline().startswith(b"* BAD")
            sock.sendall(b"a1 FROBNICATE\r\n")
            assert reader.readline().startswith(b"a1 BAD")
            sock.sendall(b"a2 SELECT INBOX\r\n")
            assert reader.readline().startswith(b"a2 BAD")
            sock.sendall(b"a3 NOOP\r\n")
            assert reader.readline() == b"a3 OK completed\r\n"
            sock.sendall(b"a4 LOGOUT\r\n")
            assert reader.readline().startswith(b"* BYE")

    await asyncio.to_thread(conversation)


async def test_append_survives_an_unexpected_error_before_its_literal(
    imap: ImapTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await imap.new_user()

    async def broken(*args: Any) -> Any:
        raise RuntimeError("injected: a bug or an unexpected database error")

    monkeypatch.setattr(imap.backend.store, "get_mailbox", broken)

    def conversation() -> list[bytes]:
        with socket.create_connection((imap.host, imap.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            raw.sendall(f"a1 LOGIN {user.address} secret\r\n".encode())
            reader.readline()
            raw.sendall(b"a2 APPEND INBOX {10}\r\n")
            first = reader.readline()
            raw.sendall(b"a3 APPEND INBOX {10+}\r\n0123456789\r\na4 NOOP\r\n")
            return [first, reader.readline(), reader.readline()]

    assert await asyncio.to_thread(conversation) == [
        b"a2 NO [SERVERBUG] Internal error\r\n",
        b"a3 NO [SERVERBUG] Internal error\r\n",
        b"a4 OK completed\r\n",
    ]


async def test_search_body_looks_inside_encoded_text_parts(imap: ImapTarget) -> None:
    user = await imap.new_user()
    latin1_base64 = (
        b"Subject: one\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes("Grüße aus Köln".encode("iso-8859-1")).replace(b"\n", b"\r\n")
    )
    quoted_printable = (
        b"Subject: two\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Le caf=C3=A9 est tr=\r\n=C3=A8s bon\r\n"
    )
    attachment_only = (
        b'Subject: three\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n\r\n"
        + "Köln café".encode()
        + b"\r\n--b--\r\n"
    )
    for message in (latin1_base64, quoted_printable, attachment_only):
        await deliver(imap, user.id, user.address, message)

    def conversation() -> None:
        with imap.client(user) as client:
            ok(client.select("INBOX"))
            client.literal = "Köln".encode()  # type: ignore[assignment]  # the stub says str; imaplib sends bytes
            assert ok(client.search("UTF-8", "BODY")) == [b"1"]
            client.literal = "très".encode()  # type: ignore[assignment]
            assert ok(client.search("UTF-8", "TEXT")) == [b"2"]
            assert ok(client.search(None, "BODY", "attached")) == [b"3"]

    await asyncio.to_thread(conversation)
