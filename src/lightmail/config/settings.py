"""The settings: one frozen dataclass per ``config.ini`` section, one field per key.

Each key is declared here once, on its field (:func:`~lightmail.config.keys.declare`):
its default text, parser, the words shown when a value is wrong and a line of
documentation. The order of the fields is the order of the keys.
``config.example.ini`` lists the same keys with the same defaults
(tests/unit/test_config.py checks it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from lightmail.config.keys import declare, section
from lightmail.config.values import (
    DATABASE_SCHEMES,
    AntivirusMode,
    ImipMode,
    ListenAddress,
    LogLevel,
    Network,
    ScanErrorPolicy,
    absolute_path,
    blobs_url,
    boolean,
    choice,
    clamd_address,
    database_url,
    duration_at_least,
    duration_between,
    endpoint_url,
    file_mode,
    integer,
    networks,
    optional_hostname,
    optional_path,
    optional_word,
    parse_duration,
    parse_listen,
    positive_duration,
    positive_size,
    redis_url,
    size_between,
    word,
    worker_count,
)

_SIZE_TEXT = "a size such as 2048, 2K, 64M or 1G"
_DURATION_TEXT = "a duration such as 90, 30s, 5m, 12h or 7d"
_LISTEN_TEXT = (
    "addresses such as 127.0.0.1:1143, [::1]:1143 or unix:/path, comma-separated, or none"
)
_BOOLEAN_TEXT = "true/false, yes/no, on/off or 1/0"
# Keys more than one section declares alike (the arguments of declare()).
_PLAINTEXT_NETWORKS = (
    "127.0.0.0/8, ::1",
    networks,
    "networks such as 127.0.0.0/8, ::1 or 192.168.0.0/16, comma-separated, or none",
)
_HEADER_TIMEOUT = (
    "30s",
    positive_duration,
    f"{_DURATION_TEXT}, above 0",
    "A request's line and headers must arrive whole within this time.",
)
_HTTP_CONNECTIONS = (
    "1000",
    integer(1, 1_000_000),
    "an integer of at least 1",
    "Open connections served at once; with more, requests get 503.",
)


@section
class ServerSettings:
    # absolute
    data_dir: Path = declare(
        "./lightmail-data",
        absolute_path,
        "a directory path",
        "Folder for LightMail's own files (default database, blobs, LMTP socket).",
    )
    # for greetings and Received headers; socket.getfqdn() by default
    hostname: str = declare(
        "",
        optional_hostname,
        "a host name such as mail.example.org, or empty",
        "Name used in greetings and Received headers; empty: this machine's FQDN.",
    )
    # resolved: auto is the number of CPUs this process may use
    workers: int = declare(
        "auto",
        worker_count,
        "a number from 1 to 1024, or auto",
        "Worker processes `serve` runs; auto: one per CPU; 1: no supervisor process.",
    )
    proxy_networks: tuple[Network, ...] = declare(
        "",
        networks,
        "networks such as 10.0.0.0/8 or 192.168.0.10/32, comma-separated, or empty",
        "Load balancers that must send a PROXY protocol header (v1 or v2) first; empty: none.",
    )


@section
class DatabaseSettings:
    # effective SQLAlchemy URL; may hold a password
    url: str = declare(
        "",
        database_url,
        "a URL such as sqlite+aiosqlite:///PATH or mysql+asyncmy://USER:PASSWORD@HOST:PORT/DB"
        f" (schemes: {', '.join(DATABASE_SCHEMES)}), or empty for SQLite in data_dir",
        "SQLAlchemy URL of the metadata database; empty: SQLite in data_dir.",
        secret=True,
    )
    pool_size: int = declare(
        "10",
        integer(1, 1_000_000),
        "an integer of at least 1",
        "Connections kept open to the database.",
    )
    # seconds
    connect_timeout: float = declare(
        "10s",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "How long to wait for a database connection.",
    )
    # seconds; after a COMMIT's reply was lost
    commit_check_timeout: float = declare(
        "30s",
        parse_duration,
        _DURATION_TEXT,
        "How long to keep asking whether a COMMIT whose reply was lost held.",
    )
    max_retries: int = declare(
        "8",
        integer(0, 100),
        "an integer from 0 to 100",
        "How often a write rolled back by a deadlock (on Galera: a certification "
        "conflict) is run again before it fails as temporary.",
    )
    wsrep_sync_wait: int = declare(
        "1",
        integer(0, 15),
        "an integer from 0 to 15",
        "On a Galera node: the session's wsrep_sync_wait (1: reads see every commit "
        "made on any node before they began; 0: off).",
    )


@section
class BlobsSettings:
    # effective and normalized: file:/ABSOLUTE/PATH or s3://BUCKET[/PREFIX]
    url: str = declare(
        "",
        blobs_url,
        "file:PATH or s3://BUCKET/PREFIX, or empty for file:<data_dir>/blobs",
        "Where raw messages are stored: file:PATH or s3://BUCKET/PREFIX.",
    )
    # "" for AWS
    endpoint: str = declare(
        "",
        endpoint_url,
        "an http:// or https:// URL, or empty for AWS",
        "S3 endpoint URL for services other than AWS; empty: AWS.",
    )
    region: str = declare("us-east-1", word, "a region name such as us-east-1", "S3 region.")
    # "" (with secret_key "") means the usual AWS environment
    access_key: str = declare(
        "", str, "any text", "S3 access key; empty (with secret_key): the usual AWS environment."
    )
    secret_key: str = declare(
        "", str, "any text", "S3 secret key; set with access_key or not at all.", secret=True
    )

    @property
    def path(self) -> Path | None:
        """The folder for ``file:`` URLs, else None."""
        return Path(self.url.removeprefix("file:")) if self.url.startswith("file:") else None

    @property
    def bucket(self) -> str | None:
        """The bucket for ``s3://`` URLs, else None."""
        if not self.url.startswith("s3://"):
            return None
        return self.url.removeprefix("s3://").partition("/")[0]

    @property
    def prefix(self) -> str:
        """The key prefix for ``s3://`` URLs without leading or trailing ``/``; may be ""."""
        return self.url.removeprefix("s3://").partition("/")[2] if self.bucket else ""


