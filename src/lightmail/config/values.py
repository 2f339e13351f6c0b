"""Value syntax of ``config.ini``: sizes, durations, booleans, addresses, URLs.

Each parser takes the text of one key and returns its value or raises
``ValueError``. A :class:`Value` pairs a parser with the words a wrong value is
told to be; the factories (:func:`integer`, :func:`size_between`, ...) derive
those words from their bounds, so that a bound is written once. The settings
declarations (:mod:`lightmail.config.settings`) name one ``Value`` per key.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeAlias, TypeVar
from urllib.parse import urlsplit

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
_REDIS_DB = re.compile(r"(/[0-9]{0,5})?")  # the path of a Redis URL: the database number

_T_co = TypeVar("_T_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Value(Generic[_T_co]):
    """A kind of configuration value: its parser and what a wrong value is told to be.

    The two are made together (by a factory or a constant below) so that the
    words an operator reads cannot drift from the range the parser enforces.
    """

    parse: Callable[[str], _T_co]  # raises ValueError
    allowed: str  # completes "... is invalid: expected <allowed>"

    def saying(self, allowed: str) -> Value[_T_co]:
        """The same parser in other words, for a key that says what it is for."""
        return Value(self.parse, allowed)


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


def format_size(size: int) -> str:
    """The shortest exact form :func:`parse_size` reads back (``16M``, ``255``)."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _duration_bound(seconds: float) -> str:
    """A duration in the words of a range: ``0`` rather than ``0s``."""
    return format_duration(seconds) if seconds else "0"


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
        return UnixAddress(absolute_path(item.removeprefix("unix:")))
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


def absolute_path(text: str) -> Path:
    if not text or "\0" in text:
        raise ValueError(f"invalid path {text!r}")
    return Path(os.path.abspath(os.path.expanduser(text)))


def optional_path(text: str) -> Path | None:
    return absolute_path(text) if text else None


def optional_hostname(text: str) -> str:
    return _hostname(text) if text else ""


def _between(parse: Callable[[str], _N], low: _N, high: _N) -> Callable[[str], _N]:
    """``parse``, then a ValueError unless the value is from ``low`` to ``high``."""

    def parse_between(text: str) -> _N:
        value = parse(text)
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range")
        return value

    return parse_between


def size_between(low: int, high: int) -> Value[int]:
    return Value(
        _between(parse_size, low, high), f"a size from {format_size(low)} to {format_size(high)}"
    )


def duration_at_least(low: float) -> Value[float]:
    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if seconds < low:
            raise ValueError(f"{seconds} is below {low}")
        return seconds

    return Value(parse, f"a duration of at least {_duration_bound(low)}")


def duration_between(low: float, high: float) -> Value[float]:
    return Value(
        _between(parse_duration, low, high),
        f"a duration from {_duration_bound(low)} to {_duration_bound(high)}",
    )


def boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"invalid boolean {text!r}") from None


def integer(low: int, high: int) -> Value[int]:
    def parse(text: str) -> int:
        if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
            raise ValueError(f"invalid integer {text!r}")
        return int(text)

    return Value(parse, f"an integer from {low} to {high}")


_MAX_WORKERS = 1024


def worker_count(text: str) -> int:
    """``auto`` (one per usable CPU) or a number of worker processes from 1 to 1024."""
    if text.lower() == "auto":
        if sys.version_info >= (3, 13):
            return os.process_cpu_count() or 1
        return os.cpu_count() or 1
    return integer(1, _MAX_WORKERS).parse(text)


def positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} is not above zero")
    return seconds


def positive_size(text: str) -> int:
    size = parse_size(text)
    if size <= 0:
        raise ValueError(f"size {text!r} is not above zero")
    return size


def networks(text: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item) for item in _split_list(text))


def clamd_address(text: str) -> ListenAddress:
    addresses = parse_listen(text)
    if len(addresses) != 1 or (isinstance(addresses[0], TcpAddress) and addresses[0].port == 0):
        raise ValueError(f"expected one address with a port, got {text!r}")
    return addresses[0]


DATABASE_SCHEMES = ("sqlite+aiosqlite", "mysql+asyncmy", "mysql+aiomysql", "mariadb+asyncmy")


def database_url(text: str) -> str:
    """Check the form only: ``sqlite+aiosqlite:///PATH`` or ``SCHEME://[user[:pw]@]host[:port]/db``."""
    if not text:
        return ""  # replaced by the SQLite file in data_dir
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in DATABASE_SCHEMES:
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


