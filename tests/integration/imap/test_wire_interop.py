"""IMAP wire details other clients depend on, over a raw socket, on both backends.

Issues #13 (interop) and #14 (hardening): SASL-IR decoding, body data always
as literals, spaces inside ID's and flag lists' parentheses, and NUL in a
delivered message (stored exactly, never sent: RFC 3501 section 4.3.1).
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator

from lightmail import __version__
from lightmail.accounts.service import User
from lightmail.mailstore.store import Recipient
from tests.integration.imap.conftest import PASSWORD, ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login, still_usable
from tests.integration.lmtp.conftest import LmtpFactory
from tests.integration.lmtp.conftest import lmtp_factory as lmtp_factory  # LMTP delivery

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
    b"--XX--\r\n"
)

_LITERAL = re.compile(rb"\{(\d+)\}$")


def response(wire: Wire, tag: bytes) -> list[bytes]:
    """The lines up to the one tagged ``tag``, each with its literals read in place."""
    lines: list[bytes] = []
    while not lines or not lines[-1].startswith(tag + b" "):
        line = wire.line()
        while (m := _LITERAL.search(line)) is not None:
            data = wire.reader.read(int(m.group(1)))
            line += b"\r\n" + data + wire.line()
        lines.append(line)
    return lines


async def deliver(target: ImapTarget, user: User, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    await target.backend.store.deliver([Recipient(user.id, user.address)], source())


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


# -- SASL-IR (RFC 4959) --------------------------------------------------------------


async def test_sasl_ir_plain_and_login_are_base64_decoded(imap: ImapTarget) -> None:
    user = await imap.new_user()
    address = user.address.encode()
    plain = b"\0" + address + b"\0" + PASSWORD.encode()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b"a1 AUTHENTICATE PLAIN " + b64(plain) + b"\r\n")
            assert wire.line().startswith(b"a1 OK [CAPABILITY ")
        with connect(imap) as wire:
            # LOGIN's initial response is the user name; the password is asked for.
            wire.send(b"a2 AUTHENTICATE LOGIN " + b64(address) + b"\r\n")
            assert wire.line() == b"+ " + b64(b"Password:")
            wire.send(b64(PASSWORD.encode()) + b"\r\n")
            assert wire.line().startswith(b"a2 OK [CAPABILITY ")

    await asyncio.to_thread(conversation)


async def test_sasl_ir_empty_initial_response_is_a_clean_failure(imap: ImapTarget) -> None:
    """``=`` is an empty initial response (RFC 4959 section 3): not credentials for
    PLAIN, an empty user name for LOGIN. Each is one failed login, then go on."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b"a1 AUTHENTICATE PLAIN =\r\n")
            assert wire.line() == b"a1 NO [AUTHENTICATIONFAILED] Invalid PLAIN credentials"
            wire.send(b"a2 AUTHENTICATE LOGIN =\r\n")
            assert wire.line() == b"+ " + b64(b"Password:")
            wire.send(b64(PASSWORD.encode()) + b"\r\n")
            assert wire.line() == b"a2 NO [AUTHENTICATIONFAILED] Authentication failed"
            login(wire, user)
            still_usable(wire)

    await asyncio.to_thread(conversation)


# -- body data as literals -------------------------------------------------------------

_BODY_ITEM = re.compile(rb"(BODY\[[^\]]*\](?:<\d+>)?|RFC822(?:\.HEADER|\.TEXT)?) (.)")


async def test_body_data_is_always_a_literal(imap: ImapTarget) -> None:
    """Each BODY[...], BODY[...]<n> and RFC822* value comes as ``{n}``, even when a
    quoted string could hold it and when it is empty (``{0}``): curl, and more
    clients than curl, parse nothing else."""
    user = await imap.new_user()
    await deliver(imap, user, MULTIPART)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"s SELECT INBOX\r\n")
            response(wire, b"s")
            items = (
                b"BODY.PEEK[1] BODY.PEEK[1]<4.3> BODY.PEEK[1]<400.3> BODY.PEEK[9] "
                b"BODY.PEEK[1.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)] "
                b"BODY.PEEK[HEADER.FIELDS (X-NONE)]<0.1> RFC822.HEADER"
            )
            wire.send(b"f1 FETCH 1 (" + items + b")\r\n")
            [line, done] = response(wire, b"f1")
            assert done == b"f1 OK Fetch completed"
            found = {m.group(1): m.group(2) for m in _BODY_ITEM.finditer(line)}
            assert len(found) == 8, line
            assert set(found.values()) == {b"{"}, line
            assert b"BODY[1] {19}\r\nSee the attachment." in line
            assert b"BODY[1]<4> {3}\r\nthe" in line
            assert b"BODY[1]<400> {0}\r\n" in line
            assert b"BODY[9] {0}\r\n" in line
            assert b"BODY[HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: Report\r\n\r\n" in line
            assert b"BODY[HEADER.FIELDS (X-NONE)]<0> {1}\r\n\r" in line
            wire.send(b"f2 FETCH 1 (RFC822.TEXT)\r\n")
            [line, done] = response(wire, b"f2")
            text = MULTIPART.split(b"\r\n\r\n", 1)[1]
            assert line == b"* 1 FETCH (RFC822.TEXT {%d}\r\n%s FLAGS (\\Seen \\Recent))" % (
                len(text),
                text,
            )
            assert done == b"f2 OK Fetch completed"

    await asyncio.to_thread(conversation)


