"""The ``config.ini`` sections of the services clients connect to: ``[imap]``,
``[pop3]``, ``[lmtp]``, ``[api]`` and ``[dav]``, and the session and login limits
the mail protocols share (:class:`SessionLimits`, :class:`LoginLimits`). Declared
as in :mod:`.settings`, which gathers every section into ``Settings``.
"""

from __future__ import annotations

import ipaddress

from lightmail.config.keys import declare, section
from lightmail.config.values import (
    BOOLEAN,
    FILE_MODE,
    LISTEN,
    NETWORKS,
    OPTIONAL_WORD,
    POSITIVE_DURATION,
    POSITIVE_INTEGER,
    POSITIVE_SIZE,
    ImipMode,
    ListenAddress,
    Network,
    choice,
    duration_at_least,
    integer,
    size_between,
)

# Keys more than one section declares alike (the arguments of declare()).
_PLAINTEXT_NETWORKS = ("127.0.0.0/8, ::1", NETWORKS)
_HEADER_TIMEOUT = (
    "30s",
    POSITIVE_DURATION,
    "A request's line and headers must arrive whole within this time.",
)
_HTTP_CONNECTIONS = (
    "1000",
    POSITIVE_INTEGER,
    "Open connections served at once; with more, requests get 503.",
)


@section
class SessionLimits:
    """The limits of a session every mail protocol has: ``[imap]``, ``[pop3]``, ``[lmtp]``."""

    max_bad_commands: int = declare(
        "20",
        POSITIVE_INTEGER,
        "Error replies to bad commands allowed per connection before it is closed.",
    )


@section
class LoginLimits(SessionLimits):
    """The limits of a protocol clients log in to: ``[imap]`` and ``[pop3]``.

    A section redeclares a key where its default or range differs.
    """

    plaintext_networks: tuple[Network, ...] = declare(
        *_PLAINTEXT_NETWORKS, "Client networks allowed to log in without TLS."
    )
    max_line_length: int = declare(
        "64K", size_between(1024, 16 << 20), "Longest command line, literals excluded."
    )
    login_timeout: float = declare(
        "60s", POSITIVE_DURATION, "Time from connecting by which a client must have logged in."
    )
    max_commands_before_login: int = declare(
        "30", integer(1, 1_000), "Commands allowed before login, then the client is disconnected."
    )
    max_login_failures: int = declare(
        "3", integer(1, 1_000), "Failed logins allowed per connection before it is closed."
    )
    max_connections: int = declare("5000", POSITIVE_INTEGER, "Concurrent connections in all.")
    max_connections_per_ip: int = declare(
        "100", POSITIVE_INTEGER, "Concurrent connections from one client address."
    )
    max_connections_per_user: int = declare(
        "50", POSITIVE_INTEGER, "Concurrent connections of one user."
    )

    def plaintext_allowed(
        self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> bool:
        """Whether a client at ``address`` may log in without TLS."""
        return _in_networks(self.plaintext_networks, address)


def _in_networks(
    networks: tuple[Network, ...], address: str | ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


@section
class ImapSettings(LoginLimits):
    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:1143", LISTEN, "Addresses for IMAP with STARTTLS or plain text."
    )
    # () unless [tls] is enabled
    tls_listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:1993", LISTEN, "Addresses for IMAP over implicit TLS; ignored without [tls]."
    )
    max_append_size: int = declare(
        "64M", POSITIVE_SIZE, "Largest message APPEND accepts (APPENDLIMIT, RFC 7889)."
    )
    idle_timeout: float = declare(
        "30m",
        duration_at_least(1800),
        "An authenticated client silent this long is logged out (RFC 3501 5.4).",
    )
    max_search_keys: int = declare(
        "100", integer(1, 100_000), "Search keys allowed in one SEARCH; more gets BAD."
    )
    max_keywords_per_mailbox: int = declare(
        "100", integer(1, 1_000), "Distinct keywords one mailbox may define."
    )
    max_keywords_per_message: int = declare(
        "50", integer(1, 1_000), "Keywords one message may carry."
    )


