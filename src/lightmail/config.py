"""Settings: ``config.ini`` plus ``LIGHTMAIL_<SECTION>_<KEY>`` environment overrides.

Every key is declared once, in ``_KEYS``: its section, name, default text, parser
and the words shown when a value is wrong. :func:`load_settings` takes each key
from the environment, else the file, else the default; replaces ``{data_dir}``
with the effective ``[server] data_dir``; parses it; and builds the frozen
:class:`Settings`. Anything wrong (a bad value, an unknown section, key or
``LIGHTMAIL_*`` variable, an unreadable file) raises :class:`ConfigError`,
whose ``str()`` is the one line shown at start-up.

Value syntax (also described in ``config.example.ini``):

- sizes: ``2048``, ``2K``, ``64M``, ``1G``, ``1T``; binary units (1K = 1024),
  case-insensitive, an optional trailing ``B`` (``64MB``); no signs or fractions.
- durations: ``90`` (seconds), ``30s``, ``1.5m``, ``12h``, ``7d``; decimal
  fractions allowed, case-insensitive; no signs or exponents.
- booleans: true/false, yes/no, on/off, 1/0.
- addresses: ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH``, comma-separated;
  an empty list means no listener.
- paths: ``~`` is expanded and relative paths are made absolute against the
  current directory.
"""

from __future__ import annotations

import configparser
import enum
import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

from lightmail.errors import ConfigError

ENV_PREFIX = "LIGHTMAIL_"
CONFIG_ENV = "LIGHTMAIL_CONFIG"  # names the file; never an override
DATA_DIR_PLACEHOLDER = "{data_dir}"

# --- values ----------------------------------------------------------------

_SIZE = re.compile(r"([0-9]+)([KMGT]?)B?", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([SMHD]?)", re.IGNORECASE | re.ASCII)
_DURATION_UNITS = {"": 1, "S": 1, "M": 60, "H": 3600, "D": 86400}
_BOOLEANS = {
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0"), False),
}
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_BRACKETED = re.compile(r"\[([^\]]*)\]:([0-9]+)")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_DIGITS = re.compile(r"[0-9]+")
_SPACE = re.compile(r"\s")
_URL_PASSWORD = re.compile(r"(://[^/:@]*:)[^@]*@")


def parse_size(text: str) -> int:
    """Bytes from ``2048``, ``2K``, ``64M``, ``64MB``, ``1G`` (1K = 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid size {text!r}: expected e.g. 2048, 2K, 64M or 1G")
    return int(match[1]) * _SIZE_UNITS[match[2].upper()]


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``30s``, ``1.5m``, ``12h``, ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    seconds = math.inf if match is None else float(match[1]) * _DURATION_UNITS[match[2].upper()]
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 90, 30s, 5m, 12h or 7d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form :func:`parse_duration` reads back (``7d``, ``90s``)."""
    for unit, factor in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % factor == 0:
            return f"{seconds / factor:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class TcpAddress:
    host: str  # an IPv4 or IPv6 address (normalized) or a host name
    port: int  # 0 lets the system choose

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UnixAddress:
    path: Path  # absolute

    def __str__(self) -> str:
        return f"unix:{self.path}"


ListenAddress: TypeAlias = TcpAddress | UnixAddress
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_listen(text: str) -> tuple[ListenAddress, ...]:
    """Addresses from ``127.0.0.1:1143, [::1]:1143, unix:/run/x.sock``; ``""`` gives ``()``."""
    return tuple(_address(item) for item in _split_list(text))


def _split_list(text: str) -> list[str]:
    if not text.strip():
        return []
    items = [item.strip() for item in text.split(",")]
    if "" in items:
        raise ValueError(f"empty item in list {text!r}")
    return items


def _address(item: str) -> ListenAddress:
    if item.startswith("unix:"):
        return UnixAddress(_absolute(item.removeprefix("unix:")))
    bracketed = _BRACKETED.fullmatch(item)
    if bracketed is not None:
        return TcpAddress(str(ipaddress.IPv6Address(bracketed[1])), _port(bracketed[2]))
    host, colon, port = item.rpartition(":")
    if not colon or ":" in host:
        raise ValueError(f"{item!r} is not HOST:PORT, [IPV6]:PORT or unix:PATH")
    if _DIGITS.fullmatch(host.replace(".", "")):
        host = str(ipaddress.IPv4Address(host))
    else:
        host = _hostname(host)
    return TcpAddress(host, _port(port))


def _port(text: str) -> int:
    if not _DIGITS.fullmatch(text) or int(text) > 65535:
        raise ValueError(f"invalid port {text!r}")
    return int(text)


def _hostname(text: str) -> str:
    labels = text.split(".")
    if len(text) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"invalid host name {text!r}")
    return text