# -- leniency where the meaning is clear ---------------------------------------------------


async def test_spaces_inside_id_and_flag_list_parentheses(imap: ImapTarget) -> None:
    """aioimaplib sends ``ID ( "name" "x" )``; Dovecot accepts spaces after ``(`` and
    before ``)``, so do we, in ID and in flag lists. Two spaces between two elements
    stay a BAD."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b'i1 ID ( "name" "aioimaplib" "version" "2.0" )\r\n')
            ours = b'* ID ("name" "LightMail" "version" "%s")' % __version__.encode()
            assert wire.line() == ours
            assert wire.line() == b"i1 OK completed"
            login(wire, user)
            message = b"Subject: spaces\r\n\r\nhello\r\n"
            wire.send(b"a1 APPEND INBOX ( \\Draft ) {%d+}\r\n%s\r\n" % (len(message), message))
            assert response(wire, b"a1")[-1].startswith(b"a1 OK [APPENDUID ")
            wire.send(b"s SELECT INBOX\r\n")
            response(wire, b"s")
            wire.send(b"t1 STORE 1 +FLAGS ( \\Flagged $Work )\r\n")
            # $Work is new to the mailbox: FLAGS and PERMANENTFLAGS announce it first.
            [flags, permanent, fetched, done] = response(wire, b"t1")
            assert flags.startswith(b"* FLAGS (")
            assert b"$Work" in flags
            assert permanent.startswith(b"* OK [PERMANENTFLAGS (")
            assert b"$Work" in permanent
            assert fetched == b"* 1 FETCH (FLAGS (\\Flagged \\Draft $Work \\Recent))"
            assert done.startswith(b"t1 OK ")
            wire.send(b"t2 STORE 1 -FLAGS (\\Flagged  $Work)\r\n")
            assert wire.line().startswith(b"t2 BAD ")
            still_usable(wire)

    await asyncio.to_thread(conversation)


# -- NUL in a delivered message ------------------------------------------------------------------

NUL_SMALL = b"From: bob@example.org\r\nSubject: nul \x00 inside\r\n\r\none \x00 two\r\n\x00\x00\r\n"
# Larger than the session's inline limit: the body streams from the blob store.
NUL_LARGE = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\x00" * 8 + b"\r\n") * 400


def stuffed(message: bytes) -> bytes:
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + (
        b".\r\n"
    )


async def test_nul_is_stored_exactly_and_never_sent_in_a_literal(
    imap: ImapTarget, lmtp_factory: LmtpFactory
) -> None:
    """LMTP passes NUL through and the blob keeps it; IMAP may not send it in a
    literal (RFC 3501 section 4.3.1, CHAR8 is %x01-ff; only BINARY's literal8 may,
    see test_binary), so FETCH BODY[] sends 0x80 in its place, as Dovecot does: one
    octet for one, so RFC822.SIZE and every literal count still match what is sent."""
    lmtp = await lmtp_factory()
    user = await imap.new_user()
    client = await lmtp.connect()
    for message in (NUL_SMALL, NUL_LARGE):
        assert (await client.command("MAIL FROM:<bob@example.org>"))[0] == 250
        assert (await client.command(f"RCPT TO:<{user.address}>"))[0] == 250
        assert (await client.command("DATA"))[0] == 354
        await client.send(stuffed(message))
        assert (await client.reply())[0] == 250
    await client.close()

    store = imap.backend.store
    inbox = await store.get_mailbox(user.id, "INBOX")
    blobs = []
    for info, message in zip(await store.list_messages(inbox), (NUL_SMALL, NUL_LARGE), strict=True):
        blob = b"".join([chunk async for chunk in store.read_message(info)])
        assert blob.endswith(message)  # after our Return-Path and Received
        assert info.size == len(blob)
        blobs.append(blob)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"s SELECT INBOX\r\n")
            response(wire, b"s")
            for seq, blob in enumerate(blobs, 1):
                text = blob.partition(b"\r\n\r\n")[2]
                shown = blob.replace(b"\x00", b"\x80")
                wire.send(
                    b"f%d FETCH %d (RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT])\r\n" % (seq, seq)
                )
                lines = response(wire, b"f%d" % seq)
                assert b"\x00" not in b"".join(lines)
                assert lines[0] == (
                    b"* %d FETCH (RFC822.SIZE %d BODY[] {%d}\r\n%s BODY[TEXT] {%d}\r\n%s)"
                    % (seq, len(blob), len(blob), shown, len(text), text.replace(b"\x00", b"\x80"))
                )
                assert lines[1].startswith(b"f%d OK " % seq)
            wire.send(b"h FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
            lines = response(wire, b"h")
            assert b"\x00" not in b"".join(lines)
            assert (
                b"BODY[HEADER.FIELDS (SUBJECT)] {25}\r\nSubject: nul \x80 inside\r\n\r\n"
                in lines[0]
            )
            still_usable(wire)

    await asyncio.to_thread(conversation)
