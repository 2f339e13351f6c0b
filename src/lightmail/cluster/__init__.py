"""What the nodes of a cluster count together in Redis (``[notify] url``): each
user's sessions (:mod:`.caps`) and failed logins (:mod:`.throttle`), through
one client (:mod:`.state`).
"""

from __future__ import annotations

from lightmail.auth.throttle import LoginThrottle
from lightmail.cluster.caps import RedisSessionLimiter
from lightmail.cluster.state import SharedRedis
from lightmail.cluster.throttle import RedisLoginThrottle
from lightmail.config import AuthSettings
from lightmail.net.limits import ConnectionLimiter, SessionLimiter


class ClusterState(SharedRedis):
    """:class:`~lightmail.net.listener.SharedCounts`, and the maker of the cluster's
    :class:`~lightmail.auth.throttle.LoginThrottle`."""

    def limiter(self, name: str, local: ConnectionLimiter) -> SessionLimiter:
        """:class:`~lightmail.net.listener.SharedCounts`: the cluster's cap ``name``,
        on top of this node's ``local`` count."""
        return RedisSessionLimiter(self, name, local)

    def throttle(self, settings: AuthSettings, local: LoginThrottle) -> LoginThrottle:
        """The cluster's failed-login counts, with this node's ``local`` ones for outages."""
        return RedisLoginThrottle(self, settings, local)
