"""Copies of S3 blobs in a local folder, read instead of S3 (``[blobs] cache_folder``).

Each read from S3 waits for a request over the network (and is billed); most
mail is read soon after it arrived (a POP3 client's next poll, each IMAP
client's sync) and seldom later. :class:`CachedBlobStore` keeps a copy of each
blob of at most :data:`MAX_COPY` bytes that this node writes or reads, and
reads the copy while it lasts, as Dovecot's ``fscache`` does for its object
storage. Larger blobs are read from S3 each time: their transfer, not the
request, is what takes the time, and a copy is buffered in memory until it is
whole.

A copy is only ever a copy:

- S3 stays the only durable place. A put returns once S3 holds the blob, as
  without a cache. The copy is written after that, without an fsync, by a
  task that writes the copies made meanwhile in one trip to a thread: no put
  or read waits for it. A copy that cannot be written or read is logged and
  counted (``lightmail_blob_errors{backend="cache"}``), never an error of the
  put or the read: S3 answers instead.
- A blob is written once and never changed, so a copy is never stale. A
  deleted blob's copy is deleted with it on this node; another node's copy
  of it is never read again (no row names the key) and goes when it is the
  oldest.
- Not fsynced, a copy may be short after the machine crashed, so a node
  starts with an empty cache (:func:`empty_cache`, once per ``serve``).
- The folder keeps to ``[blobs] cache_size``: each process counts the bytes
  it adds, and after a sixteenth of the size it deletes the oldest copies
  (by when they were written) until they fill at most 15/16 of it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import shutil
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lightmail.errors import TemporaryFailure
from lightmail.metrics import BLOB_CACHE_EVICTED, BLOB_CACHE_READS, labelled
from lightmail.storage.blobs._timing import BlobTiming
from lightmail.storage.blobs.base import (
    LIST_PAGE_SIZE,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    PutResult,
    validate_key,
    validate_range,
)
from lightmail.storage.blobs.filesystem import _TMP_DIR, FileSystemBlobStore, _ensure_dir

log = logging.getLogger(__name__)

MAX_COPY = 1 << 20
"""The largest blob the cache keeps a copy of, in bytes."""

_LIVE = "copies"  # the folder's subfolder in use; the rest is left from earlier starts
_STALE = ".stale-"  # what empty_cache moved aside, deleted in the background
_EVICT_EVERY = 16  # a process evicts after adding 1/16 of cache_size ...
_KEEP = 15 / 16  # ... down to 15/16 of it
_GATHER = 0.02  # seconds a copy may wait for others to be written with it
_MAX_PENDING = 64 << 20  # bytes of copies waiting to be written; more are not kept
_LEFT_BEHIND = timedelta(hours=1)  # a copy half written this long ago was abandoned
_HIT = labelled(BLOB_CACHE_READS, "hit")
_MISS = labelled(BLOB_CACHE_READS, "miss")


class _Copies(FileSystemBlobStore):
    """The copies: read, listed and deleted as a folder store's files; written by
    :meth:`write`, many in one trip to a thread, without fsync."""

    __slots__ = ()
    backend = "cache"

    def write(self, copies: Sequence[tuple[str, Sequence[bytes]]]) -> None:
        """Write each copy whole under its key (blocking: run it in a thread). Each goes
        through ``.tmp/``, as a put's file does, so that no reader sees part of one;
        the first OSError ends the batch."""
        for key, chunks in copies:
            final = self.path_of(key)
            temp = self.root / _TMP_DIR / f"{uuid.uuid4().hex}.part"
            try:
                try:
                    file = open(temp, "xb")  # noqa: SIM115 (closed below)
                except FileNotFoundError:  # the first copy
                    _ensure_dir(temp.parent, sync=False)
                    file = open(temp, "xb")  # noqa: SIM115
                with file:
                    file.writelines(chunks)
                try:
                    os.replace(temp, final)
                except FileNotFoundError:  # the shard's first copy
                    _ensure_dir(final.parent, sync=False)
                    os.replace(temp, final)
            except BaseException:
                with contextlib.suppress(OSError):
                    temp.unlink()
                raise


class CachedBlobStore:
    """A :class:`~lightmail.storage.blobs.base.BlobStore`: ``remote``'s blobs, with
    copies of the small ones in ``folder`` (see the module's docstring)."""

    def __init__(self, remote: BlobStore, folder: Path, size: int) -> None:
        self._remote = remote
        self._copies = _Copies(folder / _LIVE)
        self._size = size
        self._added = 0  # bytes of copies written since the last eviction
        self._pending: dict[str, builtins.list[bytes]] = {}  # copies to write, by key
        self._pending_size = 0
        self._in_flight: asyncio.Task[None] | None = None  # the batch being written
        self._writer: asyncio.Task[None] | None = None  # writes what is pending, evicts
        self.read_ahead = remote.read_ahead  # a miss waits for S3
        self.description = (
            f"{remote.description}, copies in {folder.absolute()} (at most {size >> 20} MiB)"
        )

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> PutResult:
        copy = _Copy()
        put = await self._remote.put(key, copy.tee(chunks))
        self._keep(key, copy)
        return put

    def get(self, key: str) -> AsyncIterator[bytes]:
        validate_key(key)
        return self._read(key, self._copies.get(key), lambda: self._remote.get(key), _Copy())

    def get_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        validate_range(start)
        validate_key(key)
        return self._read(
            key,
            self._copies.get_range(key, start, end),
            lambda: self._remote.get_range(key, start, end),
            None,  # a part is not a copy
        )

    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._remote.delete_many(keys)
        for key in keys:  # not to be written after the delete
            self._pending_size -= sum(map(len, self._pending.pop(key, ())))
        if self._in_flight is not None:  # may be writing one
            await asyncio.wait([self._in_flight])
        try:
            await self._copies.delete_many(keys)
        except TemporaryFailure as error:
            log.warning("blob cache: copies not deleted (evicted later): %s", error)

    def list(
        self, prefix: str, *, page_size: int = LIST_PAGE_SIZE
    ) -> AsyncIterator[builtins.list[BlobInfo]]:
        return self._remote.list(prefix, page_size=page_size)

    async def sweep_incomplete(self, older_than: datetime, *, dry_run: bool = False) -> int:
        return await self._remote.sweep_incomplete(older_than, dry_run=dry_run)

    async def close(self) -> None:
        if self._writer is not None:  # the copies not yet written are not needed
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._remote.close()

    # -- internals ---------------------------------------------------------------

    async def _read(
        self,
        key: str,
        local: AsyncIterator[bytes],
        remote: Callable[[], AsyncIterator[bytes]],
        copy: _Copy | None,
    ) -> AsyncGenerator[bytes, None]:
        """The chunks of the copy's read ``local`` if there is a copy, else of
        ``remote()``, kept in ``copy`` for a copy to be written."""
        try:
            first = await self._opened(key, local)
            if first is not None:
                for chunk in first:
                    yield chunk
                async for chunk in local:
                    yield chunk
                return
        finally:
            await _close(local)
        chunks = remote()
        try:
            async for chunk in chunks:
                if copy is not None:
                    copy.add(chunk)
                yield chunk
        finally:
            await _close(chunks)
        if copy is not None:
            self._keep(key, copy)

    async def _opened(self, key: str, local: AsyncIterator[bytes]) -> builtins.list[bytes] | None:
        """The first chunk of a copy's read (``[]`` if it has none); None if there is no
        copy to read, or it failed (counted as an error of the cache backend)."""
        try:
            first = await anext(local, None)
        except BlobNotFound:
            _MISS.inc()
            return None
        except TemporaryFailure as error:
            log.warning("blob cache: reading %s from S3 instead: %s", key, error)
            _MISS.inc()
            return None
        _HIT.inc()
        return [] if first is None else [first]

    def _keep(self, key: str, copy: _Copy) -> None:
        """Have ``copy`` of ``key``'s blob written, if it was kept whole: later, by one
        task that writes what has come meanwhile in one trip to a thread, so that no
        put or read waits for it. Dropped if :data:`_MAX_PENDING` bytes wait already."""
        if (
            copy.chunks is None
            or key in self._pending
            or self._pending_size + copy.size > _MAX_PENDING
        ):
            return
        self._pending[key] = copy.chunks
        self._pending_size += copy.size
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="blob cache writes")

    async def _write(self) -> None:
        """Write the pending copies; evict after each sixteenth of the size added."""
        while self._pending:
            # Each trip to a thread costs more CPU than writing a small copy: let the
            # copies of a few more reads and puts come first.
            await asyncio.sleep(_GATHER)
            batch, size = list(self._pending.items()), self._pending_size
            self._pending, self._pending_size = {}, 0
            self._in_flight = asyncio.create_task(asyncio.to_thread(self._copies.write, batch))
            try:
                with BlobTiming(_Copies.backend, "put"):
                    await self._in_flight
            except OSError as error:
                log.warning("blob cache: copies not written: %s", error)
                continue
            except Exception:  # a task of its own: nobody else would hear of it
                log.exception("blob cache: copies not written")
                continue
            self._added += size
            if self._added >= self._size // _EVICT_EVERY:
                self._added = 0
                await self._evict()

    async def _evict(self) -> None:
        """Delete the oldest copies until they fill at most 15/16 of the cache's size,
        and what writes of killed processes left half done."""
        try:
            copies = [
                (info.modified, info.size, info.key)
                async for page in self._copies.list("")
                for info in page
            ]
            copies.sort()
            excess = sum(size for _, size, _ in copies) - int(self._size * _KEEP)
            doomed: builtins.list[str] = []
            for _, size, key in copies:
                if excess <= 0:
                    break
                doomed.append(key)
                excess -= size
            for start in range(0, len(doomed), LIST_PAGE_SIZE):
                await self._copies.delete_many(doomed[start : start + LIST_PAGE_SIZE])
            BLOB_CACHE_EVICTED.inc(len(doomed))
            await self._copies.sweep_incomplete(datetime.now(UTC) - _LEFT_BEHIND)
        except TemporaryFailure as error:
            log.warning("blob cache: eviction failed (tried again later): %s", error)
        except Exception:
            log.exception("blob cache: eviction failed (tried again later)")


