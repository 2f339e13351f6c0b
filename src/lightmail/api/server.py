"""The HTTP API as a node service: :class:`~lightmail.net.http.HttpServer` with the
FastAPI app, on ``[api] listen`` (``header_timeout`` and ``max_connections`` from
the same section)."""

from __future__ import annotations

from lightmail.api.app import create_app
from lightmail.api.deps import ApiContext
from lightmail.config import ListenAddress, TcpAddress
from lightmail.net.http import HttpServer


class ApiServer(HttpServer):
    """Satisfies :class:`lightmail.runtime.Service`."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context
        api = context.settings.api
        super().__init__(
            "api",
            api.listen,
            create_app(context),
            header_timeout=api.header_timeout,
            max_connections=api.max_connections,
            proxy_networks=context.settings.server.proxy_networks,
        )

    def where(self, address: ListenAddress) -> str:
        return f" (docs at http://{address}/docs)" if isinstance(address, TcpAddress) else ""
