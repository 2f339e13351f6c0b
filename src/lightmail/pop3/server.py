"""The POP3 service: listeners for plain/STLS and implicit TLS, one session each."""

from __future__ import annotations

import ssl

from lightmail.accounts.service import Accounts
from lightmail.config import ListenAddress, Settings
from lightmail.mailstore.store import MailStore
from lightmail.net.listener import Listener
from lightmail.net.stream import Connection
from lightmail.pop3.session import Pop3Context, Pop3Session


class Pop3Server:
    """Satisfies :class:`lightmail.runtime.Service`."""

    name = "pop3"

    def __init__(
        self,
        settings: Settings,
        store: MailStore,
        accounts: Accounts,
        tls: ssl.SSLContext | None,
    ) -> None:
        pop3 = settings.pop3
        self.context = Pop3Context(
            settings=pop3,
            plaintext=settings.imap,
            store=store,
            accounts=accounts,
            tls=tls,
            hostname=settings.server.hostname,
        )

        def listener(
            name: str, addresses: tuple[ListenAddress, ...], tls: ssl.SSLContext | None
        ) -> Listener:
            return Listener(
                name,
                addresses,
                self._serve,
                tls=tls,
                max_connections=pop3.max_connections,
                max_per_ip=pop3.max_connections_per_ip,
                refuse=b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
            )

        self.listeners = [listener("pop3", pop3.listen, None)]
        if tls is not None and pop3.tls_listen:
            self.listeners.append(listener("pop3s", pop3.tls_listen, tls))

    async def _serve(self, connection: Connection) -> None:
        await Pop3Session(self.context, connection).run()

    async def start(self) -> None:
        for listener in self.listeners:
            await listener.start()

    async def stop(self) -> None:
        for listener in self.listeners:
            await listener.stop()
