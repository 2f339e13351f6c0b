"""LMTP over TCP behind a load balancer (``[server] proxy_networks``): the client
address a PROXY header carries is the one in the Received header."""

from __future__ import annotations

from tests.integration.lmtp.conftest import LmtpClient, LmtpFactory
from tests.integration.lmtp.test_delivery import stored
from tests.support.proxy_header import closed_unanswered, opened, v1, v2


async def test_the_received_header_names_the_carried_address(lmtp_factory: LmtpFactory) -> None:
    target = await lmtp_factory(proxy_networks="127.0.0.0/8")
    user = await target.new_user()
    for header, client in (
        (v2("203.0.113.7", 51234), b"203.0.113.7:51234"),
        (v1("2001:db8::7", 40000), b"[2001:db8::7]:40000"),
    ):
        lmtp = LmtpClient(*await opened(target.host, target.port, header))
        assert (await lmtp.reply())[0] == 220
        assert (await lmtp.command("LHLO mta.example.org"))[0] == 250
        assert (await lmtp.command("MAIL FROM:<a@example.org>"))[0] == 250
        assert (await lmtp.command(f"RCPT TO:<{user.address}>"))[0] == 250
        assert (await lmtp.command("DATA"))[0] == 354
        assert (await lmtp.command("Subject: hi\r\n\r\nhello\r\n."))[0] == 250
        await lmtp.close()
        (message,) = [m for m in await stored(target, user) if client in m]
        assert message.split(b"\r\n")[1] == b"Received: from mta.example.org (" + client + b")"


async def test_a_trusted_proxy_without_a_header_gets_no_greeting(
    lmtp_factory: LmtpFactory,
) -> None:
    target = await lmtp_factory(proxy_networks="127.0.0.0/8")
    await closed_unanswered(target.host, target.port, b"LHLO mta.example.org\r\n")


async def test_a_header_from_an_untrusted_peer_is_refused(lmtp_factory: LmtpFactory) -> None:
    target = await lmtp_factory(proxy_networks="192.0.2.0/24")
    lmtp = await target.connect(lhlo=False)
    code, _ = await lmtp.command(v1("203.0.113.7", 1).decode().strip())
    assert code == 500
    await lmtp.close()
