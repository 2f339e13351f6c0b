"""The POP3 service: listeners for plain/STLS and implicit TLS, one session each."""

from __future__ import annotations

import ssl

from lightmail.accounts.service import Accounts
from lightmail.config import Settings
from lightmail.mailstore.store import MailStore
from lightmail.net.listener import ConnectionLimiter, ListeningService, plain_and_tls_listeners
from lightmail.net.stream import Connection
from lightmail.pop3.session import Pop3Context, Pop3Session


class Pop3Server(ListeningService):
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
            store=store,
            accounts=accounts,
            tls=tls,
            per_user=ConnectionLimiter(pop3.max_connections_per_user),
            hostname=settings.server.hostname,
        )
        self.listeners = plain_and_tls_listeners(
            "pop3",
            pop3,
            self._serve,
            tls=tls,
            refuse=b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
        )

    async def _serve(self, connection: Connection) -> None:
        await Pop3Session(self.context, connection).run()