def _absolute(text: str) -> Path:
    if not text or "\0" in text:
        raise ValueError(f"invalid path {text!r}")
    return Path(os.path.abspath(os.path.expanduser(text)))


def _optional_path(text: str) -> Path | None:
    return _absolute(text) if text else None


def _optional_hostname(text: str) -> str:
    return _hostname(text) if text else ""


def _size_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        size = parse_size(text)
        if not low <= size <= high:
            raise ValueError(f"{size} is out of range")
        return size

    return parse


def _duration_at_least(low: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if seconds < low:
            raise ValueError(f"{seconds} is below {low}")
        return seconds

    return parse


def _duration_between(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if not low <= seconds <= high:
            raise ValueError(f"{seconds} is out of range")
        return seconds

    return parse


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"invalid boolean {text!r}") from None


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
            raise ValueError(f"invalid integer {text!r}")
        return int(text)

    return parse


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} is not above zero")
    return seconds


def _positive_size(text: str) -> int:
    size = parse_size(text)
    if size <= 0:
        raise ValueError(f"size {text!r} is not above zero")
    return size


def _networks(text: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item) for item in _split_list(text))


def _clamd(text: str) -> ListenAddress:
    addresses = parse_listen(text)
    if len(addresses) != 1 or (isinstance(addresses[0], TcpAddress) and addresses[0].port == 0):
        raise ValueError(f"expected one address with a port, got {text!r}")
    return addresses[0]


_DATABASE_SCHEMES = ("sqlite+aiosqlite", "mysql+asyncmy", "mysql+aiomysql", "mariadb+asyncmy")


def _database_url(text: str) -> str:
    """Check the form only: ``sqlite+aiosqlite:///PATH`` or ``SCHEME://[user[:pw]@]host[:port]/db``."""
    if not text:
        return ""  # replaced by the SQLite file in data_dir
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in _DATABASE_SCHEMES:
        raise ValueError("unknown database URL scheme")
    if scheme == "sqlite+aiosqlite":
        if len(rest) < 2 or not rest.startswith("/"):
            raise ValueError("SQLite URL without a file path")
    else:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
        if not parts.path.strip("/") or "/" in parts.path.strip("/"):
            raise ValueError("database URL without a database name")
    return text


def _blobs_url(text: str) -> str:
    """``file:PATH`` (or ``file:///PATH``) -> ``file:/ABSOLUTE``; ``s3://BUCKET[/PREFIX]``."""
    if not text:
        return ""  # replaced by file:<data_dir>/blobs
    if text.startswith("file:"):
        path = text.removeprefix("file:")
        if path.startswith("//"):
            if not path.startswith("///"):
                raise ValueError("file URL with a host")
            path = path[2:]
        return f"file:{_absolute(path)}"
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        prefix = prefix.removesuffix("/")
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"invalid bucket name {bucket!r}")
        if prefix and any(not part or _SPACE.search(part) for part in prefix.split("/")):
            raise ValueError(f"invalid prefix {prefix!r}")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    raise ValueError("expected file: or s3://")


def _endpoint(text: str) -> str:
    if not text:
        return ""
    parts = urlsplit(text)
    _ = parts.port  # raises ValueError on a bad port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return text


def _word(text: str) -> str:
    if not text or _SPACE.search(text):
        raise ValueError(f"expected one word, got {text!r}")
    return text


