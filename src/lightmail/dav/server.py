"""CalDAV as a node service: :class:`~lightmail.net.http.HttpServer` with
:class:`~lightmail.dav.app.DavApp` on ``[dav] listen`` (plain HTTP) and, with
``[tls]``, on ``[dav] tls_listen`` (HTTPS)."""

from __future__ import annotations

from lightmail.accounts.service import Accounts
from lightmail.config import Settings
from lightmail.dav.app import DavApp
from lightmail.net.http import HttpServer


def dav_servers(settings: Settings, accounts: Accounts) -> list[HttpServer]:
    """The CalDAV listeners ``settings`` ask for (none, one or two), sharing one app."""
    dav, tls = settings.dav, settings.tls
    app = DavApp(accounts, dav)
    servers: list[HttpServer] = []
    files = None if tls.cert is None or tls.key is None else (tls.cert, tls.key)
    for name, addresses, tls_files in (("dav", dav.listen, None), ("davs", dav.tls_listen, files)):
        if addresses and (name == "dav" or tls_files is not None):
            servers.append(
                HttpServer(
                    name,
                    addresses,
                    app,
                    header_timeout=dav.header_timeout,
                    max_connections=dav.max_connections,
                    tls=tls_files,
                    proxy_networks=settings.server.proxy_networks,
                )
            )
    return servers
