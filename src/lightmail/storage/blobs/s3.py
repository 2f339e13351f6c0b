"""Blobs in an S3 bucket (AWS or a compatible server), through obstore.

Path-style requests (``http://endpoint/bucket/key``); plain http only when the
endpoint says so. A blob smaller than one part goes up in one PUT; a larger one
as a multipart upload of ``_PART_SIZE`` parts, ``_PART_CONCURRENCY`` at a time, so
one put holds at most about ``(1 + _PART_CONCURRENCY) * _PART_SIZE`` bytes.

Errors: a missing object is :class:`BlobNotFound`; anything else the store or
the network does wrong (refused, reset, timed out, 5xx after retries, and also
403, which is a configuration fault mail must not bounce on) is
:class:`TemporaryFailure`, whose message names endpoint and bucket and never
the credentials.

Incomplete multipart uploads (a put whose process was killed) are invisible to
:meth:`S3BlobStore.list` and cost storage until aborted. obstore cannot list
them, so :meth:`S3BlobStore.sweep_incomplete` goes through botocore
(:mod:`lightmail.storage.blobs.s3_uploads`, imported by the first sweep).
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from obstore.exceptions import BaseError
from obstore.store import S3Store

from lightmail.errors import TemporaryFailure
from lightmail.storage.blobs._timed import TimedBlobStore
from lightmail.storage.blobs._timing import BlobTiming
from lightmail.storage.blobs.base import (
    READ_CHUNK,
    BlobInfo,
    BlobNotFound,
    PutResult,
    validate_prefix,
)

if TYPE_CHECKING:
    from obstore import GetResult, ObjectMeta
    from obstore.store import ClientConfig, RetryConfig, S3Config, S3Credential

    from lightmail.storage.blobs.s3_uploads import UploadSweeper

_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part; also the single-PUT threshold
_PART_CONCURRENCY = 2

_CLIENT_OPTIONS: ClientConfig = {
    "connect_timeout": "5 seconds",
    # A stalled socket fails after this long; the clock restarts after every read
    # and does not run while we are not reading, so slow IMAP clients are fine.
    "read_timeout": "30 seconds",
    # One whole request, body included: a GET streamed to a slow client must
    # fit in it.
    "timeout": "10 minutes",
    "pool_idle_timeout": "60 seconds",
}
_RETRY: RetryConfig = {
    "max_retries": 3,
    "retry_timeout": timedelta(seconds=20),
    "backoff": {
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=2),
        "base": 2,
    },
}
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
_USERINFO = re.compile(r"//[^/@\s]*@")


class S3BlobStore(TimedBlobStore):
    """A :class:`~lightmail.storage.blobs.base.BlobStore` in an S3 bucket.

    ``endpoint`` None (or empty) means ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``
    or ``AWS_ENDPOINT`` from the environment, else AWS itself; ``region`` empty
    means ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, else ``us-east-1``. With both
    keys given, exactly those are used (no session token from the environment);
    with neither, obstore's chain applies: ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, web identity
    (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``), ECS container
    credentials, then EC2 instance metadata. ``~/.aws`` files are not read.
    """

    __slots__ = (
        "_endpoint",
        "_secrets",
        "_store",
        "_sweeper",
        "_uploads",
        "_where",
        "description",
    )
    backend = "s3"
    # Each read waits a round trip: SeaweedFS on loopback answers a 10 KiB GET in
    # about 1 ms alone, 0.5 ms each with four in flight.
    read_ahead = 4

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None,
        region: str,
        access_key: str | None,
        secret_key: str | None,
    ) -> None:
        if bool(access_key) != bool(secret_key):
            raise ValueError("S3 access key and secret key must be set together, or neither")
        names = validate_prefix(prefix)
        endpoint = endpoint or _from_environment(_ENDPOINT_VARIABLES)
        region = region or _from_environment(_REGION_VARIABLES) or "us-east-1"
        config: S3Config = {"region": region, "virtual_hosted_style_request": False}
        if endpoint:
            # The S3-specific variable would win over ``endpoint``; set both.
            config["endpoint"] = endpoint
            config["aws_endpoint_url_s3"] = endpoint
            shown = _USERINFO.sub("//", endpoint.rstrip("/"))
        else:
            shown = f"https://s3.{region}.amazonaws.com"
        client_options: ClientConfig = {
            **_CLIENT_OPTIONS,
            "allow_http": urlsplit(endpoint or "").scheme.lower() == "http",
        }
        provider = None
        if access_key and secret_key:
            provider = _StaticCredentials(access_key, secret_key)
        self._store = S3Store(
            bucket,
            prefix="/".join(names) or None,
            config=config,
            client_options=client_options,
            retry_config=_RETRY,
            credential_provider=provider,
        )
        self._endpoint = shown
        self._where = f"{bucket}/{'/'.join(names)}" if names else bucket
        # What the sweeper of incomplete uploads is made with, at the first sweep.
        self._sweeper: dict[str, Any] = {
            "bucket": bucket,
            "prefix": "".join(f"{name}/" for name in names),
            "endpoint": endpoint or None,
            "region": region,
            "access_key": access_key or None,
            "secret_key": secret_key or None,
        }
        self._uploads: UploadSweeper | None = None
        self._secrets = tuple(s for s in (access_key, secret_key) if s)
        self.description = f"s3 {shown} {self._where}"

    async def close(self) -> None:
        # obstore's client has nothing to close; its pool idles out.
        if self._uploads is not None and self._uploads.opened:
            await asyncio.to_thread(self._uploads.close)

    # -- internals ---------------------------------------------------------------

    async def _put(self, key: str, chunks: AsyncIterator[bytes]) -> PutResult:
        tally = _Tally(chunks)
        head = await tally.read_up_to(_PART_SIZE)
        try:
            if tally.exhausted:
                await self._store.put_async(key, b"".join(head), use_multipart=False)
            else:
                await self._store.put_async(
                    key,
                    tally.rest(head),
                    use_multipart=True,
                    chunk_size=_PART_SIZE,
                    max_concurrency=_PART_CONCURRENCY,
                )
        except Exception as exc:
            if tally.error is not None:  # the source failed, not the store
                if tally.error is exc:
                    raise
                raise tally.error from None
            self._raise("put", exc)
        return PutResult(size=tally.size, sha256=tally.digest.hexdigest())

    async def _delete(self, keys: builtins.list[str]) -> None:
        try:
            # S3 DeleteObjects, 1,000 keys a request; absent keys are no error.
            await self._store.delete_async(keys)
        except Exception as exc:
            self._raise("delete", exc)

    async def _sweep(self, older_than: datetime, dry_run: bool) -> int:
        """Abort the multipart uploads under this store's prefix (the whole bucket
        without one) initiated before ``older_than``."""
        # botocore takes 0.13 s to import: only a process that sweeps pays it.
        from lightmail.storage.blobs import s3_uploads

        if self._uploads is None:
            self._uploads = s3_uploads.UploadSweeper(**self._sweeper)
        try:
            return await asyncio.to_thread(self._uploads.sweep, older_than, dry_run)
        except s3_uploads.ERRORS as exc:
            raise TemporaryFailure(
                f"S3 sweep of incomplete uploads failed at {self._endpoint} "
                f"bucket {self._where}: {self._reason(exc)}"
            ) from exc

    async def _get(self, key: str) -> AsyncGenerator[bytes, None]:
        try:
            result = await self._store.get_async(key)
        except Exception as exc:
            self._raise("get", exc, key)
        async for chunk in self._stream(result, key):
            yield chunk

    async def _get_range(self, key: str, start: int, end: int) -> AsyncGenerator[bytes, None]:
        if end <= start:
            await self._head(key)  # an empty range of a missing blob is still missing
            return
        try:
            result = await self._store.get_async(key, options={"range": (start, end)})
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except Exception as exc:
            # S3 answers 416 for a range that starts at or past the end.
            if start >= (await self._head(key))["size"]:
                return
            self._raise("get", exc, key)
        async for chunk in self._stream(result, key):
            yield chunk

    async def _stream(self, result: GetResult, key: str) -> AsyncIterator[bytes]:
        stream = result.stream(min_chunk_size=READ_CHUNK)
        while True:
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except Exception as exc:
                self._raise("get", exc, key)
            yield chunk

    async def _head(self, key: str) -> ObjectMeta:
        try:
            return await self._store.head_async(key)
        except Exception as exc:
            self._raise("head", exc, key)

    async def _list(
        self, names: tuple[str, ...], page_size: int
    ) -> AsyncIterator[builtins.list[BlobInfo]]:
        stream = self._store.list("/".join(names) or None, chunk_size=page_size)
        while True:
            with BlobTiming(self.backend, "list") as timing:
                try:
                    page = await anext(stream)
                except StopAsyncIteration:
                    timing.discard()  # the end of the listing, not a page
                    return
                except Exception as exc:
                    self._raise("list", exc)
            yield [
                BlobInfo(key=meta["path"], size=meta["size"], modified=meta["last_modified"])
                for meta in page
            ]

    def _raise(self, operation: str, exc: Exception, key: str | None = None) -> NoReturn:
        """Re-raise an obstore error as ours; anything unexpected goes through as is."""
        if isinstance(exc, FileNotFoundError) and key is not None:
            raise BlobNotFound(key) from None
        if isinstance(exc, BaseError | OSError):
            raise TemporaryFailure(
                f"S3 {operation} failed at {self._endpoint} bucket {self._where}: "
                f"{self._reason(exc)}"
            ) from exc
        raise exc

    def _reason(self, exc: Exception) -> str:
        """The first line of obstore's message, without anything secret in it."""
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        reason = _USERINFO.sub("//", reason.split(": <?xml", 1)[0])
        for secret in self._secrets:
            reason = reason.replace(secret, "[redacted]") if len(secret) >= 4 else reason
        return reason[:300]


