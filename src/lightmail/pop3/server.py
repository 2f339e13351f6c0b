"""The POP3 service: listeners for plain/STLS and implicit TLS, one session each."""

from __future__ import annotations

import ssl

from lightmail.accounts.service import Accounts
from lightmail.config import Settings
from lightmail.mailstore.store import MailStore
from lightmail.net.listener import ListeningService, plain_and_tls_listeners
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
            plaintext=settings.imap,
            store=store,
            accounts=accounts,
            tls=tls,
            hostname=settings.server.hostname,
        )

        self.listeners = plain_and_tls_listeners(
            "pop3",
            pop3.listen,
            pop3.tls_listen,
            self._serve,
            tls=tls,
            max_connections=pop3.max_connections,
            max_per_ip=pop3.max_connections_per_ip,
            refuse=b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
        )

    async def _serve(self, connection: Connection) -> None:
        await Pop3Session(self.context, connection).run()
