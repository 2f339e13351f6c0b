"""LMTP with a real clamd (the project's EICAR signature), in each mode and policy."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from lightmail.config import TcpAddress
from tests.integration.lmtp.conftest import LmtpFactory, LmtpTarget
from tests.integration.lmtp.test_delivery import stored, stuffed
from tests.support.clamd import EICAR, REPORTED_NAME, Clamd

CLEAN = b"Subject: clean\r\n\r\nNothing to see here.\r\n"
INFECTED = b"Subject: infected\r\n\r\nAttached:\r\n" + EICAR + b"\r\n"


def clamd_address(clamd: Clamd) -> str:
    assert isinstance(clamd.tcp, TcpAddress)
    return f"{clamd.tcp.host}:{clamd.tcp.port}"


async def send(target: LmtpTarget, address: str, message: bytes) -> tuple[int, list[str]]:
    client = await target.connect()
    await client.command("MAIL FROM:<sender@example.net>")
    assert (await client.command(f"RCPT TO:<{address}>"))[0] == 250
    assert (await client.command("DATA"))[0] == 354
    await client.send(stuffed(message))
    reply = await client.reply()
    await client.close()
    return reply


async def no_blobs(target: LmtpTarget) -> bool:
    return [k async for page in target.backend.blobs.list("eml/") for k in page] == []


async def test_reject_mode(lmtp_factory: LmtpFactory, clamd: Clamd) -> None:
    target = await lmtp_factory(antivirus={"mode": "reject", "clamd": clamd_address(clamd)})
    user = await target.new_user()
    assert await send(target, user.address, INFECTED) == (
        554,
        ["5.7.1 Message refused by content policy"],
    )
    assert await stored(target, user) == []
    assert await no_blobs(target)
    assert (await send(target, user.address, CLEAN))[0] == 250
    assert len(await stored(target, user)) == 1


async def test_tag_mode_delivers_with_headers(lmtp_factory: LmtpFactory, clamd: Clamd) -> None:
    target = await lmtp_factory(antivirus={"mode": "tag", "clamd": f"unix:{clamd.unix.path}"})
    user = await target.new_user()
    assert (await send(target, user.address, INFECTED))[0] == 250
    [message] = await stored(target, user)
    assert message.startswith(
        f"X-Virus-Status: Infected\r\nX-Virus-Name: {REPORTED_NAME}\r\nReturn-Path: ".encode()
    )
    assert message.endswith(INFECTED)
    assert len([k async for page in target.backend.blobs.list("eml/") for k in page]) == 1


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("tempfail", 451), ("accept", 250), ("reject", 554)],
)
async def test_clamd_down_follows_the_policy(
    lmtp_factory: LmtpFactory, policy: str, expected: int
) -> None:
    target = await lmtp_factory(
        antivirus={"mode": "reject", "clamd": "127.0.0.1:9", "on_error": policy}
    )
    user = await target.new_user()
    code, _ = await send(target, user.address, CLEAN)
    assert code == expected
    assert len(await stored(target, user)) == (1 if expected == 250 else 0)
    if expected != 250:
        assert await no_blobs(target)


async def test_message_longer_than_the_scan_limit(lmtp_factory: LmtpFactory, clamd: Clamd) -> None:
    """Past stream_max_length the client stops sending; clamd never sees the rest."""
    target = await lmtp_factory(
        antivirus={"mode": "reject", "clamd": clamd_address(clamd), "stream_max_length": "64K"}
    )
    user = await target.new_user()
    late_virus = b"Subject: long\r\n\r\n" + b"x" * 100 + (b"y" * 998 + b"\r\n") * 100 + EICAR
    assert (await send(target, user.address, late_virus + b"\r\n"))[0] == 250
    early_virus = INFECTED + (b"y" * 998 + b"\r\n") * 100
    assert (await send(target, user.address, early_virus))[0] == 554


async def test_quarantine_mode_keeps_it_aside_until_released(
    lmtp_factory: LmtpFactory, clamd: Clamd
) -> None:
    target = await lmtp_factory(antivirus={"mode": "quarantine", "clamd": clamd_address(clamd)})
    alice, bob = await target.new_user(), await target.new_user()
    store = target.backend.store
    client = await target.connect()
    await client.command("MAIL FROM:<sender@example.net>")
    for user in (alice, bob):
        await client.command(f"RCPT TO:<{user.address}>")
    await client.command("DATA")
    await client.send(stuffed(INFECTED))
    assert [await client.reply() for _ in range(2)] == [(250, ["2.1.5 Accepted"])] * 2
    await client.close()
    assert await stored(target, alice) == []
    [item] = [i for i in await store.list_quarantine() if alice.address in i.recipients]
    assert item.virus == REPORTED_NAME
    assert item.sender == "sender@example.net"
    assert set(item.recipients) == {alice.address, bob.address}

    outcomes = await store.release_quarantine(item.id)
    assert {o.recipient.address for o in outcomes} == {alice.address, bob.address}
    [one], [two] = await stored(target, alice), await stored(target, bob)
    assert one == two
    assert one.endswith(INFECTED)
    assert item.id not in [i.id for i in await store.list_quarantine()]


async def test_quarantine_delete_removes_the_blob(lmtp_factory: LmtpFactory, clamd: Clamd) -> None:
    target = await lmtp_factory(
        antivirus={"mode": "quarantine", "clamd": f"unix:{clamd.unix.path}"}
    )
    user = await target.new_user()
    assert (await send(target, user.address, INFECTED))[0] == 250
    [item] = [
        i for i in await target.backend.store.list_quarantine() if user.address in i.recipients
    ]
    await target.backend.store.delete_quarantine(item.id)
    assert await no_blobs(target)
    assert await stored(target, user) == []


async def test_verdicts_and_outcomes_are_counted(lmtp_factory: LmtpFactory, clamd: Clamd) -> None:
    target = await lmtp_factory(antivirus={"mode": "reject", "clamd": clamd_address(clamd)})
    user = await target.new_user()

    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        count("lightmail_antivirus_verdicts_total", verdict="infected"),
        count("lightmail_antivirus_verdicts_total", verdict="clean"),
        count("lightmail_lmtp_recipients_total", outcome="refused"),
        count("lightmail_lmtp_recipients_total", outcome="delivered"),
    )
    await send(target, user.address, INFECTED)
    await send(target, user.address, CLEAN)
    after = (
        count("lightmail_antivirus_verdicts_total", verdict="infected"),
        count("lightmail_antivirus_verdicts_total", verdict="clean"),
        count("lightmail_lmtp_recipients_total", outcome="refused"),
        count("lightmail_lmtp_recipients_total", outcome="delivered"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 1]