class _StaticCredentials:
    """obstore credential provider for keys from the configuration.

    Used instead of obstore's config keys so that a stray ``AWS_SESSION_TOKEN``
    in the environment is not sent along with them.
    """

    __slots__ = ("_credential",)

    def __init__(self, access_key: str, secret_key: str) -> None:
        self._credential: S3Credential = {
            "access_key_id": access_key,
            "secret_access_key": secret_key,
            "token": None,
            "expires_at": None,  # never expires: obstore asks once
        }

    def __call__(self) -> S3Credential:
        return self._credential

    def __repr__(self) -> str:
        return "_StaticCredentials(...)"


class _Tally:
    """Counts and hashes a put's source as it is consumed; remembers its failure."""

    __slots__ = ("_source", "digest", "error", "exhausted", "size")

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self.digest = hashlib.sha256()
        self.size = 0
        self.exhausted = False
        self.error: BaseException | None = None

    async def next(self) -> bytes | None:
        """The next non-empty chunk, or None at the end."""
        while not self.exhausted:
            try:
                chunk = await anext(self._source)
            except StopAsyncIteration:
                self.exhausted = True
                return None
            except BaseException as exc:
                self.error = exc
                raise
            if chunk:
                data = chunk if isinstance(chunk, bytes) else bytes(chunk)
                self.digest.update(data)
                self.size += len(data)
                return data
        return None

    async def read_up_to(self, limit: int) -> builtins.list[bytes]:
        """Chunks until more than ``limit`` bytes or the end (``exhausted``)."""
        head: builtins.list[bytes] = []
        total = 0
        while total <= limit and (chunk := await self.next()) is not None:
            head.append(chunk)
            total += len(chunk)
        return head

    async def rest(self, head: builtins.list[bytes]) -> AsyncIterator[bytes]:
        """``head`` (released as it goes), then the rest of the source."""
        head.reverse()
        while head:
            yield head.pop()
        while (chunk := await self.next()) is not None:
            yield chunk


def _from_environment(names: tuple[str, ...]) -> str:
    for name in names:
        if value := os.environ.get(name, ""):
            return value
    return ""
