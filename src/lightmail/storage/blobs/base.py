"""The blob store interface: raw messages and calendar objects live here, addressed by key.

Keys look like ``eml/<uuid7>.eml`` (messages), ``ics/<uuid7>.ics`` (calendar
objects) and ``vcf/<uuid7>.vcf`` (address objects). A blob is written once and
never changed; it is deleted only by the garbage collector, once no live row
uses it.
Every implementation raises :class:`lightmail.errors.TemporaryFailure` when
the store is unreachable, so callers can answer with a temporary error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import uuid6

from lightmail.errors import LightMailError

LIST_PAGE_SIZE = 1000
"""How many :class:`BlobInfo` one page of :meth:`BlobStore.list` holds by default."""

READ_CHUNK = 256 * 1024
"""About how many bytes each chunk :meth:`BlobStore.get` yields holds (the last may be less)."""

_MAX_KEY_BYTES = 1024  # S3's limit on a key, applied to every backend alike
_BACKSLASH_OR_CONTROL = re.compile(r"[\\\x00-\x1f\x7f]")


class BlobNotFound(LightMailError):
    """No blob is stored under ``key``."""

    def __init__(self, key: str) -> None:
        super().__init__(f"blob {key!r} does not exist")
        self.key = key


@dataclass(frozen=True, slots=True)
class PutResult:
    size: int
    sha256: str  # lowercase hex


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    modified: datetime  # timezone-aware UTC


class BlobStore(Protocol):
    description: str  # for the start-up log line, with no secrets in it
    # How many small reads a reader going through messages in order keeps in
    # flight ahead of it (lightmail.mailstore.readahead): 0 where a read does not
    # wait for a network round trip.
    read_ahead: int

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> PutResult:
        """Store the chunks under ``key``; return only once the blob is durable."""
        ...

    def get(self, key: str) -> AsyncIterator[bytes]:
        """Stream the whole blob in bounded chunks."""
        ...

    def get_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes ``start`` (inclusive) to ``end`` (exclusive), clamped to the size."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Delete the keys; keys that are already gone are not an error."""
        ...

    def list(
        self, prefix: str, *, page_size: int = LIST_PAGE_SIZE
    ) -> AsyncIterator[list[BlobInfo]]:
        """Page through the blobs under ``prefix``, one bounded page at a time.

        ``prefix`` is a folder of keys (``""`` for all, ``"eml"`` or ``"eml/"`` for
        every key that starts with ``eml/``), not an arbitrary string prefix. Pages
        hold at most ``page_size`` blobs; their order is unspecified.
        """
        ...

    async def sweep_incomplete(self, older_than: datetime, *, dry_run: bool = False) -> int:
        """Remove the remains of writes that never finished, begun before ``older_than``.

        A ``put`` that is interrupted in-process cleans up after itself; a killed
        process leaves a temporary file (filesystem) or an incomplete multipart
        upload (S3) behind, which :meth:`list` never shows. ``older_than`` is
        timezone-aware. Returns how many were removed (with ``dry_run``: would be).
        """
        ...

    async def close(self) -> None: ...


MESSAGE_PREFIX = "eml/"
"""Every message blob's key starts with this."""

CALENDAR_PREFIX = "ics/"
"""Every calendar object blob's key starts with this."""

VCARD_PREFIX = "vcf/"
"""Every address object (vCard) blob's key starts with this."""

# The folder of each kind of blob LightMail writes, and its keys' suffix.
_SUFFIXES = {MESSAGE_PREFIX: ".eml", CALENDAR_PREFIX: ".ics", VCARD_PREFIX: ".vcf"}
BLOB_PREFIXES = tuple(_SUFFIXES)
"""The folders of every blob LightMail writes (the orphan sweep lists each)."""


def new_blob_key(prefix: str = MESSAGE_PREFIX) -> str:
    """A fresh, time-ordered key for a blob under ``prefix`` (UUIDv7, RFC 9562)."""
    return f"{prefix}{uuid6.uuid7()}{_SUFFIXES[prefix]}"


def blob_key_time(key: str) -> datetime | None:
    """When a key from :func:`new_blob_key` was made (its UUIDv7's milliseconds),
    or None for a key of another shape."""
    prefix = key[: key.find("/") + 1]
    suffix = _SUFFIXES.get(prefix)
    if suffix is None:
        return None
    name = key.removeprefix(prefix).removesuffix(suffix)
    try:
        value = uuid.UUID(name)
    except ValueError:
        return None
    if value.version != 7 or key != f"{prefix}{value}{suffix}":
        return None
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


def validate_key(key: str) -> str:
    """Return ``key`` if it is a well-formed blob key, else raise :class:`ValueError`.

    A key is one or more ``/``-separated names: not absolute, no empty names, no
    ``.`` or ``..``, no name starting with ``.`` (reserved for the stores' own
    files), no backslash or control character, at most 1024 bytes of UTF-8.
    """
    _check_segments(key, key.split("/"))
    return key


def validate_prefix(prefix: str) -> tuple[str, ...]:
    """Return the names of a :meth:`BlobStore.list` prefix (``()`` for ``""``).

    One trailing ``/`` is allowed; otherwise the rules of :func:`validate_key` apply.
    """
    trimmed = prefix.removesuffix("/")
    if not trimmed:
        if prefix:
            raise ValueError(f"invalid blob prefix {prefix!r}: it must not be only '/'")
        return ()
    names = trimmed.split("/")
    _check_segments(prefix, names)
    return tuple(names)


def validate_listing(prefix: str, page_size: int) -> tuple[str, ...]:
    """Check the arguments of :meth:`BlobStore.list`; return the names of ``prefix``."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    return validate_prefix(prefix)


def validate_range(start: int) -> None:
    """Check the start of a :meth:`BlobStore.get_range` (an end before it is an empty range)."""
    if start < 0:
        raise ValueError(f"range start must not be negative, got {start}")


def _check_segments(key: str, names: list[str]) -> None:
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"invalid blob key {key!r}: not valid Unicode") from None
    if size > _MAX_KEY_BYTES:
        raise ValueError(f"invalid blob key {key[:40]!r}...: longer than {_MAX_KEY_BYTES} bytes")
    for name in names:
        if not name:
            raise ValueError(f"invalid blob key {key!r}: empty name (absolute or '//')")
        if name.startswith("."):
            raise ValueError(f"invalid blob key {key!r}: a name starts with '.'")
    if _BACKSLASH_OR_CONTROL.search(key) is not None:
        raise ValueError(f"invalid blob key {key!r}: backslash or control character")
