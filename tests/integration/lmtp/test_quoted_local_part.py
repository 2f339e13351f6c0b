"""RCPT TO with a quoted local part (RFC 5321 section 4.1.2), on both backends.

"All quoted forms MUST be treated as equivalent": ``"bob"@example.org`` names
``bob@example.org``. A raw transcript, since smtplib's quoteaddr strips the
quotes before they reach the wire.
"""

from __future__ import annotations

from tests.integration.lmtp.conftest import LmtpTarget
from tests.integration.lmtp.test_delivery import BODY, stored, stuffed


async def test_quoted_local_part_that_needs_no_quoting_is_the_plain_address(
    lmtp: LmtpTarget,
) -> None:
    user = await lmtp.new_user()
    local, domain = user.address.split("@")
    escaped = "".join("\\" + c for c in local)  # every character a quoted pair
    client = await lmtp.connect()
    assert (await client.command("MAIL FROM:<sender@example.net>"))[0] == 250
    for address in (
        f'"{local}"@{domain}',
        f'"{local.upper()}"@{domain.upper()}',
        f'"{escaped}"@{domain}',
        f'"{local}+lists"@{domain}',
    ):
        assert await client.command(f"RCPT TO:<{address}>") == (250, ["2.1.5 Recipient OK"])
    assert (await client.command("DATA"))[0] == 354
    await client.send(stuffed(BODY))
    assert [await client.reply() for _ in range(4)] == [(250, ["2.1.5 Delivered"])] * 4
    await client.close()
    # Four forms of one user ([lmtp] detail_mailbox is off): one copy in INBOX.
    assert len(await stored(lmtp, user)) == 1


async def test_quoted_local_part_that_needs_quoting_is_looked_up_as_written(
    lmtp: LmtpTarget,
) -> None:
    user = await lmtp.new_user()
    local, domain = user.address.split("@")
    client = await lmtp.connect()
    assert (await client.command("MAIL FROM:<sender@example.net>"))[0] == 250
    # Not the user whose name it contains: a space, an "@", a leading dot, empty.
    for address in (f'"{local} x"@{domain}', f'"{local}@x"@{domain}', f'".{local}"@{domain}'):
        assert await client.command(f"RCPT TO:<{address}>") == (550, ["5.1.1 No such user here"])
    assert await client.command(f'RCPT TO:<""@{domain}>') == (550, ["5.1.1 No such user here"])
    # A catch-all takes any address of its domain, quoted ones too.
    await lmtp.backend.accounts.add_alias(f"@{domain}", [user.address])
    assert await client.command(f'RCPT TO:<"{local} x"@{domain}>') == (
        250,
        ["2.1.5 Recipient OK"],
    )
    assert (await client.command("DATA"))[0] == 354
    await client.send(stuffed(BODY))
    assert await client.reply() == (250, ["2.1.5 Delivered"])
    await client.close()
    assert len(await stored(lmtp, user)) == 1
