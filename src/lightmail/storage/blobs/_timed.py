"""The part of a blob store every backend shares: the public methods.

Each checks its arguments by :mod:`lightmail.storage.blobs.base`'s rules (a bad
key is a :class:`ValueError` at the call, before any I/O) and times the
operation, counting its failures (``lightmail_blob_*`` in
:mod:`lightmail.metrics`, labelled with the backend's ``backend``). A backend
implements the ``_``-methods, which get checked arguments.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from datetime import datetime
from typing import ClassVar

from lightmail.storage.blobs._timing import BlobTiming
from lightmail.storage.blobs.base import (
    LIST_PAGE_SIZE,
    BlobInfo,
    PutResult,
    validate_key,
    validate_listing,
    validate_range,
)


class TimedBlobStore(abc.ABC):
    """A :class:`~lightmail.storage.blobs.base.BlobStore` less its backend."""

    __slots__ = ()

    backend: ClassVar[str]  # the metrics label
    read_ahead: int  # see BlobStore; a class attribute of each backend
    description: str

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> PutResult:
        validate_key(key)
        with BlobTiming(self.backend, "put") as timing:
            return await self._put(key, timing.source(chunks))

    def get(self, key: str) -> AsyncIterator[bytes]:
        return self._timed("get", self._get(validate_key(key)))

    def get_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        validate_range(start)
        return self._timed("get_range", self._get_range(validate_key(key), start, max(start, end)))

    async def delete_many(self, keys: Sequence[str]) -> None:
        checked = [validate_key(key) for key in keys]
        if checked:
            with BlobTiming(self.backend, "delete"):
                await self._delete(checked)

    async def sweep_incomplete(self, older_than: datetime, *, dry_run: bool = False) -> int:
        with BlobTiming(self.backend, "sweep"):
            return await self._sweep(older_than, dry_run)

    def list(
        self, prefix: str, *, page_size: int = LIST_PAGE_SIZE
    ) -> AsyncIterator[builtins.list[BlobInfo]]:
        """Each page is timed by the backend: a page is one request or one walk."""
        return self._list(validate_listing(prefix, page_size), page_size)

    async def _timed(
        self, operation: str, chunks: AsyncGenerator[bytes, None]
    ) -> AsyncIterator[bytes]:
        """``chunks``, timed until the first arrives (then the reader's pace counts)."""
        async with contextlib.aclosing(chunks):
            with BlobTiming(self.backend, operation) as timing:
                async for chunk in chunks:
                    timing.first_chunk()
                    yield chunk

    # -- the backend ---------------------------------------------------------------

    @abc.abstractmethod
    async def _put(self, key: str, chunks: AsyncIterator[bytes]) -> PutResult:
        """Store ``chunks`` (the source, its waits off the clock) under ``key``."""

    @abc.abstractmethod
    def _get(self, key: str) -> AsyncGenerator[bytes, None]:
        """The whole blob; :class:`BlobNotFound` if there is none."""

    @abc.abstractmethod
    def _get_range(self, key: str, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """Bytes ``start`` to ``end`` (``end >= start``), clamped to the size."""

    @abc.abstractmethod
    async def _delete(self, keys: builtins.list[str]) -> None:
        """Delete the keys (at least one); absent ones are no error."""

    @abc.abstractmethod
    async def _sweep(self, older_than: datetime, dry_run: bool) -> int:
        """Remove what writes killed before ``older_than`` left behind."""

    @abc.abstractmethod
    def _list(
        self, names: tuple[str, ...], page_size: int
    ) -> AsyncIterator[builtins.list[BlobInfo]]:
        """The pages under the folder ``names``, each timed as ``list``."""