@section
class Pop3Settings(LoginLimits):
    # RFC 2449 section 4 says 255 octets; AUTH PLAIN with a long password needs more
    max_line_length: int = declare(
        "1K", size_between(255, 16 << 10), "Longest command line, line end included."
    )
    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:1110", LISTEN, "Addresses for POP3 with STLS or plain text."
    )
    # () unless [tls] is enabled
    tls_listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:1995", LISTEN, "Addresses for POP3 over implicit TLS; ignored without [tls]."
    )
    allow_delete: bool = declare(
        "false", BOOLEAN, "Whether DELE soft-deletes (true) or answers -ERR (false)."
    )
    idle_timeout: float = declare(
        "10m",
        duration_at_least(600),
        "An authenticated client silent this long is disconnected (RFC 1939 3).",
    )


@section
class LmtpSettings(SessionLimits):
    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:2424, unix:{data_dir}/lmtp.sock",
        LISTEN,
        "Addresses where the MTA delivers mail over LMTP.",
    )
    # bytes
    max_message_size: int = declare(
        "64M", POSITIVE_SIZE, "Largest message accepted; advertised as SIZE in LHLO."
    )
    max_recipients: int = declare(
        "1000", integer(1, 100_000), "Recipients accepted in one transaction; more get 452 4.5.3."
    )
    # each command, from when the server is ready for it (total, not silence)
    timeout: float = declare(
        "10m",
        POSITIVE_DURATION,
        "Each command must arrive whole within this time of the server being ready.",
    )
    # the whole of DATA, from 354 to the final dot
    data_timeout: float = declare(
        "10m", POSITIVE_DURATION, "The whole message after DATA must arrive within this time."
    )
    socket_mode: int = declare("0660", FILE_MODE, "The unix socket's file mode.")
    socket_owner: str = declare(
        "",
        OPTIONAL_WORD.saying("a user name, or empty"),
        "The unix socket's owner; empty: the server's own.",
    )
    socket_group: str = declare(
        "",
        OPTIONAL_WORD.saying("a group name, or empty"),
        "The unix socket's group; empty: the server's own.",
    )
    detail_mailbox: bool = declare(
        "false", BOOLEAN, "Deliver user+detail@domain to the mailbox named detail when it exists."
    )


@section
class ApiSettings:
    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:8080", LISTEN, "Addresses for the HTTP administration API."
    )
    # /metrics needs a bearer token too
    metrics_auth: bool = declare("false", BOOLEAN, "Whether /metrics needs a bearer token too.")
    # seconds to send a whole request head
    header_timeout: float = declare(*_HEADER_TIMEOUT)
    max_connections: int = declare(*_HTTP_CONNECTIONS)


@section
class DavSettings:
    """CalDAV (RFC 4791) and CardDAV (RFC 6352): calendars and address books for the
    mail accounts, over HTTP Basic login."""

    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:8008", LISTEN, "Addresses for CalDAV over plain HTTP."
    )
    # () unless [tls] is enabled
    tls_listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:8443", LISTEN, "Addresses for CalDAV over HTTPS; ignored without [tls]."
    )
    plaintext_networks: tuple[Network, ...] = declare(
        *_PLAINTEXT_NETWORKS, "Client networks allowed to log in over plain HTTP."
    )
    max_object_size: int = declare(
        "1M", size_between(1024, 64 << 20), "Largest calendar object or vCard PUT."
    )
    max_xml_size: int = declare("256K", size_between(1024, 16 << 20), "Largest XML request body.")
    max_import_size: int = declare(
        "16M",
        size_between(1024, 1 << 30),
        "Largest .ics or .vcf file the API imports as a whole calendar or address book.",
    )
    imip: ImipMode = declare(
        "tentative",
        choice(ImipMode),
        "What LMTP does with a delivered invitation (iMIP): tentative puts it in the "
        "recipient's default calendar, awaiting their answer.",
    )
    header_timeout: float = declare(*_HEADER_TIMEOUT)
    max_connections: int = declare(*_HTTP_CONNECTIONS)

    def plaintext_allowed(
        self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> bool:
        """Whether a client at ``address`` may log in without TLS."""
        return _in_networks(self.plaintext_networks, address)
