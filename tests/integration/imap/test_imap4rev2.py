"""IMAP4rev2 (RFC 9051) beside IMAP4rev1, over a raw socket: advertised both, the
rev2 behaviour only after ``ENABLE IMAP4rev2`` (Appendix A). No Python client
library speaks IMAP4rev2, so every line is checked as the RFC writes it."""

from __future__ import annotations

import asyncio

from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login, still_usable

MESSAGE = b"From: a@example.org\r\nSubject: hello\r\n\r\nHi.\r\n"
HEADER_8BIT = "From: zoë@example.org\r\nSubject: Grüße\r\n\r\nHallo.\r\n".encode()


def enable_rev2(wire: Wire) -> None:
    wire.send(b"e1 ENABLE IMAP4rev2\r\n")
    assert wire.until(b"e1") == [b"* ENABLED IMAP4rev2", b"e1 OK completed"]


def append(wire: Wire, message: bytes = MESSAGE, flags: bytes = b"") -> None:
    wire.send(b"a1 APPEND INBOX %s{%d+}\r\n%s\r\n" % (flags, len(message), message))
    assert wire.line().startswith(b"a1 OK [APPENDUID ")


async def test_advertised_beside_rev1_and_enabled_once(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            wire.send(b"c0 CAPABILITY\r\n")
            capabilities = wire.until(b"c0")[0].split()
            assert capabilities[2:4] == [b"IMAP4rev1", b"IMAP4rev2"]
            login(wire, user)
            enable_rev2(wire)
            wire.send(b"e2 ENABLE IMAP4rev2 UTF8=ACCEPT\r\n")  # only what this one enables
            assert wire.until(b"e2") == [b"* ENABLED UTF8=ACCEPT", b"e2 OK completed"]
            # Once UTF8=ACCEPT is on, its ban on SEARCH CHARSET holds (RFC 9755 section 3).
            wire.send(b"s0 SELECT INBOX\r\n")
            wire.until(b"s0")
            wire.send(b"s1 SEARCH CHARSET UTF-8 ALL\r\n")
            assert wire.line().startswith(b"s1 BAD ")
            still_usable(wire)

    await asyncio.to_thread(conversation)


async def test_select_sends_list_not_recent_nor_unseen(imap: ImapTarget) -> None:
    """RFC 9051 section 6.3.2 and Appendix E items 9-12: a LIST response of the
    mailbox, no RECENT, no UNSEEN code, CLOSED when another mailbox was selected."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            append(wire, flags=b"(\\Seen) ")
            append(wire)
            enable_rev2(wire)
            wire.send(b"s1 SELECT INBOX\r\n")
            lines = wire.until(b"s1")
            assert b"* 2 EXISTS" in lines
            assert b'* LIST () "/" INBOX' in lines
            assert not [line for line in lines if b"RECENT" in line or b"[UNSEEN " in line]
            assert lines[-1] == b"s1 OK [READ-WRITE] Select completed"
            # Messages that are this session's recent ones do not say so.
            wire.send(b"f1 FETCH 1:2 FLAGS\r\n")
            assert wire.until(b"f1") == [
                b"* 1 FETCH (FLAGS (\\Seen))",
                b"* 2 FETCH (FLAGS ())",
                b"f1 OK Fetch completed",
            ]
            wire.send(b"s2 EXAMINE Sent\r\n")
            lines = wire.until(b"s2")
            assert lines[0] == b"* OK [CLOSED] Previous mailbox closed"
            assert b'* LIST (\\Sent) "/" Sent' in lines
            assert lines[-1] == b"s2 OK [READ-ONLY] Select completed"

    await asyncio.to_thread(conversation)


async def test_new_mail_comes_without_recent(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire, connect(imap) as other:
            login(wire, user)
            enable_rev2(wire)
            wire.send(b"s1 SELECT INBOX\r\n")
            wire.until(b"s1")
            login(other, user)
            append(other)
            wire.send(b"n1 NOOP\r\n")
            assert wire.until(b"n1") == [b"* 1 EXISTS", b"n1 OK completed"]
            wire.send(b"f1 FETCH 1 FLAGS\r\n")
            assert wire.until(b"f1") == [b"* 1 FETCH (FLAGS ())", b"f1 OK Fetch completed"]

    await asyncio.to_thread(conversation)


async def test_search_answers_with_esearch(imap: ImapTarget) -> None:
    """RFC 9051 section 6.4.4: no RETURN is RETURN (ALL); ALL is left out when
    nothing matches, the ESEARCH response is not."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            append(wire, flags=b"(\\Seen) ")
            append(wire)
            append(wire)
            enable_rev2(wire)
            wire.send(b"s0 SELECT INBOX\r\n")
            wire.until(b"s0")
            wire.send(b"s1 SEARCH UNSEEN\r\n")
            assert wire.until(b"s1") == [
                b'* ESEARCH (TAG "s1") ALL 2:3',
                b"s1 OK Search completed",
            ]
            wire.send(b"s2 UID SEARCH SEEN\r\n")
            assert wire.until(b"s2") == [
                b'* ESEARCH (TAG "s2") UID ALL 1',
                b"s2 OK Search completed",
            ]
            wire.send(b"s3 SEARCH DRAFT\r\n")
            assert wire.until(b"s3") == [b'* ESEARCH (TAG "s3")', b"s3 OK Search completed"]
            wire.send(b"s4 SEARCH RETURN (COUNT) ALL\r\n")
            assert wire.until(b"s4") == [
                b'* ESEARCH (TAG "s4") COUNT 3',
                b"s4 OK Search completed",
            ]
            wire.send(b"s5 SEARCH RETURN (SAVE) UNSEEN\r\n")  # SAVE alone answers nothing
            assert wire.until(b"s5") == [b"s5 OK Search completed"]
            wire.send(b"s6 SEARCH $\r\n")
            assert wire.until(b"s6") == [
                b'* ESEARCH (TAG "s6") ALL 2:3',
                b"s6 OK Search completed",
            ]
            # A charset label stays allowed (UTF8=ACCEPT's ban is not IMAP4rev2's).
            wire.send('s7 SEARCH CHARSET UTF-8 SUBJECT "héllo"\r\n'.encode())
            assert wire.until(b"s7") == [b'* ESEARCH (TAG "s7")', b"s7 OK Search completed"]

    await asyncio.to_thread(conversation)


async def test_utf8_names_and_headers(imap: ImapTarget) -> None:
    """RFC 9051 sections 4.3.1 and 5.1: UTF-8 in quoted strings, mailbox names and
    APPENDed header fields."""
    user = await imap.new_user()
    name = "Größe"

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"a0 APPEND INBOX {%d+}\r\n%s\r\n" % (len(HEADER_8BIT), HEADER_8BIT))
            assert wire.line().startswith(b"a0 NO ")  # 8-bit headers need an ENABLE
            enable_rev2(wire)
            append(wire, HEADER_8BIT)
            wire.send(b'c1 CREATE "' + name.encode() + b'"\r\n')
            assert wire.line().startswith(b"c1 OK ")
            wire.send(b'l1 LIST "" "Gr*"\r\n')
            assert wire.until(b"l1") == [
                b'* LIST (\\HasNoChildren) "/" {%d}' % len(name.encode()),
                name.encode(),
                b"l1 OK List completed",
            ]

    await asyncio.to_thread(conversation)
