"""Blobs as files under one root directory.

A key ``a/b/<name>`` lives at ``root/a/b/<shard>/<name>``, where ``<shard>`` is two
hex digits: the last two of the name's stem when they are lowercase hex (the random
end of a UUIDv7 key), else the first two of the name's SHA-256. No directory holds
more than about 1/256 of a folder's blobs. Files sit only in shard directories, so
a file's logical key is its path without its parent directory.

Writes go to ``root/.tmp/`` first and are renamed into place once written
whole; then the file and its directory are fsynced, and only then does
``put`` return. A write that a killed process left in ``.tmp`` is deleted by
:meth:`FileSystemBlobStore.sweep_incomplete` (the garbage collector); one
killed between the rename and the fsyncs leaves a file no row refers to,
which the orphan sweep deletes. A message that fits in one batch takes one
trip to a worker thread: open, write, rename, fsync, fsync.

Every call that may wait for the disk runs in a worker thread, but one: a read
opens its file and begins in the loop's thread, as far as the page cache answers
it (``preadv(RWF_NOWAIT)``, which fails rather than wait), so a message read
soon after it arrived costs no thread hop; one that is not cached is read in a
worker thread. The ``open`` itself may wait for a directory lookup the kernel
has not cached (once per shard directory, as a rule).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import hashlib
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

from lightmail.errors import TemporaryFailure
from lightmail.storage.blobs._timed import TimedBlobStore
from lightmail.storage.blobs._timing import BlobTiming
from lightmail.storage.blobs.base import READ_CHUNK, BlobInfo, BlobNotFound, PutResult, validate_key

_WRITE_BATCH = 1024 * 1024  # put() hands the worker thread this much at a time
_TMP_DIR = ".tmp"  # names starting with "." are never keys (validate_key)
_HEX = frozenset("0123456789abcdef")

_P = ParamSpec("_P")
_T = TypeVar("_T")


class FileSystemBlobStore(TimedBlobStore):
    """A :class:`~lightmail.storage.blobs.base.BlobStore` in a local directory."""

    __slots__ = ("_root", "_root_text", "description")
    backend = "filesystem"
    read_ahead = 0  # a read of a cached file does not even leave the event loop

    def __init__(self, root: Path) -> None:
        self._root = root.absolute()
        self._root_text = str(self._root)
        self.description = f"filesystem {self._root}"

    @property
    def root(self) -> Path:
        return self._root

    def path_of(self, key: str) -> Path:
        """The file that holds (or would hold) ``key``."""
        return Path(self._file_of(key))

    def _file_of(self, key: str) -> str:
        """:meth:`path_of` as text: what a read opens, without building a Path."""
        *folders, name = validate_key(key).split("/")
        return os.path.join(self._root_text, *folders, _shard(name), name)

    async def close(self) -> None:
        return None

    # -- internals ---------------------------------------------------------------

    async def _put(self, key: str, chunks: AsyncIterator[bytes]) -> PutResult:
        final = self.path_of(key)
        temp = self._root / _TMP_DIR / f"{uuid.uuid4().hex}.part"
        file: IO[bytes] | None = None  # opened with the first batch written
        digest = hashlib.sha256()
        size = 0
        try:
            batch: list[bytes] = []
            batch_size = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                data = chunk if isinstance(chunk, bytes) else bytes(chunk)
                batch.append(data)
                batch_size += len(data)
                if batch_size >= _WRITE_BATCH:
                    file = await self._io("put", key, _write, file, temp, digest, batch)
                    size += batch_size
                    batch, batch_size = [], 0
            # The last batch and the commit in one trip to a thread.
            await self._io("put", key, self._commit, file, temp, final, digest, batch)
            size += batch_size
        except BaseException:
            # Closing waits for a write still running in a worker thread (the
            # buffered file's lock), so the descriptor is never closed under it.
            if file is not None:
                file.close()
            # Also when the file was never created (the folder is missing or not
            # one): the failure that brought us here is what the caller must see.
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        return PutResult(size=size, sha256=digest.hexdigest())

    def _get(self, key: str) -> AsyncGenerator[bytes, None]:
        return self._read(key, 0, None)

    def _get_range(self, key: str, start: int, end: int) -> AsyncGenerator[bytes, None]:
        return self._read(key, start, end)

    async def _read(self, key: str, start: int, end: int | None) -> AsyncGenerator[bytes, None]:
        remaining = None if end is None else end - start
        want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
        path = self._file_of(key)
        try:
            # Buffered on purpose: close() then waits for a read still running in
            # a worker thread instead of closing the descriptor under it.
            opened: tuple[IO[bytes] | None, bytes] | None = _open_cached(path, start, want)
            if opened is None:
                opened = await asyncio.to_thread(_open_at, path, start, want)
            file, data = opened
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise self._failure("get", key, exc) from exc
        try:
            while data:
                if remaining is not None:
                    remaining -= len(data)
                yield data
                # A short read is the end of the file; no file, the end was read.
                if file is None or len(data) < want or remaining == 0:
                    return
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                data = await self._io("get", key, file.read, want)
        finally:
            if file is not None:
                file.close()

    async def _delete(self, keys: builtins.list[str]) -> None:
        await self._io("delete", None, _unlink_all, [self.path_of(key) for key in keys])

    async def _sweep(self, older_than: datetime, dry_run: bool) -> int:
        """Delete the ``.tmp/*.part`` files of puts a killed process left, last
        written before ``older_than``."""
        return await self._io(
            "sweep", None, _sweep_temp, self._root / _TMP_DIR, older_than.timestamp(), dry_run
        )

    async def _list(
        self, names: tuple[str, ...], page_size: int
    ) -> AsyncIterator[builtins.list[BlobInfo]]:
        walker = _walk(self._root.joinpath(*names), names)
        try:
            while True:
                with BlobTiming(self.backend, "list"):
                    page = await self._io("list", None, _take, walker, page_size)
                if page:
                    yield page
                if len(page) < page_size:
                    return
        finally:
            # Fails only if a cancelled page read is still running in its thread;
            # the scandir handles are then released when the walker is collected.
            with contextlib.suppress(ValueError):
                walker.close()

    @staticmethod
    def _commit(
        file: IO[bytes] | None,
        temp: Path,
        final: Path,
        digest: hashlib._Hash,
        batch: builtins.list[bytes],
    ) -> None:
        file = _write(file, temp, digest, batch)
        try:
            file.flush()
            try:
                os.replace(temp, final)
            except FileNotFoundError:  # the shard directory's first blob
                _ensure_dir(final.parent)
                os.replace(temp, final)
        except BaseException:
            file.close()  # put() removes the temporary file
            raise
        # Renamed before the fsync, so that on ext4 with its journal the one
        # journal commit the file's fsync makes also holds its new name, and the
        # directory's fsync finds nothing left to do: one commit per blob, not
        # two (0.55 against 0.95 ms for a 10 KiB blob, measured). Until both
        # fsyncs return no row names the key: after a crash here the file, maybe
        # incomplete, is an orphan for the sweep.
        try:
            os.fsync(file.fileno())
            file.close()
            _fsync_dir(final.parent)
        except BaseException:
            file.close()
            with contextlib.suppress(OSError):
                final.unlink()
            raise

    async def _io(
        self,
        operation: str,
        key: str | None,
        func: Callable[_P, _T],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run blocking ``func`` in a worker thread; an ``OSError`` is a TemporaryFailure."""
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except OSError as exc:
            raise self._failure(operation, key, exc) from exc

    def _failure(self, operation: str, key: str | None, exc: OSError) -> TemporaryFailure:
        what = f" {key!r}" if key is not None else ""
        reason = exc.strerror or type(exc).__name__
        return TemporaryFailure(f"blob {operation}{what} failed in {self._root}: {reason}")


def _shard(name: str) -> str:
    tail = name.partition(".")[0][-2:]
    if len(tail) == 2 and _HEX.issuperset(tail):
        return tail
    return hashlib.sha256(name.encode()).hexdigest()[:2]


def _open_cached(path: str, start: int, want: int) -> tuple[IO[bytes] | None, bytes] | None:
    """:func:`_open_at` without waiting for the disk: None unless the page cache
    holds all of the first read (or the system cannot tell). The file is None when
    that read took the rest of it: most blobs are read whole in this one step,
    into a buffer of their own size."""
    global _NOWAIT  # learnt once per process
    if not _NOWAIT:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        rest = max(0, os.fstat(fd).st_size - start)
        buffer = bytearray(min(want, rest))
        try:
            got = os.preadv(fd, [buffer], start, os.RWF_NOWAIT) if buffer else 0
        except BlockingIOError:  # not (all) in the page cache
            os.close(fd)
            return None
        except OSError as error:  # EOPNOTSUPP (a file system without it), EINVAL
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _NOWAIT = False
            os.close(fd)
            return None
        if got < len(buffer):
            os.close(fd)  # part of it cached: read it the waiting way
            return None
        if got == rest:
            os.close(fd)
            return None, bytes(buffer)
        file = os.fdopen(fd, "rb")
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    file.seek(start + got)
    return file, bytes(buffer)


# Whether preadv(RWF_NOWAIT) works here (Linux 4.14 and later, most file systems).
_NOWAIT = hasattr(os, "RWF_NOWAIT")


def _open_at(path: str, start: int, want: int) -> tuple[IO[bytes], bytes]:
    """Open ``path`` and read up to ``want`` octets from ``start``: a blob that fits
    takes one trip to a worker thread."""
    file = open(path, "rb")  # noqa: SIM115 (the caller closes it)
    try:
        if start:
            file.seek(start)
        return file, file.read(want)
    except BaseException:
        file.close()
        raise


def _write(
    file: IO[bytes] | None, temp: Path, digest: hashlib._Hash, batch: builtins.list[bytes]
) -> IO[bytes]:
    """Write ``batch`` to ``file``, first created as ``temp`` when None; the file."""
    if file is None:
        try:
            file = open(temp, "xb")  # noqa: SIM115 (put() closes it)
        except FileNotFoundError:  # the store's first put
            _ensure_dir(temp.parent)
            file = open(temp, "xb")  # noqa: SIM115
    for data in batch:
        digest.update(data)
        file.write(data)
    return file


def _ensure_dir(folder: Path, *, sync: bool = True) -> None:
    """Create ``folder`` and its missing parents, fsyncing each new entry's parent
    (unless not ``sync``)."""
    if folder.is_dir():
        return
    missing = [folder]
    while not missing[-1].parent.is_dir():
        missing.append(missing[-1].parent)
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        if sync:
            _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_all(paths: builtins.list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()


def _sweep_temp(folder: Path, before: float, dry_run: bool) -> int:
    """Unlink the ``*.part`` files in ``folder`` last modified before ``before``."""
    removed = 0
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return 0
    with entries:
        for entry in entries:
            if not entry.name.endswith(".part") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= before:
                    continue
                if not dry_run:
                    os.unlink(entry.path)
            except FileNotFoundError:  # its put finished or failed meanwhile
                continue
            removed += 1
    return removed


def _take(walker: Iterator[BlobInfo], count: int) -> builtins.list[BlobInfo]:
    page: builtins.list[BlobInfo] = []
    for info in walker:
        page.append(info)
        if len(page) == count:
            break
    return page


def _walk(base: Path, names: tuple[str, ...]) -> Generator[BlobInfo, None, None]:
    """Yield every blob below ``base``, whose logical folder is ``names``.

    Depth first with an explicit stack, so one directory handle is open at a time.
    A file counts only inside a shard directory below ``base``: the files directly
    in ``base`` are shards of its parent folder, outside the prefix.
    """
    stack: builtins.list[tuple[str, tuple[str, ...]]] = [(str(base), names)]
    while stack:
        folder, logical = stack.pop()
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, (*logical, entry.name)))
                elif len(logical) > len(names) and entry.is_file(follow_symlinks=False):
                    try:
                        stat = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # deleted while we walked
                        continue
                    yield BlobInfo(
                        key="/".join((*logical[:-1], entry.name)),
                        size=stat.st_size,
                        modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                    )
