"""The IMAP service: listeners for plain/STARTTLS and implicit TLS, one session each."""

from __future__ import annotations

import ssl

from lightmail.accounts.service import Accounts
from lightmail.antivirus.clamd import ClamdClient
from lightmail.config import Settings
from lightmail.imap.handlers import VERBS
from lightmail.imap.session import ImapContext, ImapSession
from lightmail.mailstore.store import MailStore
from lightmail.net.limits import SharedCounts
from lightmail.net.listener import LoginService
from lightmail.net.stream import Connection


class ImapServer(LoginService):
    """Satisfies :class:`lightmail.runtime.Service`."""

    name = "imap"

    def __init__(
        self,
        settings: Settings,
        store: MailStore,
        accounts: Accounts,
        tls: ssl.SSLContext | None,
        *,
        scanner: ClamdClient | None,
        shared: SharedCounts | None = None,
    ) -> None:
        """``scanner`` is the node's clamd client (None when scanning is off); APPEND
        uses it when ``[antivirus] scan_append`` is on; ``shared`` (``[notify] url``)
        makes ``max_connections_per_user`` hold for the cluster."""
        imap = settings.imap
        super().__init__(
            imap,
            tls,
            refuse=b"* BYE Too many connections, try again later\r\n",
            proxy_networks=settings.server.proxy_networks,
            shared=shared,
        )
        self.context = ImapContext(
            settings=imap,
            store=store,
            accounts=accounts,
            tls=tls,
            per_user=self.per_user,
            hostname=settings.server.hostname,
            antivirus=settings.antivirus,
            scanner=scanner if settings.antivirus.scan_append else None,
            verbs=VERBS,
        )

    async def serve(self, connection: Connection) -> None:
        await ImapSession(self.context, connection).run()
