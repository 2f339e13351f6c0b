"""The IMAP service: listeners for plain/STARTTLS and implicit TLS, one session each."""

from __future__ import annotations

import logging
import ssl

from lightmail.accounts.service import Accounts
from lightmail.antivirus.policy import scanner_for
from lightmail.config import ListenAddress, Settings
from lightmail.imap.session import ImapContext, ImapSession
from lightmail.mailstore.store import MailStore
from lightmail.net.listener import ConnectionLimiter, Listener
from lightmail.net.stream import Connection

log = logging.getLogger(__name__)


class ImapServer:
    """Satisfies :class:`lightmail.runtime.Service`."""

    name = "imap"

    def __init__(
        self,
        settings: Settings,
        store: MailStore,
        accounts: Accounts,
        tls: ssl.SSLContext | None,
    ) -> None:
        imap = settings.imap
        self.context = ImapContext(
            settings=imap,
            store=store,
            accounts=accounts,
            tls=tls,
            per_user=ConnectionLimiter(imap.max_connections_per_user),
            hostname=settings.server.hostname,
            antivirus=settings.antivirus,
            scanner=scanner_for(settings.antivirus) if settings.antivirus.scan_append else None,
        )

        def listener(
            name: str, addresses: tuple[ListenAddress, ...], tls: ssl.SSLContext | None
        ) -> Listener:
            return Listener(
                name,
                addresses,
                self._serve,
                tls=tls,
                max_connections=imap.max_connections,
                max_per_ip=imap.max_connections_per_ip,
                refuse=b"* BYE Too many connections, try again later\r\n",
            )

        self.listeners = [listener("imap", imap.listen, None)]
        if tls is not None and imap.tls_listen:
            self.listeners.append(listener("imaps", imap.tls_listen, tls))

    async def _serve(self, connection: Connection) -> None:
        await ImapSession(self.context, connection).run()

    async def start(self) -> None:
        for listener in self.listeners:
            await listener.start()

    async def stop(self) -> None:
        for listener in self.listeners:
            await listener.stop()