class _Copy:
    """The chunks of one blob on their way to or from S3, kept for a copy while they
    come to at most :data:`MAX_COPY` bytes."""

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] | None = []  # None: too large to keep
        self.size = 0

    def add(self, chunk: bytes) -> None:
        if self.chunks is not None:
            self.size += len(chunk)
            if self.size > MAX_COPY:
                self.chunks = None
            else:
                self.chunks.append(bytes(chunk))  # the source may reuse its buffer

    async def tee(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.add(chunk)
            yield chunk


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """End a blob read that may not have reached its end (every store's reads are
    async generators)."""
    await chunks.aclose()  # type: ignore[attr-defined]


def empty_cache(folder: Path) -> None:
    """Start a node's cache empty: move the copies of its last run aside, then delete
    them (and any an earlier start left) in a thread of their own. A copy is not
    fsynced, so after a crash it may be short; the node's processes have not yet
    opened the cache."""
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.rename(folder / _LIVE, folder / f"{_STALE}{uuid.uuid4().hex}")
    stale = [path for path in folder.iterdir() if path.name.startswith(_STALE)]
    if stale:
        threading.Thread(
            target=_remove, args=(stale,), name="blob cache emptying", daemon=True
        ).start()


def _remove(folders: builtins.list[Path]) -> None:
    for path in folders:
        shutil.rmtree(path, ignore_errors=True)