def _optional_word(text: str) -> str:
    return _word(text) if text else ""


def _file_mode(text: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise ValueError(f"invalid file mode {text!r}")
    return int(text, 8)


class AntivirusMode(enum.StrEnum):
    OFF = "off"
    REJECT = "reject"  # LMTP 554 5.7.1
    QUARANTINE = "quarantine"  # kept aside, released through the API
    TAG = "tag"  # delivered with an X-Virus header


class ScanErrorPolicy(enum.StrEnum):
    """What LMTP does with a message when clamd is down or times out."""

    TEMPFAIL = "tempfail"  # 451 4.x.x: the MTA keeps the message and retries
    ACCEPT = "accept"  # deliver it unscanned
    REJECT = "reject"  # 554 5.7.1


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


_E = TypeVar("_E", bound=enum.StrEnum)


def _choice(cls: type[_E]) -> Callable[[str], _E]:
    def parse(text: str) -> _E:
        return cls(text.lower())  # ValueError when not a member

    return parse


# --- settings --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerSettings:
    data_dir: Path  # absolute
    hostname: str  # for greetings and Received headers; socket.getfqdn() by default


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = field(repr=False)  # effective SQLAlchemy URL; may hold a password
    pool_size: int
    connect_timeout: float  # seconds
    commit_check_timeout: float  # seconds; after a COMMIT's reply was lost


@dataclass(frozen=True, slots=True)
class BlobsSettings:
    url: str  # effective and normalized: file:/ABSOLUTE/PATH or s3://BUCKET[/PREFIX]
    endpoint: str  # "" for AWS
    region: str
    access_key: str  # "" (with secret_key "") means the usual AWS environment
    secret_key: str = field(repr=False)

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


@dataclass(frozen=True, slots=True)
class ImapSettings:
    listen: tuple[ListenAddress, ...]
    tls_listen: tuple[ListenAddress, ...]  # () unless [tls] is enabled
    plaintext_networks: tuple[Network, ...]
    max_append_size: int
    max_line_length: int
    idle_timeout: float
    login_timeout: float
    max_bad_commands: int
    max_commands_before_login: int
    max_login_failures: int
    max_connections: int
    max_connections_per_ip: int
    max_connections_per_user: int
    max_search_keys: int
    max_keywords_per_mailbox: int
    max_keywords_per_message: int

    def plaintext_allowed(
        self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> bool:
        """Whether a client at ``address`` may log in without TLS."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.plaintext_networks)


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    listen: tuple[ListenAddress, ...]
    tls_listen: tuple[ListenAddress, ...]  # () unless [tls] is enabled
    allow_delete: bool
    idle_timeout: float
    login_timeout: float
    max_bad_commands: int
    max_login_failures: int
    max_connections: int
    max_connections_per_ip: int


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Login hardening shared by IMAP, POP3 and any other login (see README)."""

    failure_delay: float  # seconds from the start of a failed login to its answer
    cache_ttl: float  # seconds a verified password is remembered; 0 disables the cache
    throttle_after: int  # failures per client address or account before delays begin
    throttle_delay: float  # seconds: the first delay, doubled for each further failure
    throttle_max_delay: float  # seconds: the cap
    throttle_reset: float  # seconds without a failure after which the counts are forgotten


@dataclass(frozen=True, slots=True)
class LmtpSettings:
    listen: tuple[ListenAddress, ...]
    max_message_size: int  # bytes
    max_recipients: int
    timeout: float  # each command, from when the server is ready for it (total, not silence)
    data_timeout: float  # the whole of DATA, from 354 to the final dot
    socket_mode: int
    socket_owner: str
    socket_group: str
    detail_mailbox: bool


@dataclass(frozen=True, slots=True)
class ApiSettings:
    listen: tuple[ListenAddress, ...]
    metrics_auth: bool  # /metrics needs a bearer token too
    header_timeout: float  # seconds to send a whole request head
    max_connections: int


@dataclass(frozen=True, slots=True)
class AntivirusSettings:
    mode: AntivirusMode
    clamd: ListenAddress
    on_error: ScanErrorPolicy
    timeout: float
    stream_max_length: int
    scan_append: bool

    @property
    def enabled(self) -> bool:
        return self.mode is not AntivirusMode.OFF


@dataclass(frozen=True, slots=True)
class GcSettings:
    enabled: bool
    interval: float  # seconds
    batch_size: int
    retention: float  # seconds
    orphan_grace: float  # seconds


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert: Path | None  # both set or both None
    key: Path | None

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: LogLevel


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
    antivirus: AntivirusSettings
    gc: GcSettings
    tls: TlsSettings
    log: LogSettings
    config_file: Path | None  # the file read, or None for defaults and environment only


# --- the keys --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    section: str
    name: str
    default: str
    parse: Callable[[str], object]  # raises ValueError
    allowed: str  # completes "... is invalid: expected <allowed>"


_SIZE_TEXT = "a size such as 2048, 2K, 64M or 1G"
_DURATION_TEXT = "a duration such as 90, 30s, 5m, 12h or 7d"
_LISTEN_TEXT = (
    "addresses such as 127.0.0.1:1143, [::1]:1143 or unix:/path, comma-separated, or none"
)
_BOOLEAN_TEXT = "true/false, yes/no, on/off or 1/0"

# [server] data_dir comes first: later values may contain {data_dir}.
_KEYS: tuple[_Key, ...] = (
    _Key("server", "data_dir", "./lightmail-data", _absolute, "a directory path"),
    _Key(
        "server",
        "hostname",
        "",
        _optional_hostname,
        "a host name such as mail.example.org, or empty",
    ),
    _Key(
        "database",
        "url",
        "",
        _database_url,
        "a URL such as sqlite+aiosqlite:///PATH or mysql+asyncmy://USER:PASSWORD@HOST:PORT/DB"
        f" (schemes: {', '.join(_DATABASE_SCHEMES)}), or empty for SQLite in data_dir",
    ),
    _Key("database", "pool_size", "10", _integer(1, 1_000_000), "an integer of at least 1"),
    _Key("database", "connect_timeout", "10s", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("database", "commit_check_timeout", "30s", parse_duration, _DURATION_TEXT),
    _Key(
        "blobs",
        "url",
        "",
        _blobs_url,
        "file:PATH or s3://BUCKET/PREFIX, or empty for file:<data_dir>/blobs",
    ),
    _Key("blobs", "endpoint", "", _endpoint, "an http:// or https:// URL, or empty for AWS"),
    _Key("blobs", "region", "us-east-1", _word, "a region name such as us-east-1"),
    _Key("blobs", "access_key", "", str, "any text"),
    _Key("blobs", "secret_key", "", str, "any text"),
    _Key("imap", "listen", "127.0.0.1:1143", parse_listen, _LISTEN_TEXT),
    _Key("imap", "tls_listen", "127.0.0.1:1993", parse_listen, _LISTEN_TEXT),
    _Key(
        "imap",
        "plaintext_networks",
        "127.0.0.0/8, ::1",
        _networks,
        "networks such as 127.0.0.0/8, ::1 or 192.168.0.0/16, comma-separated, or none",
    ),
    _Key("imap", "max_append_size", "64M", _positive_size, _SIZE_TEXT),
    _Key("imap", "max_line_length", "64K", _size_between(1024, 16 << 20), "a size from 1K to 16M"),
    _Key("imap", "idle_timeout", "30m", _duration_at_least(1800), "a duration of at least 30m"),
    _Key("imap", "login_timeout", "60s", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("imap", "max_bad_commands", "20", _integer(1, 1_000_000), "an integer of at least 1"),
    _Key(
        "imap",
        "max_commands_before_login",
        "30",
        _integer(1, 1_000),
        "an integer from 1 to 1000",
    ),
    _Key("imap", "max_login_failures", "3", _integer(1, 1_000), "an integer from 1 to 1000"),
    _Key("imap", "max_connections", "5000", _integer(1, 1_000_000), "an integer of at least 1"),
    _Key(
        "imap", "max_connections_per_ip", "100", _integer(1, 1_000_000), "an integer of at least 1"
    ),
    _Key(
        "imap", "max_connections_per_user", "50", _integer(1, 1_000_000), "an integer of at least 1"
    ),
    _Key("imap", "max_search_keys", "100", _integer(1, 100_000), "an integer from 1 to 100000"),
    _Key(
        "imap", "max_keywords_per_mailbox", "100", _integer(1, 1_000), "an integer from 1 to 1000"
    ),
    _Key("imap", "max_keywords_per_message", "50", _integer(1, 1_000), "an integer from 1 to 1000"),
    _Key("pop3", "listen", "127.0.0.1:1110", parse_listen, _LISTEN_TEXT),
    _Key("pop3", "tls_listen", "127.0.0.1:1995", parse_listen, _LISTEN_TEXT),
    _Key("pop3", "allow_delete", "false", _boolean, _BOOLEAN_TEXT),
    _Key("pop3", "idle_timeout", "10m", _duration_at_least(600), "a duration of at least 10m"),
    _Key("pop3", "login_timeout", "60s", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("pop3", "max_bad_commands", "20", _integer(1, 1_000_000), "an integer of at least 1"),
    _Key("pop3", "max_login_failures", "3", _integer(1, 1_000), "an integer from 1 to 1000"),
    _Key("pop3", "max_connections", "5000", _integer(1, 1_000_000), "an integer of at least 1"),
    _Key(
        "pop3", "max_connections_per_ip", "100", _integer(1, 1_000_000), "an integer of at least 1"
    ),
    _Key("auth", "failure_delay", "2s", _duration_between(0, 60), "a duration from 0 to 1m"),
    _Key("auth", "cache_ttl", "5m", _duration_between(0, 86400), "a duration from 0 to 1d"),
    _Key("auth", "throttle_after", "3", _integer(0, 1_000), "an integer from 0 to 1000"),
    _Key("auth", "throttle_delay", "1s", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("auth", "throttle_max_delay", "1m", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("auth", "throttle_reset", "15m", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("lmtp", "listen", "127.0.0.1:2424, unix:{data_dir}/lmtp.sock", parse_listen, _LISTEN_TEXT),
    _Key("lmtp", "max_message_size", "64M", _positive_size, _SIZE_TEXT),
    _Key("lmtp", "max_recipients", "1000", _integer(1, 100_000), "an integer from 1 to 100000"),
    _Key("lmtp", "timeout", "10m", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("lmtp", "data_timeout", "10m", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("lmtp", "socket_mode", "0660", _file_mode, "an octal file mode such as 0660"),
    _Key("lmtp", "socket_owner", "", _optional_word, "a user name, or empty"),
    _Key("lmtp", "socket_group", "", _optional_word, "a group name, or empty"),
    _Key("lmtp", "detail_mailbox", "false", _boolean, _BOOLEAN_TEXT),
    _Key("api", "listen", "127.0.0.1:8080", parse_listen, _LISTEN_TEXT),
    _Key("api", "metrics_auth", "false", _boolean, _BOOLEAN_TEXT),
    _Key("api", "header_timeout", "30s", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("api", "max_connections", "1000", _integer(1, 1_000_000), "an integer of at least 1"),
    _Key(
        "antivirus",
        "mode",
        "off",
        _choice(AntivirusMode),
        f"one of {', '.join(AntivirusMode)}",
    ),
    _Key("antivirus", "clamd", "127.0.0.1:3310", _clamd, "HOST:PORT or unix:PATH"),
    _Key(
        "antivirus",
        "on_error",
        "tempfail",
        _choice(ScanErrorPolicy),
        "one of tempfail, accept, reject",
    ),
    _Key("antivirus", "timeout", "60s", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("antivirus", "stream_max_length", "25M", _positive_size, _SIZE_TEXT),
    _Key("antivirus", "scan_append", "false", _boolean, _BOOLEAN_TEXT),
    _Key("gc", "enabled", "true", _boolean, _BOOLEAN_TEXT),
    _Key("gc", "interval", "5m", _positive_duration, f"{_DURATION_TEXT}, above 0"),
    _Key("gc", "batch_size", "500", _integer(1, 100_000), "an integer from 1 to 100000"),
    _Key("gc", "retention", "7d", parse_duration, _DURATION_TEXT),
    _Key("gc", "orphan_grace", "24h", parse_duration, _DURATION_TEXT),
    _Key("tls", "cert", "", _optional_path, "a certificate file path, or empty for none"),
    _Key("tls", "key", "", _optional_path, "a private key file path, or empty for none"),
    _Key("log", "level", "info", _choice(LogLevel), f"one of {', '.join(LogLevel)}"),
)

# [auth] with every key at its default: for code that logs no one in from a
# configuration file (the CLI's management commands, tools, tests).
_AUTH_DEFAULT_VALUES: dict[str, Any] = {
    key.name: key.parse(key.default) for key in _KEYS if key.section == "auth"
}
AUTH_DEFAULTS = AuthSettings(**_AUTH_DEFAULT_VALUES)

_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    section: tuple(key.name for key in _KEYS if key.section == section)
    for section in dict.fromkeys(key.section for key in _KEYS)
}

# (section, key) -> (text, origin); origin is "" for the file or " (set by NAME)"
_Given: TypeAlias = dict[tuple[str, str], tuple[str, str]]


def _unknown(section: str, key: str, value: str, origin: str = "") -> ConfigError:
    known = _SECTION_KEYS.get(section)
    if known is None:
        allowed = f"one of the sections {', '.join(_SECTION_KEYS)}"
    else:
        allowed = f"one of the keys {', '.join(known)}"
    return ConfigError(section, key, _redact(value), allowed + origin)


def _redact(text: str) -> str:
    """Hide the password of a URL such as ``mysql+asyncmy://user:pw@host/db``."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _one_line(error: Exception) -> str:
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return " ".join(text.split())


def _read_file(path: Path) -> _Given:
    parser = configparser.ConfigParser(interpolation=None, empty_lines_in_values=False)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError) as error:
        allowed = f"a readable UTF-8 file ({_one_line(error)})"
        raise ConfigError("", "file", str(path), allowed) from error
    except configparser.Error as error:
        allowed = f"valid INI syntax ({_one_line(error)})"
        raise ConfigError("", "file", str(path), allowed) from error
    if parser.defaults():  # [DEFAULT] would leak its keys into every section
        key, value = next(iter(parser.defaults().items()))
        raise _unknown(parser.default_section, key, value)
    given: _Given = {}
    for section in parser.sections():
        items = parser.items(section)
        if section not in _SECTION_KEYS:
            key, value = items[0] if items else ("(empty section)", "")
            raise _unknown(section, key, value)
        for key, value in items:
            if key not in _SECTION_KEYS[section]:
                raise _unknown(section, key, value)
            given[section, key] = (value, "")
    return given


def _read_environ(environ: Mapping[str, str]) -> _Given:
    given: _Given = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("_")
        origin = f" (set by {name})"
        if key not in _SECTION_KEYS.get(section, ()):
            raise _unknown(section, key, environ[name], origin)
        given[section, key] = (environ[name].strip(), origin)
    return given


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (None: defaults only), apply ``LIGHTMAIL_*`` overrides, validate.

    ``environ`` defaults to ``os.environ``. Raises :class:`ConfigError`.
    """
    given: _Given = {} if path is None else _read_file(path)
    given |= _read_environ(os.environ if environ is None else environ)
    values: dict[str, dict[str, Any]] = {section: {} for section in _SECTION_KEYS}
    data_dir = ""
    for key in _KEYS:
        text, origin = given.get((key.section, key.name), (key.default, ""))
        try:
            value = key.parse(text.replace(DATA_DIR_PLACEHOLDER, data_dir) if data_dir else text)
        except ValueError:
            raise ConfigError(key.section, key.name, _redact(text), key.allowed + origin) from None
        values[key.section][key.name] = value
        if (key.section, key.name) == ("server", "data_dir"):
            data_dir = str(value)
    return _build(values, Path(data_dir), path)


def _build(values: dict[str, dict[str, Any]], data_dir: Path, path: Path | None) -> Settings:
    """Fill the defaults that depend on other values, check the pairs, build."""
    values["server"]["hostname"] = values["server"]["hostname"] or socket.getfqdn()
    values["database"]["url"] = (
        values["database"]["url"] or f"sqlite+aiosqlite:///{data_dir / 'lightmail.db'}"
    )
    values["blobs"]["url"] = values["blobs"]["url"] or f"file:{data_dir / 'blobs'}"
    _check_pair(values, "blobs", "access_key", "secret_key")
    _check_pair(values, "tls", "cert", "key")
    _check_order(values, "auth", "throttle_delay", "throttle_max_delay")
    _check_order(values, "auth", "throttle_max_delay", "throttle_reset")
    imap = values["imap"]
    if imap["max_keywords_per_message"] > imap["max_keywords_per_mailbox"]:
        raise ConfigError(
            "imap",
            "max_keywords_per_message",
            str(imap["max_keywords_per_message"]),
            f"an integer from 1 to max_keywords_per_mailbox ({imap['max_keywords_per_mailbox']})",
        )
    tls = TlsSettings(**values["tls"])
    for name, file in (("cert", tls.cert), ("key", tls.key)):
        if file is not None:
            _check_readable("tls", name, file)
    if not tls.enabled:  # implicit TLS needs a certificate: tls_listen is ignored
        values["imap"]["tls_listen"] = values["pop3"]["tls_listen"] = ()
    return Settings(
        server=ServerSettings(**values["server"]),
        database=DatabaseSettings(**values["database"]),
        blobs=BlobsSettings(**values["blobs"]),
        imap=ImapSettings(**values["imap"]),
        pop3=Pop3Settings(**values["pop3"]),
        auth=AuthSettings(**values["auth"]),
        lmtp=LmtpSettings(**values["lmtp"]),
        api=ApiSettings(**values["api"]),
        antivirus=AntivirusSettings(**values["antivirus"]),
        gc=GcSettings(**values["gc"]),
        tls=tls,
        log=LogSettings(**values["log"]),
        config_file=path,
    )


def _check_pair(values: dict[str, dict[str, Any]], section: str, first: str, second: str) -> None:
    """Both keys set or neither; the error names the empty one (never shows a secret)."""
    for one, other in ((first, second), (second, first)):
        if values[section][one] and not values[section][other]:
            raise ConfigError(section, other, "", f"a value when {one} is set")


def _check_order(values: dict[str, dict[str, Any]], section: str, low: str, high: str) -> None:
    """``high`` must not be below ``low`` (a cap below the first step means nothing)."""
    if values[section][high] < values[section][low]:
        raise ConfigError(
            section,
            high,
            format_duration(values[section][high]),
            f"a duration of at least {low} ({format_duration(values[section][low])})",
        )


def _check_readable(section: str, key: str, file: Path) -> None:
    try:
        with file.open("rb"):
            pass
    except OSError as error:
        raise ConfigError(
            section, key, str(file), f"a readable file ({_one_line(error)})"
        ) from error


def resolve_config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path | None:
    """``--config FILE``, else ``$LIGHTMAIL_CONFIG``, else ``./config.ini`` if present, else None.

    A file named by the option or the variable must exist (ConfigError otherwise);
    an empty ``LIGHTMAIL_CONFIG`` counts as unset.
    """
    for key, value in (("--config", cli_value), (CONFIG_ENV, environ.get(CONFIG_ENV) or None)):
        if value is None:
            continue
        try:
            path = _absolute(value)
        except ValueError:
            path = None
        if path is None or not path.is_file():
            raise ConfigError("", key, value, "an existing config file")
        return path
    default = Path("config.ini")
    return default.absolute() if default.is_file() else None
