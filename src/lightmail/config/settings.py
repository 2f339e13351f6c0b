"""The settings: one frozen dataclass per ``config.ini`` section, one field per key;
the sections of the services clients connect to are in :mod:`.services`.

Each key is declared here once, on its field (:func:`~lightmail.config.keys.declare`):
its default text, parser, the words shown when a value is wrong and a line of
documentation. The order of the fields is the order of the keys.
``config.example.ini`` lists the same keys with the same defaults
(tests/unit/test_config.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lightmail.config.keys import declare, section
from lightmail.config.services import (
    ApiSettings,
    DavSettings,
    ImapSettings,
    LmtpSettings,
    Pop3Settings,
)
from lightmail.config.values import (
    BOOLEAN_TEXT,
    DATABASE_SCHEMES,
    DURATION_TEXT,
    SIZE_TEXT,
    AntivirusMode,
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
    duration_between,
    endpoint_url,
    integer,
    networks,
    optional_hostname,
    optional_path,
    parse_duration,
    positive_duration,
    positive_size,
    redis_url,
    word,
    worker_count,
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
        f"{DURATION_TEXT}, above 0",
        "How long to wait for a database connection.",
    )
    # seconds; after a COMMIT's reply was lost
    commit_check_timeout: float = declare(
        "30s",
        parse_duration,
        DURATION_TEXT,
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
        f"{DURATION_TEXT}, above 0",
        "The first throttling delay, doubled for each further failure.",
    )
    # seconds: the cap
    throttle_max_delay: float = declare(
        "1m", positive_duration, f"{DURATION_TEXT}, above 0", "The cap on the throttling delay."
    )
    # seconds without a failure after which the counts are forgotten
    throttle_reset: float = declare(
        "15m",
        positive_duration,
        f"{DURATION_TEXT}, above 0",
        "Failures are forgotten this long after the last one.",
    )


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
        f"{DURATION_TEXT}, above 0",
        "How long to wait for clamd at each step (connect, send, verdict).",
    )
    stream_max_length: int = declare(
        "25M", positive_size, SIZE_TEXT, "How much of a message is sent to clamd."
    )
    scan_append: bool = declare(
        "false", boolean, BOOLEAN_TEXT, "Also scan IMAP APPEND and API imports."
    )

    @property
    def enabled(self) -> bool:
        return self.mode is not AntivirusMode.OFF


@section
class GcSettings:
    enabled: bool = declare(
        "true", boolean, BOOLEAN_TEXT, "Whether the garbage collector runs in this process."
    )
    # seconds
    interval: float = declare(
        "5m",
        positive_duration,
        f"{DURATION_TEXT}, above 0",
        "Time between garbage collection runs.",
    )
    batch_size: int = declare(
        "500", integer(1, 100_000), "an integer from 1 to 100000", "Messages purged per batch."
    )
    # seconds
    retention: float = declare(
        "7d",
        parse_duration,
        DURATION_TEXT,
        "How long deleted messages are kept, restorable, before they are purged.",
    )
    # seconds
    orphan_grace: float = declare(
        "24h",
        parse_duration,
        DURATION_TEXT,
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
        f"{DURATION_TEXT}, above 0",
        "While Redis is unreachable, how often sessions re-read their mailbox.",
    )
    # seconds; a live node renews its connections every third of it
    lease: float = declare(
        "60s",
        positive_duration,
        f"{DURATION_TEXT}, above 0",
        "How long a node's connections still count toward the cluster's per-user caps "
        "after it stopped renewing them (it died or lost Redis).",
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