@section
class SessionLimits:
    """The limits of a session every mail protocol has: ``[imap]``, ``[pop3]``, ``[lmtp]``."""

    max_bad_commands: int = declare(
        "20",
        integer(1, 1_000_000),
        "an integer of at least 1",
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
        "64K",
        size_between(1024, 16 << 20),
        "a size from 1K to 16M",
        "Longest command line, literals excluded.",
    )
    login_timeout: float = declare(
        "60s",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "Time from connecting by which a client must have logged in.",
    )
    max_commands_before_login: int = declare(
        "30",
        integer(1, 1_000),
        "an integer from 1 to 1000",
        "Commands allowed before login, then the client is disconnected.",
    )
    max_login_failures: int = declare(
        "3",
        integer(1, 1_000),
        "an integer from 1 to 1000",
        "Failed logins allowed per connection before it is closed.",
    )
    max_connections: int = declare(
        "5000", integer(1, 1_000_000), "an integer of at least 1", "Concurrent connections in all."
    )
    max_connections_per_ip: int = declare(
        "100",
        integer(1, 1_000_000),
        "an integer of at least 1",
        "Concurrent connections from one client address.",
    )
    max_connections_per_user: int = declare(
        "50",
        integer(1, 1_000_000),
        "an integer of at least 1",
        "Concurrent connections of one user.",
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
        "127.0.0.1:1143",
        parse_listen,
        _LISTEN_TEXT,
        "Addresses for IMAP with STARTTLS or plain text.",
    )
    # () unless [tls] is enabled
    tls_listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:1993",
        parse_listen,
        _LISTEN_TEXT,
        "Addresses for IMAP over implicit TLS; ignored without [tls].",
    )
    max_append_size: int = declare(
        "64M", positive_size, _SIZE_TEXT, "Largest message APPEND accepts (APPENDLIMIT, RFC 7889)."
    )
    idle_timeout: float = declare(
        "30m",
        duration_at_least(1800),
        "a duration of at least 30m",
        "An authenticated client silent this long is logged out (RFC 3501 5.4).",
    )
    max_search_keys: int = declare(
        "100",
        integer(1, 100_000),
        "an integer from 1 to 100000",
        "Search keys allowed in one SEARCH; more gets BAD.",
    )
    max_keywords_per_mailbox: int = declare(
        "100",
        integer(1, 1_000),
        "an integer from 1 to 1000",
        "Distinct keywords one mailbox may define.",
    )
    max_keywords_per_message: int = declare(
        "50", integer(1, 1_000), "an integer from 1 to 1000", "Keywords one message may carry."
    )


