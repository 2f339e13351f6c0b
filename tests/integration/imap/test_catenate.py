"""CATENATE (RFC 4469) over a raw socket: messages built from TEXT literals and
IMAP URLs (RFC 5092) of the user's own mail, refused whole on a bad URL or size."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import pytest

from lightmail.accounts.service import User
from tests.integration.imap.conftest import ImapFactory, ImapTarget
from tests.integration.imap.test_binary import fetch
from tests.integration.imap.test_hostile import Wire, connect, login, still_usable
from tests.integration.imap.test_multiappend import blobs, messages_in

BOUNDARY = b"------------030308070208000400050907"
SOURCE = (
    b"From: ann@example.org\r\nSubject: draft\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="' + BOUNDARY + b'"\r\n\r\n'
    b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nThe text.\r\n"
    b"--" + BOUNDARY + b"\r\nContent-Type: application/x-zip-compressed\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nUEsDBAoAAAAAAA==\r\n"
    b"--" + BOUNDARY + b"--\r\n"
)
HEADER, _, BODY = SOURCE.partition(b"\r\n\r\n")
HEADER += b"\r\n\r\n"
PART1_MIME = b"Content-Type: text/plain\r\n\r\n"
PART1 = b"The text."


def stored(wire: Wire) -> int:
    """APPEND the source message to INBOX: its UIDVALIDITY."""
    wire.send(b"a0 APPEND INBOX {%d+}\r\n" % len(SOURCE) + SOURCE + b"\r\n")
    reply = re.fullmatch(rb"a0 OK \[APPENDUID ([0-9]+) 1\] Append completed", wire.line())
    assert reply is not None
    return int(reply[1])


def body_of(wire: Wire, uid: int) -> bytes:
    wire.send(b"e1 EXAMINE INBOX\r\n")
    wire.until(b"e1")
    responses, done = fetch(wire, b"UID FETCH %d BODY.PEEK[]" % uid)
    assert done == b"t OK Fetch completed"
    return responses[0][1][0]


def text(data: bytes, *, sync: bool = False) -> bytes:
    return b"TEXT {%d%s}\r\n" % (len(data), b"" if sync else b"+") + data


async def test_rfc4469_example_1_replaces_an_attachment(imap: ImapTarget) -> None:
    """Header and first part by URL, new text between, as in Appendix A example 1;
    synchronizing TEXT literals get a continuation each."""
    user = await imap.new_user()
    boundary = b"\r\n--" + BOUNDARY + b"\r\n"
    closing = b"\r\n--" + BOUNDARY + b"--\r\n"
    expected = HEADER + boundary[2:] + PART1_MIME + PART1 + boundary + b"new part" + closing

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            base = b"/INBOX;UIDVALIDITY=%d/;UID=1" % stored(wire)
            wire.send(b'a1 APPEND INBOX (\\Seen $MDNSent) CATENATE (URL "' + base)
            wire.send(b'/;section=HEADER" TEXT {%d}\r\n' % (len(boundary) - 2))
            assert wire.line().startswith(b"+ ")
            wire.send(boundary[2:] + b' URL "' + base + b'/;SECTION=1.MIME" URL "' + base)
            wire.send(b'/;SECTION=1" ' + text(boundary + b"new part" + closing) + b")\r\n")
            reply = re.fullmatch(rb"a1 OK \[APPENDUID [0-9]+ 2\] Append completed", wire.line())
            assert reply is not None
            assert body_of(wire, 2) == expected
            responses, _ = fetch(wire, b"UID FETCH 1:2 FLAGS")
            # APPEND sets no \Seen on what it reads (RFC 4469 section 3).
            assert [text for text, _ in responses] == [
                b"* 1 FETCH (UID 1 FLAGS (\\Recent))",
                b"* 2 FETCH (UID 2 FLAGS (\\Seen $MDNSent \\Recent))",
            ]

    await asyncio.to_thread(conversation)


async def test_absolute_relative_and_partial_urls(imap: ImapTarget) -> None:
    user = await imap.new_user()
    host = f"{imap.host}:{imap.port}"
    absolute = f"imap://{quote(user.address)}@{host}/INBOX/;UID=1".encode()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            stored(wire)
            wire.send(b"s1 SELECT INBOX\r\n")
            wire.until(b"s1")
            urls = (
                b'URL "' + absolute + b'"',  # the whole message
                b'URL ";UID=1/;SECTION=1"',  # relative to the selected mailbox
                b'URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)/;PARTIAL=0.8"',
                b'URL "/inbox/;UID=1/;SECTION=TEXT/;PARTIAL=2"',  # to the end
            )
            wire.send(b"a1 APPEND INBOX CATENATE (" + b" ".join(urls) + b")\r\n")
            assert wire.until(b"a1")[-1].startswith(b"a1 OK [APPENDUID ")
            assert body_of(wire, 2) == SOURCE + PART1 + b"Subject:" + BODY[2:]

    await asyncio.to_thread(conversation)


async def test_multiappend_literal8_and_url_literal(imap: ImapTarget) -> None:
    """RFC 4469 with RFC 3502: a plain message, then a CATENATE one with a
    literal8 TEXT (RFC 3516) and a URL sent as a literal."""
    user = await imap.new_user()
    first = b"Subject: one\r\n\r\nOne.\r\n"
    binary = b"Subject: two\r\n\r\n\x00\x01"
    url = b"/INBOX/;UID=1/;SECTION=1"

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            stored(wire)
            wire.send(b"a1 APPEND INBOX {%d+}\r\n" % len(first) + first)
            wire.send(b" CATENATE (TEXT ~{%d+}\r\n" % len(binary) + binary)
            wire.send(b" URL {%d}\r\n" % len(url))
            assert wire.line().startswith(b"+ ")
            wire.send(url + b")\r\n")
            reply = wire.line()
            assert re.fullmatch(rb"a1 OK \[APPENDUID [0-9]+ 2:3\] Append completed", reply)
            assert body_of(wire, 2) == first
            assert body_of(wire, 3) == (binary + PART1).replace(b"\x00", b"\x80")

    await asyncio.to_thread(conversation)


def refused(imap: ImapTarget, user: User, urls: bytes, reply: bytes, *, sync: bool) -> None:
    """``APPEND ... CATENATE (TEXT URL... TEXT)`` is answered ``reply``, the last
    TEXT (synchronizing or not) is never taken, and nothing is stored."""

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            before = messages_in(wire)
            wire.send(b"a1 APPEND INBOX CATENATE (" + text(b"head\r\n\r\n") + b" " + urls)
            if sync:
                wire.send(b" TEXT {4}\r\n")
            else:
                wire.send(b" " + text(b"x1 DELETE INBOX") + b")\r\n")  # dropped, never run
            assert wire.line().startswith(reply)
            still_usable(wire)
            assert messages_in(wire) == before

    return conversation()


@pytest.mark.parametrize("sync", [True, False])
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (b'"/INBOX;UIDVALIDITY=1/;UID=1"', b"/INBOX;UIDVALIDITY=1/;UID=1"),  # not its validity
        (b'"/INBOX/;UID=9"', b"/INBOX/;UID=9"),
        (b'"/INBOX/;UID=1/;SECTION=7"', b"/INBOX/;UID=1/;SECTION=7"),
        (b'"/Nowhere/;UID=1"', b"/Nowhere/;UID=1"),
        (b'"imap://someone.else@host/INBOX/;UID=1"', b"imap://someone.else@host/INBOX/;UID=1"),
        (b'"/INBOX/;UID=1/;URLAUTH=anonymous"', b"/INBOX/;UID=1/;URLAUTH=anonymous"),
        (b'"http://example.org/"', b"http://example.org/"),
        (b'";UID=1"', b";UID=1"),  # relative, but nothing is selected
        (b'"/INBOX/;UID=1]x"', b"/INBOX/;UID=1%5Dx"),
    ],
)
async def test_bad_url_refuses_the_whole_append(
    imap: ImapTarget, url: bytes, shown: bytes, sync: bool
) -> None:
    user = await imap.new_user()
    reply = b"a1 NO [BADURL " + shown + b"] "

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            stored(wire)
        refused(imap, user, b"URL " + url, reply, sync=sync)

    await asyncio.to_thread(conversation)


@pytest.mark.parametrize("sync", [True, False])
async def test_too_big_as_it_grows(imap_factory: ImapFactory, sync: bool) -> None:
    imap = await imap_factory(max_append_size="64K")
    user = await imap.new_user()
    big = b"Subject: big\r\n\r\n" + b"x" * 40_000

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"a0 APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
            assert wire.line().startswith(b"a0 OK ")
        refused(imap, user, b"URL /INBOX/;UID=1 URL /INBOX/;UID=1", b"a1 NO [TOOBIG] ", sync=sync)

    await asyncio.to_thread(conversation)


async def test_another_users_mail_is_not_reachable(imap: ImapTarget) -> None:
    owner, other = await imap.new_user(), await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, owner)
            stored(wire)
        with connect(imap) as wire:
            login(wire, other)
            address = quote(owner.address).encode()
            wire.send(
                b'a1 APPEND INBOX CATENATE (URL "imap://' + address + b'@h/INBOX/;UID=1")\r\n'
            )
            assert wire.line().startswith(b"a1 NO [BADURL ")
            wire.send(b"a2 APPEND INBOX CATENATE (URL /INBOX/;UID=1)\r\n")  # its own INBOX
            assert wire.line().startswith(b"a2 NO [BADURL /INBOX/;UID=1] ")
            assert messages_in(wire) == 0

    await asyncio.to_thread(conversation)
    assert len(await blobs(imap)) == 1


async def test_refused_mailbox_drains_the_list(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            stored(wire)
            wire.send(b"a1 APPEND Nowhere CATENATE (URL /INBOX/;UID=1 " + text(b"abc") + b")\r\n")
            assert wire.line().startswith(b"a1 NO [TRYCREATE] ")
            wire.send(b"a2 APPEND Nowhere CATENATE (URL /INBOX/;UID=1 TEXT {3}\r\n")
            assert wire.line().startswith(b"a2 NO [TRYCREATE] ")
            # Nothing at all: refused as an empty APPEND literal is.
            wire.send(b"a3 APPEND INBOX CATENATE (URL /INBOX/;UID=1/;PARTIAL=99999)\r\n")
            assert wire.line() == b"a3 NO Empty message"
            still_usable(wire)
            assert messages_in(wire) == 1

    await asyncio.to_thread(conversation)


async def test_quota_holds_for_the_catenated_message(imap: ImapTarget) -> None:
    """The catenated message goes through APPEND's ingest: the quota counts it."""
    user = await imap.backend.new_user(quota=len(SOURCE) * 2)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            stored(wire)
            wire.send(b"a1 APPEND INBOX CATENATE (URL /INBOX/;UID=1 URL /INBOX/;UID=1)\r\n")
            assert wire.line().startswith(b"a1 NO [OVERQUOTA] ")
            wire.send(b"a2 APPEND INBOX CATENATE (URL /INBOX/;UID=1/;SECTION=TEXT)\r\n")
            assert wire.line().startswith(b"a2 OK [APPENDUID ")
            assert messages_in(wire) == 2

    await asyncio.to_thread(conversation)
    assert len(await blobs(imap)) == 2
