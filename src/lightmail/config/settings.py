"""The settings: one frozen dataclass per ``config.ini`` section, one field per key;
the sections of the services clients connect to are in :mod:`.services`.

Each key is declared here once, on its field (:func:`~lightmail.config.keys.declare`):
its default text, its kind of value (:class:`~lightmail.config.values.Value`: the
parser and the words shown when a value is wrong) and a line of documentation.
The order of the fields is the order of the keys. ``config.example.ini`` lists
the same keys with the same defaults (tests/unit/test_config.py checks it).
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
    BLOBS_URL,
    BOOLEAN,
    CLAMD_ADDRESS,
    DATABASE_URL,
    DURATION,
    ENDPOINT_URL,
    HOSTNAME,
    NETWORKS,
    OPTIONAL_PATH,
    PATH,
    POSITIVE_DURATION,
    POSITIVE_INTEGER,
    POSITIVE_SIZE,
    REDIS_URL,
    TEXT,
    WORD,
    WORKERS,
    AntivirusMode,
    ListenAddress,
    LogLevel,
    Network,
    ScanErrorPolicy,
    choice,
    duration_between,
    integer,
    size_between,
)


@section
class ServerSettings:
    # absolute
    data_dir: Path = declare(
        "./lightmail-data",
        PATH.saying("a directory path"),
        "Folder for LightMail's own files (default database, blobs, LMTP socket).",
    )
    # for greetings and Received headers; socket.getfqdn() by default
    hostname: str = declare(
        "", HOSTNAME, "Name used in greetings and Received headers; empty: this machine's FQDN."
    )
    # resolved: auto is the number of CPUs this process may use
    workers: int = declare(
        "auto",
        WORKERS,
        "Worker processes `serve` runs; auto: one per CPU; 1: no supervisor process.",
    )
    proxy_networks: tuple[Network, ...] = declare(
        "",
        NETWORKS.saying(
            "networks such as 10.0.0.0/8 or 192.168.0.10/32, comma-separated, or empty"
        ),
        "Load balancers that must send a PROXY protocol header (v1 or v2) first; empty: none.",
    )


@section
class DatabaseSettings:
    # effective SQLAlchemy URL; may hold a password
    url: str = declare(
        "",
        DATABASE_URL,
        "SQLAlchemy URL of the metadata database; empty: SQLite in data_dir.",
        secret=True,
    )
    pool_size: int = declare(
        "10",
        POSITIVE_INTEGER,
        "Connections kept open to the database; on MySQL/MariaDB each process may open"
        " up to three times as many when busy (this many for reads, twice as many for"
        " transactions).",
    )
    # seconds
    connect_timeout: float = declare(
        "10s", POSITIVE_DURATION, "How long to wait for a database connection."
    )
    # seconds; after a COMMIT's reply was lost
    commit_check_timeout: float = declare(
        "30s", DURATION, "How long to keep asking whether a COMMIT whose reply was lost held."
    )
    max_retries: int = declare(
        "8",
        integer(0, 100),
        "How often a write rolled back by a deadlock (on Galera: a certification "
        "conflict) is run again before it fails as temporary.",
    )
    wsrep_sync_wait: int = declare(
        "1",
        integer(0, 15),
        "On a Galera node: the session's wsrep_sync_wait (1: reads see every commit "
        "made on any node before they began; 0: off).",
    )


@section
class BlobsSettings:
    # effective and normalized: file:/ABSOLUTE/PATH or s3://BUCKET[/PREFIX]
    url: str = declare(
        "", BLOBS_URL, "Where raw messages are stored: file:PATH or s3://BUCKET/PREFIX."
    )
    # "" for AWS
    endpoint: str = declare(
        "", ENDPOINT_URL, "S3 endpoint URL for services other than AWS; empty: AWS."
    )
    region: str = declare("us-east-1", WORD.saying("a region name such as us-east-1"), "S3 region.")
    # "" (with secret_key "") means the usual AWS environment
    access_key: str = declare(
        "", TEXT, "S3 access key; empty (with secret_key): the usual AWS environment."
    )
    secret_key: str = declare(
        "", TEXT, "S3 secret key; set with access_key or not at all.", secret=True
    )
    # absolute; None: no cache (it is refused with a file: URL)
    cache_folder: Path | None = declare(
        "",
        OPTIONAL_PATH.saying("a directory path, or empty for no cache"),
        "With s3://: a local folder keeping copies of messages up to 1 MiB, read "
        "instead of S3; empty: no cache.",
    )
    cache_size: int = declare(
        "1G", size_between(1 << 20, 1 << 50), "How much the cache folder holds at most."
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
        "2s", duration_between(0, 60), "A failed login is answered this long after it began."
    )
    # seconds a verified password is remembered; 0 disables the cache
    cache_ttl: float = declare(
        "5m",
        duration_between(0, 86400),
        "How long a verified password is remembered; 0 turns the cache off.",
    )
    # failures per client address or account before delays begin
    throttle_after: int = declare(
        "3", integer(0, 1_000), "Failures per client address or account before throttling begins."
    )
    # seconds: the first delay, doubled for each further failure
    throttle_delay: float = declare(
        "1s", POSITIVE_DURATION, "The first throttling delay, doubled for each further failure."
    )
    # seconds: the cap
    throttle_max_delay: float = declare("1m", POSITIVE_DURATION, "The cap on the throttling delay.")
    # seconds without a failure after which the counts are forgotten
    throttle_reset: float = declare(
        "15m", POSITIVE_DURATION, "Failures are forgotten this long after the last one."
    )


@section
class AntivirusSettings:
    mode: AntivirusMode = declare(
        "off", choice(AntivirusMode), "What to do with mail in which clamd finds a virus."
    )
    clamd: ListenAddress = declare("127.0.0.1:3310", CLAMD_ADDRESS, "Address of clamd.")
    on_error: ScanErrorPolicy = declare(
        "tempfail",
        choice(ScanErrorPolicy),
        "What to do with a message when clamd is down or times out.",
    )
    timeout: float = declare(
        "60s",
        POSITIVE_DURATION,
        "How long to wait for clamd at each step (connect, send, verdict).",
    )
    stream_max_length: int = declare(
        "25M", POSITIVE_SIZE, "How much of a message is sent to clamd."
    )
    scan_append: bool = declare("false", BOOLEAN, "Also scan IMAP APPEND and API imports.")

    @property
    def enabled(self) -> bool:
        return self.mode is not AntivirusMode.OFF


@section
class GcSettings:
    enabled: bool = declare("true", BOOLEAN, "Whether the garbage collector runs in this process.")
    # seconds
    interval: float = declare("5m", POSITIVE_DURATION, "Time between garbage collection runs.")
    batch_size: int = declare("500", integer(1, 100_000), "Messages purged per batch.")
    # seconds
    retention: float = declare(
        "7d", DURATION, "How long deleted messages are kept, restorable, before they are purged."
    )
    # seconds
    orphan_grace: float = declare(
        "24h", DURATION, "Age at which a blob no message refers to is deleted."
    )


@section
class NotifySettings:
    # "" for the in-process bus (relayed between the workers of one node); may hold a password
    url: str = declare(
        "",
        REDIS_URL,
        "Redis that carries change events between nodes; empty: this node only.",
        secret=True,
    )
    # used when the URL has none
    password: str = declare("", TEXT, "Redis password when the URL has none.", secret=True)
    # only with rediss://; None: the system's CA certificates
    ca_file: Path | None = declare(
        "",
        OPTIONAL_PATH.saying("a PEM file path, or empty for the system's CA certificates"),
        "CA certificates that sign the Redis server's (rediss://) certificate.",
    )
    # seconds
    poll_interval: float = declare(
        "5s",
        POSITIVE_DURATION,
        "While Redis is unreachable, how often sessions re-read their mailbox.",
    )
    # seconds; a live node renews its connections every third of it
    lease: float = declare(
        "60s",
        POSITIVE_DURATION,
        "How long a node's connections still count toward the cluster's per-user caps "
        "after it stopped renewing them (it died or lost Redis).",
    )


@section
class TlsSettings:
    # both set or both None
    cert: Path | None = declare(
        "",
        OPTIONAL_PATH.saying("a certificate file path, or empty for none"),
        "PEM certificate chain file; set with key or not at all.",
    )
    key: Path | None = declare(
        "",
        OPTIONAL_PATH.saying("a private key file path, or empty for none"),
        "PEM private key file; set with cert or not at all.",
    )

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@section
class LogSettings:
    level: LogLevel = declare("info", choice(LogLevel), "Least severe messages logged.")


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
