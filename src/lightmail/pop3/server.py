"""The POP3 service: listeners for plain/STLS and implicit TLS, one session each."""

from __future__ import annotations

import ssl

from lightmail.accounts.service import Accounts
from lightmail.config import Settings
from lightmail.mailstore.store import MailStore
from lightmail.net.limits import SharedCounts
from lightmail.net.listener import LoginService
from lightmail.net.stream import Connection
from lightmail.pop3.session import Pop3Context, Pop3Session


class Pop3Server(LoginService):
    """Satisfies :class:`lightmail.runtime.Service`."""

    name = "pop3"

    def __init__(
        self,
        settings: Settings,
        store: MailStore,
        accounts: Accounts,
        tls: ssl.SSLContext | None,
        *,
        shared: SharedCounts | None = None,
    ) -> None:
        """``shared`` (``[notify] url``) makes ``max_connections_per_user`` hold for
        the cluster."""
        super().__init__(
            settings.pop3,
            tls,
            refuse=b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
            proxy_networks=settings.server.proxy_networks,
            shared=shared,
        )
        self.context = Pop3Context(
            settings=settings.pop3,
            store=store,
            accounts=accounts,
            tls=tls,
            per_user=self.per_user,
            hostname=settings.server.hostname,
        )

    async def serve(self, connection: Connection) -> None:
        await Pop3Session(self.context, connection).run()
