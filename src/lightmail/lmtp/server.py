"""The LMTP service: TCP and unix-socket listeners, one session per connection."""

from __future__ import annotations

from lightmail.accounts.service import Accounts
from lightmail.antivirus.clamd import ClamdClient
from lightmail.calendars.imip import Invitations
from lightmail.config import ImipMode, Settings
from lightmail.lmtp.session import LmtpContext, LmtpSession
from lightmail.mailstore.store import MailStore
from lightmail.net.listener import Listener, ListeningService
from lightmail.net.stream import Connection


class LmtpServer(ListeningService):
    """Satisfies :class:`lightmail.runtime.Service`."""

    name = "lmtp"

    def __init__(
        self,
        settings: Settings,
        store: MailStore,
        accounts: Accounts,
        *,
        scanner: ClamdClient | None,
    ) -> None:
        """``scanner`` is the node's clamd client, None when ``[antivirus] mode = off``."""
        lmtp = settings.lmtp
        self.context = LmtpContext(
            settings=lmtp,
            store=store,
            accounts=accounts,
            hostname=settings.server.hostname,
            antivirus=settings.antivirus,
            scanner=scanner,
            invitations=None
            if settings.dav.imip is ImipMode.OFF
            else Invitations(store.blobs, accounts.calendars, settings.dav.max_object_size),
        )
        self.listener = Listener(
            "lmtp",
            lmtp.listen,
            self._serve,
            refuse=b"421 4.3.2 Too many connections, try again later\r\n",
            unix_mode=lmtp.socket_mode,
            unix_owner=lmtp.socket_owner or None,
            unix_group=lmtp.socket_group or None,
            proxy_networks=settings.server.proxy_networks,
        )
        self.listeners = [self.listener]

    async def _serve(self, connection: Connection) -> None:
        await LmtpSession(self.context, connection).run()
