"""The login rules of one connection, the same for IMAP and POP3.

Logging in must be done within a total time from connecting, however the
client paces its bytes (the login deadline). Plaintext logins (LOGIN,
USER/PASS, SASL PLAIN and LOGIN) need TLS unless the client is on a
configured plaintext network or a unix socket (docs/architecture.md,
Configuration). Failed
logins are counted per connection, and the one that reaches the limit ends
the connection with the protocol's goodbye line. The throttle across
connections (:mod:`.throttle`) sits in the accounts service.
"""

from __future__ import annotations

import asyncio

from lightmail.config import LoginLimits
from lightmail.net.driver import SessionEnd
from lightmail.net.stream import Connection


class LoginPolicy:
    """This connection's time to log in, whether it may in plaintext, and its failed logins.

    Built when the connection starts (inside the event loop): the login
    deadline counts from then.
    """

    def __init__(self, connection: Connection, limits: LoginLimits, *, goodbye: bytes) -> None:
        self._connection = connection
        self._login_timeout = limits.login_timeout
        self._login_deadline = asyncio.get_running_loop().time() + limits.login_timeout
        self._plaintext_allowed = limits.plaintext_allowed
        self._max_failures = limits.max_login_failures
        self._goodbye = goodbye  # the line sent when too many logins failed
        self.failures = 0

    def read_limits(self, logged_in: bool, idle_timeout: float) -> tuple[float, float | None]:
        """The driver's timeout and deadline: before login the login timeout and
        the total login deadline, after it the state's idle timeout."""
        if logged_in:
            return idle_timeout, None
        return self._login_timeout, self._login_deadline

    @property
    def plaintext_ok(self) -> bool:
        """TLS, a unix socket (as local as loopback) or a plaintext network."""
        if self._connection.is_tls:
            return True
        ip = self._connection.peer_ip
        return ip is None or self._plaintext_allowed(ip)

    def count_failure(self) -> None:
        """One more failed login; raises :class:`SessionEnd` at the limit."""
        self.failures += 1
        if self.failures >= self._max_failures:
            raise SessionEnd(self._goodbye)
