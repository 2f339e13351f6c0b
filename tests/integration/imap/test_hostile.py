"""Hostile and odd clients over a raw socket: each test is named after what it covers.

Limits in play (``[imap]`` settings): ``max_line_length`` 64K,
``max_bad_commands`` 20, ``max_login_failures`` 3, ``max_append_size`` (16M in
the fixture, 64K where a test sets it).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from lightmail.accounts.service import User
from tests.integration.imap.conftest import PASSWORD, ImapFactory, ImapTarget

MESSAGE = b"From: bob@example.org\r\nSubject: hello\r\n\r\nHello there.\r\n"


class Wire:
    """A raw IMAP connection: bytes out, CRLF-terminated lines in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        raw = self.reader.readline(1_000_000)
        assert raw.endswith(b"\r\n"), raw
        return raw[:-2]

    def until(self, tag: bytes) -> list[bytes]:
        """Every line up to and including the one tagged ``tag``."""
        lines = [self.line()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        return lines

    def closed(self) -> bool:
        """Whether the server closed the connection (EOF or reset)."""
        try:
            return self.reader.read() == b""
        except ConnectionResetError:
            return True


@contextmanager
def connect(target: ImapTarget) -> Iterator[Wire]:
    # A reply can take seconds: MULTIAPPEND's 1,000 blobs on SeaweedFS, on a loaded machine.
    with socket.create_connection((target.host, target.port), timeout=30) as sock:
        wire = Wire(sock)
        assert wire.line().startswith(b"* OK [CAPABILITY IMAP4rev1 ")
        yield wire


def login(wire: Wire, user: User, tag: bytes = b"L") -> None:
    wire.send(tag + b" LOGIN " + user.address.encode() + b" " + PASSWORD.encode() + b"\r\n")
    assert wire.line().startswith(tag + b" OK [CAPABILITY ")


def still_usable(wire: Wire, tag: bytes = b"ZZ") -> None:
    wire.send(tag + b" NOOP\r\n")
    assert wire.line() == tag + b" OK completed"


async def test_pipelined_commands_answered_in_order(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(
                b"p1 NOOP\r\n"
                b"p2 CAPABILITY\r\n"
                b"p3 LOGIN " + user.address.encode() + b" secret\r\n"
                b"p4 SELECT INBOX\r\n"
                b"p5 APPEND INBOX {" + str(len(MESSAGE)).encode() + b"+}\r\n" + MESSAGE + b"\r\n"
                b"p6 FETCH 1 (UID RFC822.SIZE)\r\n"
                b"p7 BOGUS\r\n"
                b"p8 LOGOUT\r\n"
            )
            lines = wire.until(b"p8")
            tagged = [line.split(b" ", 2)[:2] for line in lines if not line.startswith(b"*")]
            assert tagged == [
                [b"p1", b"OK"],
                [b"p2", b"OK"],
                [b"p3", b"OK"],
                [b"p4", b"OK"],
                [b"p5", b"OK"],
                [b"p6", b"OK"],
                [b"p7", b"BAD"],
                [b"p8", b"OK"],
            ]
            # Untagged data comes before the tagged reply of its own command.
            assert lines.index(b"* 0 EXISTS") < lines.index(b"p4 OK [READ-WRITE] Select completed")
            p5 = next(i for i, line in enumerate(lines) if line.startswith(b"p5 "))
            assert lines[p5 - 2 : p5] == [b"* 1 EXISTS", b"* 1 RECENT"]
            assert lines[p5 + 1] == f"* 1 FETCH (UID 1 RFC822.SIZE {len(MESSAGE)})".encode()
            assert lines[-2].startswith(b"* BYE ")
            assert wire.closed()

    await asyncio.to_thread(conversation)


async def test_synchronizing_literal_in_login(imap: ImapTarget) -> None:
    user = await imap.new_user()
    address = user.address.encode()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b"l1 LOGIN {" + str(len(address)).encode() + b"}\r\n")
            assert wire.line().startswith(b"+ ")
            wire.send(address + b" {6}\r\n")
            # RFC 3501 7.5: the server asks for each synchronizing literal.
            assert wire.line().startswith(b"+ ")
            wire.send(b"secret\r\n")
            assert wire.line().startswith(b"l1 OK [CAPABILITY ")
            # A literal the client sends without waiting for "+" is not a command.
            wire.send(b"l2 SELECT {5}\r\nINBOX\r\n")
            assert wire.line().startswith(b"+ ")
            lines = wire.until(b"l2")
            assert lines[-1] == b"l2 OK [READ-WRITE] Select completed"
            assert not any(line.startswith(b"* BAD") for line in lines)

    await asyncio.to_thread(conversation)


async def test_literal_plus_in_append(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b"c1 CAPABILITY\r\n")
            assert b" LITERAL+ " in wire.line()
            assert wire.line() == b"c1 OK completed"
            login(wire, user)
            # No "+" for a non-synchronizing literal (RFC 7888): it all goes at once.
            wire.send(
                b"a1 APPEND INBOX (\\Flagged) {"
                + str(len(MESSAGE)).encode()
                + b"+}\r\n"
                + MESSAGE
                + b"\r\n"
            )
            reply = wire.line()
            assert re.fullmatch(rb"a1 OK \[APPENDUID [0-9]+ 1\] Append completed", reply)
            # LITERAL+ in other commands too: a mailbox name as a literal.
            wire.send(b"a2 SELECT {5+}\r\nINBOX\r\n")
            assert wire.until(b"a2")[-1] == b"a2 OK [READ-WRITE] Select completed"
            wire.send(b"a3 FETCH 1 (FLAGS BODY.PEEK[])\r\n")
            head = wire.line()
            assert head == (
                b"* 1 FETCH (FLAGS (\\Flagged \\Recent) BODY[] {"
                + str(len(MESSAGE)).encode()
                + b"}"
            )
            assert wire.reader.read(len(MESSAGE)) == MESSAGE
            assert wire.line() == b")"
            assert wire.line() == b"a3 OK Fetch completed"

    await asyncio.to_thread(conversation)


async def test_append_over_appendlimit(imap_factory: ImapFactory) -> None:
    target = await imap_factory(max_append_size="64K")
    user = await target.new_user()

    def conversation() -> None:
        with connect(target) as wire:
            login(wire, user)
            wire.send(b"c1 CAPABILITY\r\n")
            advertised = re.search(rb" APPENDLIMIT=([0-9]+)", wire.line())
            assert advertised is not None
            wire.line()
            # The limit the server announces is the one it enforces (RFC 7889).
            size = str(int(advertised[1]) + 1).encode()
            # Synchronizing: refused before any octet is sent (RFC 7889), no "+".
            wire.send(b"t1 APPEND INBOX {" + size + b"}\r\n")
            assert wire.line().startswith(b"t1 NO [TOOBIG] ")
            still_usable(wire)
            wire.send(b"t2 APPEND INBOX {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE))
            assert wire.line().startswith(b"t2 OK [APPENDUID ")
        with connect(target) as wire:
            login(wire, user)
            # Non-synchronizing: the octets are on their way; the server hangs up
            # instead of reading them (RFC 7888 section 4).
            wire.send(b"t3 APPEND INBOX {" + size + b"+}\r\n" + b"x" * 1024)
            assert wire.line().startswith(b"* BYE ")
            assert wire.closed()
        with connect(target) as wire:
            login(wire, user)
            wire.send(b"s1 STATUS INBOX (MESSAGES)\r\n")
            assert wire.line() == b"* STATUS INBOX (MESSAGES 1)"

    await asyncio.to_thread(conversation)


async def test_unterminated_literal_then_disconnect(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"x1 APPEND INBOX {1000}\r\n")
            assert wire.line().startswith(b"+ ")
            wire.send(b"Subject: half\r\n\r\n" + b"y" * 100)
        with connect(imap) as wire:
            wire.send(b"x2 LOGIN {100}\r\n")
            assert wire.line().startswith(b"+ ")
            wire.send(b"abc")
        with connect(imap) as wire:
            wire.send(b"x3 APPEND INBOX {500+}\r\nSubject: cut\r\n")
        # The server is still there, and the half message was not stored.
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"s1 STATUS INBOX (MESSAGES)\r\n")
            assert wire.line() == b"* STATUS INBOX (MESSAGES 0)"
            assert wire.line() == b"s1 OK Status completed"

    await asyncio.to_thread(conversation)


async def test_overlong_line_without_crlf(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            # 200 KB, over max_line_length (64K), and no CRLF yet: BAD at once.
            wire.send(b"o1 NOOP " + b"x" * 200_000)
            assert wire.line().startswith(b"o1 BAD ")
            # The rest of that line is dropped; the next line is a command again.
            wire.send(b"x" * 50_000 + b"\r\n")
            still_usable(wire)
            wire.send(b'o2 LIST "" INBOX\r\n')
            assert wire.until(b"o2") == [
                b'* LIST (\\HasNoChildren) "/" INBOX',
                b"o2 OK List completed",
            ]

    await asyncio.to_thread(conversation)


async def test_bad_command_flood_gets_bye(imap: ImapTarget) -> None:
    def conversation() -> None:
        with connect(imap) as wire:
            for n in range(1, 21):
                wire.send(b"b%d FROBNICATE\r\n" % n)
                assert wire.line().startswith(b"b%d BAD " % n)
            # max_bad_commands is 20: the 20th BAD is followed by BYE.
            assert wire.line().startswith(b"* BYE ")
            try:
                for n in range(21, 26):
                    wire.send(b"b%d FROBNICATE\r\n" % n)
            except OSError:
                pass
            assert wire.closed()
        with connect(imap) as wire:
            still_usable(wire)

    await asyncio.to_thread(conversation)


async def test_password_guessing_gets_bye(imap: ImapTarget) -> None:
    user = await imap.new_user()
    address = user.address.encode()

    def conversation() -> None:
        with connect(imap) as wire:
            for n in range(1, 4):
                wire.send(b"g%d LOGIN %s guess%d\r\n" % (n, address, n))
                assert wire.line() == b"g%d NO [AUTHENTICATIONFAILED] Authentication failed" % n
            # max_login_failures is 3.
            assert wire.line().startswith(b"* BYE ")
            assert wire.closed()
        with connect(imap) as wire:
            # Failed AUTHENTICATE counts too.
            wire.send(b"g1 LOGIN nobody@example.org x\r\n")
            assert wire.line().startswith(b"g1 NO ")
            wire.send(b"g2 AUTHENTICATE PLAIN AG5vYm9keUBleGFtcGxlLm9yZwB4\r\n")
            assert wire.line().startswith(b"g2 NO ")
            wire.send(b"g3 AUTHENTICATE PLAIN\r\n")
            assert wire.line().startswith(b"+")
            wire.send(b"AG5vYm9keUBleGFtcGxlLm9yZwB4\r\n")
            assert wire.line().startswith(b"g3 NO ")
            assert wire.line().startswith(b"* BYE ")
            assert wire.closed()
        with connect(imap) as wire:
            login(wire, user)

    await asyncio.to_thread(conversation)


async def test_command_before_login(imap: ImapTarget) -> None:
    def conversation() -> None:
        with connect(imap) as wire:
            for n, command in enumerate(
                [
                    b"SELECT INBOX",
                    b'LIST "" *',
                    b"STATUS INBOX (MESSAGES)",
                    b"FETCH 1 FLAGS",
                    b"UID FETCH 1 FLAGS",
                    b"ENABLE CONDSTORE",
                ]
            ):
                tag = b"s%d" % n
                wire.send(tag + b" " + command + b"\r\n")
                assert wire.line() == tag + b" BAD Command not valid in not authenticated state"
            # APPEND before login: the literal is never asked for.
            wire.send(b"s9 APPEND INBOX {10}\r\n")
            assert wire.line().startswith(b"s9 BAD ")
            still_usable(wire)

    await asyncio.to_thread(conversation)


async def test_starttls_without_tls_configured(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b"c1 CAPABILITY\r\n")
            assert b"STARTTLS" not in wire.line().split()
            wire.line()
            wire.send(b"t1 STARTTLS\r\n")
            assert wire.line().startswith(b"t1 BAD ")
            # Still plaintext IMAP, not a TLS handshake.
            login(wire, user)

    await asyncio.to_thread(conversation)


async def test_nul_bytes_in_command(imap: ImapTarget) -> None:
    user = await imap.new_user()
    address = user.address.encode()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b"n1 NOOP\x00\r\n")
            assert wire.line().startswith(b"n1 BAD ")
            wire.send(b"n2 LOGIN " + address + b"\x00 secret\r\n")
            assert wire.line().startswith(b"n2 BAD ")
            # In a quoted string, and in a literal (CHAR8 excludes NUL).
            wire.send(b'n3 LOGIN "' + address + b'" "sec\x00ret"\r\n')
            assert wire.line().startswith(b"n3 BAD ")
            wire.send(b"n4 LOGIN " + address + b" {7+}\r\nsec\x00ret\r\n")
            assert wire.line().startswith(b"n4 BAD ")
            still_usable(wire)
            login(wire, user)
            # In an APPEND message: refused, nothing stored.
            message = b"Subject: nul\r\n\r\nnul \x00 here\r\n"
            wire.send(b"n5 APPEND INBOX {%d+}\r\n%s\r\n" % (len(message), message))
            assert wire.line().startswith(b"n5 BAD ")
            still_usable(wire)
            wire.send(b"s1 STATUS INBOX (MESSAGES)\r\n")
            assert wire.line() == b"* STATUS INBOX (MESSAGES 0)"

    await asyncio.to_thread(conversation)


async def test_list_pattern_backtracking_does_not_stall_other_sessions(imap: ImapTarget) -> None:
    """Issue #14: ``*a*a*a*a*b`` against a name of 500 ``a``s, which the user can create
    and subscribe, took a backtracking regex seconds per name on the event loop, and
    every other session waited. Now LIST and LSUB answer at once, another user's NOOP
    is not held up, and a pattern past the wildcard cap gets ``NO [LIMIT]``."""
    user = await imap.new_user()
    other = await imap.new_user()
    long = b"a" * 500
    short = b"a" * 20 + b"b"  # matches every pattern below

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as bystander:
            login(wire, user)
            login(bystander, other)
            for n, name in enumerate([long, short]):
                for verb in (b"CREATE", b"SUBSCRIBE"):
                    tag = b"%s%d" % (verb[:1], n)
                    wire.send(tag + b" " + verb + b" " + name + b"\r\n")
                    assert wire.line().startswith(tag + b" OK "), verb
            # Pipelined; the bystander's NOOP comes after both. The sockets time out
            # after 10 s, which the old matcher needed many times over.
            wire.send(b'h1 LIST "" "*a*a*a*a*b"\r\nh2 LSUB "" "*a*a*a*a*b"\r\n')
            still_usable(bystander)
            assert wire.until(b"h2") == [
                b'* LIST (\\HasNoChildren) "/" ' + short,
                b"h1 OK List completed",
                b'* LSUB () "/" ' + short,
                b"h2 OK Lsub completed",
            ]
            # At the cap (20 wildcards), and a name of 999 octets: no match, no wait.
            wire.send(b"c9 CREATE " + b"a" * 999 + b"\r\n")
            assert wire.line().startswith(b"c9 OK ")
            at_cap = b"*a" * 19 + b"%b"
            wire.send(b'h3 LIST "" "' + at_cap + b'"\r\nh4 LSUB "" "' + at_cap + b'"\r\n')
            assert wire.until(b"h4") == [
                b'* LIST (\\HasNoChildren) "/" ' + short,
                b"h3 OK List completed",
                b'* LSUB () "/" ' + short,
                b"h4 OK Lsub completed",
            ]
            # Past the cap: refused (RFC 3501 section 6.3.8 "NO - can't list that name").
            for tag, kind in ((b"h5", b"LIST"), (b"h6", b"LSUB")):
                wire.send(tag + b" " + kind + b' "" "' + at_cap + b'%"\r\n')
                assert wire.line().startswith(tag + b" NO [LIMIT] Too many wildcards")
            # A reference is part of the pattern: its wildcards count too.
            wire.send(b'h7 LIST "%" "' + at_cap + b'"\r\n')
            assert wire.line().startswith(b"h7 NO [LIMIT] Too many wildcards")
            still_usable(wire)
            still_usable(bystander)

    await asyncio.to_thread(conversation)
