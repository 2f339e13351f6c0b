"""Blob stores: where messages and calendar objects live. :func:`open_blob_store` picks one."""

from __future__ import annotations

import re
from pathlib import Path

from lightmail.storage.blobs.base import (
    BLOB_PREFIXES,
    CALENDAR_PREFIX,
    LIST_PAGE_SIZE,
    MESSAGE_PREFIX,
    VCARD_PREFIX,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    PutResult,
    blob_key_time,
    new_blob_key,
    validate_key,
    validate_prefix,
)
from lightmail.storage.blobs.cache import CachedBlobStore, empty_cache
from lightmail.storage.blobs.filesystem import FileSystemBlobStore
from lightmail.storage.blobs.s3 import S3BlobStore

__all__ = [
    "BLOB_PREFIXES",
    "CALENDAR_PREFIX",
    "LIST_PAGE_SIZE",
    "MESSAGE_PREFIX",
    "VCARD_PREFIX",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "CachedBlobStore",
    "FileSystemBlobStore",
    "PutResult",
    "S3BlobStore",
    "blob_key_time",
    "empty_cache",
    "new_blob_key",
    "open_blob_store",
    "validate_key",
    "validate_prefix",
]

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def open_blob_store(
    url: str, *, endpoint: str, region: str, access_key: str, secret_key: str
) -> BlobStore:
    """The blob store that ``url`` names; the other arguments matter only for S3.

    ``url`` is ``file:PATH`` (a relative PATH is taken from the current directory;
    ``file:///abs`` also works) or ``s3://BUCKET`` or ``s3://BUCKET/PREFIX``. An
    empty string means "not set" (see :class:`S3BlobStore` for the fall-backs).
    Raises :class:`ValueError` with a sentence fit for a configuration error.
    """
    if url.startswith("file:"):
        return FileSystemBlobStore(_file_path(url))
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(
                f"blob store URL {url!r} has an invalid bucket name {bucket!r}: "
                "use 3 to 63 lowercase letters, digits, '.' and '-'"
            )
        try:
            validate_prefix(prefix)
        except ValueError as exc:
            raise ValueError(f"blob store URL {url!r} has an invalid prefix: {exc}") from None
        if bool(access_key) != bool(secret_key):
            raise ValueError("the S3 access key and secret key must be set together, or neither")
        return S3BlobStore(
            bucket,
            prefix,
            endpoint=endpoint or None,
            region=region,
            access_key=access_key or None,
            secret_key=secret_key or None,
        )
    raise ValueError(
        f"blob store URL {url!r} is not supported: use file:PATH or s3://BUCKET/PREFIX"
    )


def _file_path(url: str) -> Path:
    path = url.removeprefix("file:")
    if path.startswith("//"):  # file://HOST/PATH: only an empty host is local
        host, slash, rest = path[2:].partition("/")
        if host not in ("", "localhost"):
            raise ValueError(f"blob store URL {url!r} names a remote host {host!r}")
        path = slash + rest
    if not path:
        raise ValueError(f"blob store URL {url!r} has no path: use file:PATH")
    if "\0" in path:
        raise ValueError(f"blob store URL {url!r} contains a NUL character")
    return Path(path).absolute()