def blobs_url(text: str) -> str:
    """``file:PATH`` (or ``file:///PATH``) -> ``file:/ABSOLUTE``; ``s3://BUCKET[/PREFIX]``."""
    if not text:
        return ""  # replaced by file:<data_dir>/blobs
    if text.startswith("file:"):
        path = text.removeprefix("file:")
        if path.startswith("//"):
            if not path.startswith("///"):
                raise ValueError("file URL with a host")
            path = path[2:]
        return f"file:{absolute_path(path)}"
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        prefix = prefix.removesuffix("/")
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"invalid bucket name {bucket!r}")
        if prefix and any(not part or _SPACE.search(part) for part in prefix.split("/")):
            raise ValueError(f"invalid prefix {prefix!r}")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    raise ValueError("expected file: or s3://")


def endpoint_url(text: str) -> str:
    if not text:
        return ""
    parts = urlsplit(text)
    _ = parts.port  # raises ValueError on a bad port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return text


REDIS_SCHEMES = ("redis", "rediss")


def redis_url(text: str) -> str:
    """Check the form only: ``redis[s]://[[user]:password@]host[:port][/db]``, or empty."""
    if not text:
        return ""
    parts = urlsplit(text)
    _ = parts.port  # raises ValueError on a bad port
    if parts.scheme not in REDIS_SCHEMES or not parts.hostname:
        raise ValueError("expected a redis:// or rediss:// URL with a host")
    if parts.query or parts.fragment or not _REDIS_DB.fullmatch(parts.path):
        raise ValueError("expected at most a database number after the host")
    return text


def word(text: str) -> str:
    if not text or _SPACE.search(text):
        raise ValueError(f"expected one word, got {text!r}")
    return text


def optional_word(text: str) -> str:
    return word(text) if text else ""


def file_mode(text: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise ValueError(f"invalid file mode {text!r}")
    return int(text, 8)


class AntivirusMode(enum.StrEnum):
    OFF = "off"
    REJECT = "reject"  # LMTP 554 5.7.1
    QUARANTINE = "quarantine"  # kept aside, released through the API
    TAG = "tag"  # delivered with an X-Virus header


class ImipMode(enum.StrEnum):
    """What LMTP does with an invitation (iMIP, RFC 6047) in a delivered message."""

    OFF = "off"  # delivered as mail only
    TENTATIVE = "tentative"  # also put in the recipient's default calendar, unanswered


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
_N = TypeVar("_N", int, float)


def choice(cls: type[_E]) -> Value[_E]:
    def parse(text: str) -> _E:
        return cls(text.lower())  # ValueError when not a member

    return Value(parse, f"one of {', '.join(cls)}")


# The kinds of value with a parser of their own, each with what a wrong value is
# told to be ("... is invalid: expected ..."); a key in other words uses saying().
BOOLEAN = Value(boolean, "true/false, yes/no, on/off or 1/0")
DURATION = Value(parse_duration, "a duration such as 90, 30s, 5m, 12h or 7d")
POSITIVE_DURATION = Value(positive_duration, f"{DURATION.allowed}, above 0")
POSITIVE_SIZE = Value(positive_size, "a size such as 2048, 2K, 64M or 1G")
POSITIVE_INTEGER = integer(1, 1_000_000).saying("an integer of at least 1")
WORKERS = Value(worker_count, f"a number from 1 to {_MAX_WORKERS}, or auto")
TEXT = Value(str, "any text")
WORD = Value(word, "one word")
OPTIONAL_WORD = Value(optional_word, "one word, or empty")
PATH = Value(absolute_path, "a path")
OPTIONAL_PATH = Value(optional_path, "a file path, or empty for none")
HOSTNAME = Value(optional_hostname, "a host name such as mail.example.org, or empty")
FILE_MODE = Value(file_mode, "an octal file mode such as 0660")
LISTEN = Value(
    parse_listen,
    "addresses such as 127.0.0.1:1143, [::1]:1143 or unix:/path, comma-separated, or none",
)
NETWORKS = Value(
    networks, "networks such as 127.0.0.0/8, ::1 or 192.168.0.0/16, comma-separated, or none"
)
CLAMD_ADDRESS = Value(clamd_address, "HOST:PORT or unix:PATH")
DATABASE_URL = Value(
    database_url,
    "a URL such as sqlite+aiosqlite:///PATH or mysql+asyncmy://USER:PASSWORD@HOST:PORT/DB"
    f" (schemes: {', '.join(DATABASE_SCHEMES)}), or empty for SQLite in data_dir",
)
BLOBS_URL = Value(blobs_url, "file:PATH or s3://BUCKET/PREFIX, or empty for file:<data_dir>/blobs")
ENDPOINT_URL = Value(endpoint_url, "an http:// or https:// URL, or empty for AWS")
REDIS_URL = Value(
    redis_url, "a URL such as redis://HOST:PORT/0 or rediss://HOST:PORT/0, or empty for none"
)