@section
class Pop3Settings(LoginLimits):
    # RFC 2449 section 4 says 255 octets; AUTH PLAIN with a long password needs more
    max_line_length: int = declare(
        "1K",
        size_between(255, 16 << 10),
        "a size from 255 to 16K",
        "Longest command line, line end included.",
    )
    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:1110", parse_listen, _LISTEN_TEXT, "Addresses for POP3 with STLS or plain text."
    )
    # () unless [tls] is enabled
    tls_listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:1995",
        parse_listen,
        _LISTEN_TEXT,
        "Addresses for POP3 over implicit TLS; ignored without [tls].",
    )
    allow_delete: bool = declare(
        "false", boolean, _BOOLEAN_TEXT, "Whether DELE soft-deletes (true) or answers -ERR (false)."
    )
    idle_timeout: float = declare(
        "10m",
        duration_at_least(600),
        "a duration of at least 10m",
        "An authenticated client silent this long is disconnected (RFC 1939 3).",
    )


@section
class AuthSettings:
    """Login hardening shared by IMAP, POP3 and any other login (see README)."""

    # seconds from the start of a failed login to its answer
    failure_delay: float = declare(
        "2s",
        duration_between(0, 60),
        "a duration from 0 to 1m",
        "A failed login is answered this long after it began.",
    )
    # seconds a verified password is remembered; 0 disables the cache
    cache_ttl: float = declare(
        "5m",
        duration_between(0, 86400),
        "a duration from 0 to 1d",
        "How long a verified password is remembered; 0 turns the cache off.",
    )
    # failures per client address or account before delays begin
    throttle_after: int = declare(
        "3",
        integer(0, 1_000),
        "an integer from 0 to 1000",
        "Failures per client address or account before throttling begins.",
    )
    # seconds: the first delay, doubled for each further failure
    throttle_delay: float = declare(
        "1s",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "The first throttling delay, doubled for each further failure.",
    )
    # seconds: the cap
    throttle_max_delay: float = declare(
        "1m", positive_duration, f"{_DURATION_TEXT}, above 0", "The cap on the throttling delay."
    )
    # seconds without a failure after which the counts are forgotten
    throttle_reset: float = declare(
        "15m",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "Failures are forgotten this long after the last one.",
    )


@section
class LmtpSettings(SessionLimits):
    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:2424, unix:{data_dir}/lmtp.sock",
        parse_listen,
        _LISTEN_TEXT,
        "Addresses where the MTA delivers mail over LMTP.",
    )
    # bytes
    max_message_size: int = declare(
        "64M", positive_size, _SIZE_TEXT, "Largest message accepted; advertised as SIZE in LHLO."
    )
    max_recipients: int = declare(
        "1000",
        integer(1, 100_000),
        "an integer from 1 to 100000",
        "Recipients accepted in one transaction; more get 452 4.5.3.",
    )
    # each command, from when the server is ready for it (total, not silence)
    timeout: float = declare(
        "10m",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "Each command must arrive whole within this time of the server being ready.",
    )
    # the whole of DATA, from 354 to the final dot
    data_timeout: float = declare(
        "10m",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "The whole message after DATA must arrive within this time.",
    )
    socket_mode: int = declare(
        "0660", file_mode, "an octal file mode such as 0660", "The unix socket's file mode."
    )
    socket_owner: str = declare(
        "",
        optional_word,
        "a user name, or empty",
        "The unix socket's owner; empty: the server's own.",
    )
    socket_group: str = declare(
        "",
        optional_word,
        "a group name, or empty",
        "The unix socket's group; empty: the server's own.",
    )
    detail_mailbox: bool = declare(
        "false",
        boolean,
        _BOOLEAN_TEXT,
        "Deliver user+detail@domain to the mailbox named detail when it exists.",
    )


@section
class ApiSettings:
    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:8080", parse_listen, _LISTEN_TEXT, "Addresses for the HTTP administration API."
    )
    # /metrics needs a bearer token too
    metrics_auth: bool = declare(
        "false", boolean, _BOOLEAN_TEXT, "Whether /metrics needs a bearer token too."
    )
    # seconds to send a whole request head
    header_timeout: float = declare(*_HEADER_TIMEOUT)
    max_connections: int = declare(*_HTTP_CONNECTIONS)


