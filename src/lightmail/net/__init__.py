"""The network layer shared by IMAP, POP3 and LMTP: listeners, connections, TLS."""

from lightmail.net.limits import ConnectionLimiter
from lightmail.net.listener import Handler, Listener, ListenError
from lightmail.net.stream import (
    Connection,
    ConnectionClosed,
    DeadlineExceeded,
    IdleTimeout,
    ShutdownRequested,
    StreamError,
    TlsHandshakeFailed,
    Woken,
    WriteTimeout,
)
from lightmail.net.tls import server_context

__all__ = [
    "Connection",
    "ConnectionClosed",
    "ConnectionLimiter",
    "DeadlineExceeded",
    "Handler",
    "IdleTimeout",
    "ListenError",
    "Listener",
    "ShutdownRequested",
    "StreamError",
    "TlsHandshakeFailed",
    "Woken",
    "WriteTimeout",
    "server_context",
]
