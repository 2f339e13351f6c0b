"""IMAP APPEND scanned by a real clamd when [antivirus] scan_append is on."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.imap.conftest import ImapFactory
from tests.integration.imap.test_hostile import connect, login, still_usable
from tests.support.clamd import EICAR, REPORTED_NAME, Clamd

CLEAN = b"Subject: clean\r\n\r\nNothing here.\r\n"
INFECTED = b"Subject: infected\r\n\r\n" + EICAR + b"\r\n"


@pytest.mark.parametrize("mode", ["reject", "quarantine"])
async def test_infected_append_is_refused(
    imap_factory: ImapFactory, clamd: Clamd, mode: str
) -> None:
    target = await imap_factory(
        antivirus={"mode": mode, "clamd": f"unix:{clamd.unix.path}", "scan_append": "true"}
    )
    user = await target.new_user()

    def conversation() -> tuple[str, str]:
        with target.client(user) as client:
            refused = client.append("INBOX", None, None, INFECTED)
            accepted = client.append("INBOX", None, None, CLEAN)
            assert client.select("INBOX") == ("OK", [b"1"])
            return refused[0], accepted[0]

    assert await asyncio.to_thread(conversation) == ("NO", "OK")


async def test_tag_mode_stores_the_append_tagged(imap_factory: ImapFactory, clamd: Clamd) -> None:
    target = await imap_factory(
        antivirus={"mode": "tag", "clamd": f"unix:{clamd.unix.path}", "scan_append": "true"}
    )
    user = await target.new_user()

    def conversation() -> bytes:
        with target.client(user) as client:
            assert client.append("INBOX", None, None, INFECTED)[0] == "OK"
            client.select("INBOX")
            _, data = client.fetch("1", "(BODY.PEEK[])")
            body = data[0]
            assert isinstance(body, tuple)
            return body[1]

    stored = await asyncio.to_thread(conversation)
    assert stored == (
        f"X-Virus-Status: Infected\r\nX-Virus-Name: {REPORTED_NAME}\r\n".encode() + INFECTED
    )


async def test_scanner_down_gives_unavailable(imap_factory: ImapFactory) -> None:
    target = await imap_factory(
        antivirus={"mode": "reject", "clamd": "127.0.0.1:9", "scan_append": "true"}
    )
    user = await target.new_user()

    def conversation() -> list[object]:
        with target.client(user) as client:
            typ, data = client.append("INBOX", None, None, CLEAN)
            assert typ == "NO"
            return list(data)

    assert b"[UNAVAILABLE]" in str(await asyncio.to_thread(conversation)).encode()


async def test_infected_message_in_a_multiappend_refuses_all(
    imap_factory: ImapFactory, clamd: Clamd
) -> None:
    """Each message of a MULTIAPPEND (RFC 3502) is scanned; one infected refuses them all."""
    target = await imap_factory(
        antivirus={"mode": "reject", "clamd": f"unix:{clamd.unix.path}", "scan_append": "true"}
    )
    user = await target.new_user()

    def conversation() -> None:
        with connect(target) as wire:
            login(wire, user)
            wire.send(b"a1 APPEND INBOX {%d+}\r\n%s" % (len(CLEAN), CLEAN))
            wire.send(b" {%d+}\r\n%s" % (len(INFECTED), INFECTED))
            wire.send(b" {%d+}\r\n%s\r\n" % (len(CLEAN), CLEAN))
            assert wire.line() == b"a1 NO Message refused by content policy"
            still_usable(wire)
            wire.send(b"s1 STATUS INBOX (MESSAGES)\r\n")
            assert wire.line() == b"* STATUS INBOX (MESSAGES 0)"

    await asyncio.to_thread(conversation)
    assert [key async for page in target.backend.blobs.list("eml/") for key in page] == []