@section
class DavSettings:
    """CalDAV (RFC 4791): calendars for the mail accounts, over HTTP Basic login."""

    listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:8008", parse_listen, _LISTEN_TEXT, "Addresses for CalDAV over plain HTTP."
    )
    # () unless [tls] is enabled
    tls_listen: tuple[ListenAddress, ...] = declare(
        "127.0.0.1:8443",
        parse_listen,
        _LISTEN_TEXT,
        "Addresses for CalDAV over HTTPS; ignored without [tls].",
    )
    plaintext_networks: tuple[Network, ...] = declare(
        *_PLAINTEXT_NETWORKS, "Client networks allowed to log in over plain HTTP."
    )
    max_object_size: int = declare(
        "1M", size_between(1024, 64 << 20), "a size from 1K to 64M", "Largest calendar object PUT."
    )
    max_xml_size: int = declare(
        "256K", size_between(1024, 16 << 20), "a size from 1K to 16M", "Largest XML request body."
    )
    max_import_size: int = declare(
        "16M",
        size_between(1024, 1 << 30),
        "a size from 1K to 1G",
        "Largest .ics file the API imports as a whole calendar.",
    )
    imip: ImipMode = declare(
        "tentative",
        choice(ImipMode),
        f"one of {', '.join(ImipMode)}",
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


@section
class AntivirusSettings:
    mode: AntivirusMode = declare(
        "off",
        choice(AntivirusMode),
        f"one of {', '.join(AntivirusMode)}",
        "What to do with mail in which clamd finds a virus.",
    )
    clamd: ListenAddress = declare(
        "127.0.0.1:3310", clamd_address, "HOST:PORT or unix:PATH", "Address of clamd."
    )
    on_error: ScanErrorPolicy = declare(
        "tempfail",
        choice(ScanErrorPolicy),
        "one of tempfail, accept, reject",
        "What to do with a message when clamd is down or times out.",
    )
    timeout: float = declare(
        "60s",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "How long to wait for clamd at each step (connect, send, verdict).",
    )
    stream_max_length: int = declare(
        "25M", positive_size, _SIZE_TEXT, "How much of a message is sent to clamd."
    )
    scan_append: bool = declare(
        "false", boolean, _BOOLEAN_TEXT, "Also scan IMAP APPEND and API imports."
    )

    @property
    def enabled(self) -> bool:
        return self.mode is not AntivirusMode.OFF


@section
class GcSettings:
    enabled: bool = declare(
        "true", boolean, _BOOLEAN_TEXT, "Whether the garbage collector runs in this process."
    )
    # seconds
    interval: float = declare(
        "5m",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "Time between garbage collection runs.",
    )
    batch_size: int = declare(
        "500", integer(1, 100_000), "an integer from 1 to 100000", "Messages purged per batch."
    )
    # seconds
    retention: float = declare(
        "7d",
        parse_duration,
        _DURATION_TEXT,
        "How long deleted messages are kept, restorable, before they are purged.",
    )
    # seconds
    orphan_grace: float = declare(
        "24h",
        parse_duration,
        _DURATION_TEXT,
        "Age at which a blob no message refers to is deleted.",
    )


@section
class NotifySettings:
    # "" for the in-process bus (relayed between the workers of one node); may hold a password
    url: str = declare(
        "",
        redis_url,
        "a URL such as redis://HOST:PORT/0 or rediss://HOST:PORT/0, or empty for none",
        "Redis that carries change events between nodes; empty: this node only.",
        secret=True,
    )
    # used when the URL has none
    password: str = declare(
        "", str, "any text", "Redis password when the URL has none.", secret=True
    )
    # only with rediss://; None: the system's CA certificates
    ca_file: Path | None = declare(
        "",
        optional_path,
        "a PEM file path, or empty for the system's CA certificates",
        "CA certificates that sign the Redis server's (rediss://) certificate.",
    )
    # seconds
    poll_interval: float = declare(
        "5s",
        positive_duration,
        f"{_DURATION_TEXT}, above 0",
        "While Redis is unreachable, how often sessions re-read their mailbox.",
    )


@section
class TlsSettings:
    # both set or both None
    cert: Path | None = declare(
        "",
        optional_path,
        "a certificate file path, or empty for none",
        "PEM certificate chain file; set with key or not at all.",
    )
    key: Path | None = declare(
        "",
        optional_path,
        "a private key file path, or empty for none",
        "PEM private key file; set with cert or not at all.",
    )

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@section
class LogSettings:
    level: LogLevel = declare(
        "info", choice(LogLevel), f"one of {', '.join(LogLevel)}", "Least severe messages logged."
    )


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings
    database: DatabaseSettings
    blobs: BlobsSettings
    imap: ImapSettings
    pop3: Pop3Settings
    auth: AuthSettings
    lmtp: LmtpSettings
    api: ApiSettings
    dav: DavSettings
    antivirus: AntivirusSettings
    gc: GcSettings
    notify: NotifySettings
    tls: TlsSettings
    log: LogSettings
    config_file: Path | None  # the file read, or None for defaults and environment only
