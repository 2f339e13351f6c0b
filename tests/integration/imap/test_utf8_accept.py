"""UTF8=ACCEPT (RFC 9755) over a raw socket: after ENABLE, quoted strings and
mailbox names in UTF-8; before it, modified UTF-7 and 7-bit headers only."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login, still_usable

NAME = "Größe & Ünï"
NAME_MUTF7 = b"Gr&APYA3w-e &- &ANw-n&AO8-"
HEADER_8BIT = "From: zoë@example.org\r\nSubject: Grüße\r\n\r\nHallo.\r\n".encode()


def enable_utf8(wire: Wire) -> None:
    wire.send(b"e1 ENABLE UTF8=ACCEPT\r\n")
    assert wire.until(b"e1") == [b"* ENABLED UTF8=ACCEPT", b"e1 OK completed"]


def listed(wire: Wire, pattern: bytes) -> list[bytes]:
    """The mailbox names LIST gives for ``pattern``, a literal read whole."""
    wire.send(b'l1 LIST "" ' + pattern + b"\r\n")
    names = []
    while not (line := wire.line()).startswith(b"l1 "):
        if line.endswith(b"}"):
            size = int(line[line.rindex(b"{") + 1 : -1])
            names.append(wire.reader.read(size))
            assert wire.line() == b""
        else:
            names.append(line.split(b' "/" ', 1)[1])
    assert line == b"l1 OK List completed"
    return names


async def test_names_are_utf8_after_enable_and_modified_utf7_before(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            enable_utf8(wire)
            # UTF-8 in a quoted string; "&" is itself, not a modified UTF-7 shift.
            wire.send(b'c1 CREATE "' + NAME.encode() + b'"\r\n')
            assert wire.line().startswith(b"c1 OK ")
            assert listed(wire, b'"Gr*"') == [NAME.encode()]
            wire.send(b's1 STATUS "' + NAME.encode() + b'" (MESSAGES)\r\n')
            # A name that cannot be an atom or a 7-bit quoted string goes as a literal.
            assert wire.line() == b"* STATUS {%d}" % len(NAME.encode())
            assert wire.reader.read(len(NAME.encode())) == NAME.encode()
            assert wire.line() == b" (MESSAGES 0)"
            assert wire.line() == b"s1 OK Status completed"
            wire.send(b'x1 SELECT "' + NAME.encode() + b'"\r\n')
            assert wire.until(b"x1")[-1].startswith(b"x1 OK [READ-WRITE] ")
        with connect(imap) as wire:
            login(wire, user)
            assert listed(wire, b"Gr*") == [b'"' + NAME_MUTF7 + b'"']
            wire.send(b'x1 SELECT "' + NAME_MUTF7 + b'"\r\n')
            assert wire.until(b"x1")[-1].startswith(b"x1 OK [READ-WRITE] ")
            # Without ENABLE, 8-bit quoted strings stay refused.
            wire.send(b'c2 CREATE "' + NAME.encode() + b'"\r\n')
            assert wire.line().startswith(b"c2 BAD ")

    await asyncio.to_thread(conversation)


@pytest.mark.parametrize(
    "command",
    [
        b'CREATE "Gr\xc3"',  # cut UTF-8
        b'CREATE "\xff\xfe"',
        b"SEARCH CHARSET UTF-8 SUBJECT x",  # RFC 9755 section 3: no charset label after ENABLE
        b"SORT (DATE) US-ASCII ALL",  # and a mandatory one must be UTF-8
    ],
)
async def test_refused_after_enable(imap: ImapTarget, command: bytes) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            enable_utf8(wire)
            wire.send(b"s0 SELECT INBOX\r\n")
            wire.until(b"s0")
            wire.send(b"b1 " + command + b"\r\n")
            assert wire.line().startswith(b"b1 BAD ")
            still_usable(wire)

    await asyncio.to_thread(conversation)


async def test_control_character_in_a_utf8_name_is_refused(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            enable_utf8(wire)
            wire.send(b'c1 CREATE "a\xc2\x85b"\r\n')  # U+0085, a C1 control
            assert wire.line().startswith(b"c1 NO [CANNOT] ")

    await asyncio.to_thread(conversation)


async def test_search_with_utf8_after_enable(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            enable_utf8(wire)
            wire.send(b"a1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(HEADER_8BIT), HEADER_8BIT))
            assert wire.line().startswith(b"a1 OK [APPENDUID ")
            wire.send(b"s0 SELECT INBOX\r\n")
            wire.until(b"s0")
            wire.send('f1 SEARCH SUBJECT "grüne" FROM "ZOË"\r\n'.encode())
            assert wire.until(b"f1") == [b"* SEARCH", b"f1 OK Search completed"]
            # Unicode case folding: "ß" is "ss".
            wire.send('f2 SEARCH SUBJECT "GRÜSSE" FROM "ZOË"\r\n'.encode())
            assert wire.until(b"f2") == [b"* SEARCH 1", b"f2 OK Search completed"]

    await asyncio.to_thread(conversation)


async def test_8bit_header_append_needs_enable(imap: ImapTarget) -> None:
    user = await imap.new_user()
    body_8bit = b"From: a@example.org\r\nSubject: plain\r\n\r\nGr\xc3\xbc\xc3\x9fe.\r\n"

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            # RFC 9755 section 4: NO before ENABLE, for a header with 8-bit octets only.
            wire.send(b"a1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(HEADER_8BIT), HEADER_8BIT))
            assert wire.line() == b"a1 NO 8-bit header fields need ENABLE UTF8=ACCEPT"
            wire.send(b"a2 APPEND INBOX {%d+}\r\n%s\r\n" % (len(body_8bit), body_8bit))
            assert wire.line().startswith(b"a2 OK [APPENDUID ")
            enable_utf8(wire)
            wire.send(b"a3 APPEND INBOX {%d+}\r\n%s\r\n" % (len(HEADER_8BIT), HEADER_8BIT))
            assert wire.line().startswith(b"a3 OK [APPENDUID ")
            wire.send(b"s1 STATUS INBOX (MESSAGES)\r\n")
            assert wire.line() == b"* STATUS INBOX (MESSAGES 2)"

    await asyncio.to_thread(conversation)


async def test_enable_in_the_selected_state_does_not_enable(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"s0 SELECT INBOX\r\n")
            wire.until(b"s0")
            # RFC 9755 section 3: only valid in the Authenticated state.
            wire.send(b"e1 ENABLE UTF8=ACCEPT\r\n")
            assert wire.until(b"e1") == [b"* ENABLED", b"e1 OK completed"]
            wire.send(b'c1 CREATE "' + NAME.encode() + b'"\r\n')
            assert wire.line().startswith(b"c1 BAD ")

    await asyncio.to_thread(conversation)


async def test_command_pipelined_after_enable_reads_utf8(imap: ImapTarget) -> None:
    """The command after ENABLE in the same packet is parsed once ENABLE took effect."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b'e1 ENABLE UTF8=ACCEPT\r\nc1 CREATE "' + NAME.encode() + b'"\r\n')
            assert wire.until(b"e1") == [b"* ENABLED UTF8=ACCEPT", b"e1 OK completed"]
            assert wire.line().startswith(b"c1 OK ")
            assert listed(wire, b'"Gr*"') == [NAME.encode()]

    await asyncio.to_thread(conversation)


async def test_imaplib_in_utf8_mode(imap: ImapTarget) -> None:
    """Python's imaplib speaks UTF8=ACCEPT: after enable() it sends commands in UTF-8."""
    user = await imap.new_user()

    def conversation() -> None:
        with imap.client(user) as client:
            assert client.enable("UTF8=ACCEPT")[0] == "OK"
            assert client.untagged_responses.get("ENABLED") == [b"UTF8=ACCEPT"]
            assert client.utf8_enabled
            assert client.create(f'"{NAME}"')[0] == "OK"
            typ, data = client.list('""', '"Gr*"')
            assert typ == "OK"
            # imaplib's shape of a line that ends in a literal: (line, literal), rest.
            head = b'(\\HasNoChildren) "/" {%d}' % len(NAME.encode())
            assert data == [(head, NAME.encode()), b""]
            assert client.select(f'"{NAME}"') == ("OK", [b"0"])

    await asyncio.to_thread(conversation)
