"""Copies of S3 blobs in a local folder (``CachedBlobStore``), against SeaweedFS.

The BlobStore contract itself runs on the cached store in test_blobstore.py;
these tests show where a read is answered from. A blob deleted from S3 behind
the cache's back can only come from its copy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lightmail.storage.blobs import (
    BlobNotFound,
    CachedBlobStore,
    S3BlobStore,
    empty_cache,
    new_blob_key,
)
from lightmail.storage.blobs.cache import MAX_COPY
from tests.contract.test_blobstore import chunked, read_all
from tests.support.metrics import Changes
from tests.support.s3server import S3Server

KiB = 1024


@pytest.fixture
async def remote(s3_server: S3Server) -> AsyncIterator[S3BlobStore]:
    store = s3_server.blob_store(f"c-{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        await store.close()


def cached(remote: S3BlobStore, folder: Path, size: int = 64 * MAX_COPY) -> CachedBlobStore:
    """The cache over ``remote``; closing it would close ``remote``, which the fixture does."""
    return CachedBlobStore(remote, folder, size)


def copies(folder: Path) -> dict[str, int]:
    """The copies' file names under ``folder`` and their sizes."""
    return {path.name: path.stat().st_size for path in folder.rglob("*.eml") if path.is_file()}


async def written(folder: Path, count: int) -> dict[str, int]:
    """The copies under ``folder``, once there are ``count`` of them (they are
    written in the background)."""
    for _ in range(500):
        if len(found := copies(folder)) == count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} copies expected, found {copies(folder)}")


def entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


async def test_a_put_keeps_a_copy_that_is_read_when_s3_no_longer_has_the_blob(
    remote: S3BlobStore, tmp_path: Path
) -> None:
    cache = cached(remote, tmp_path)
    key, data = new_blob_key(), os.urandom(300 * KiB)
    changes = Changes()
    put = await cache.put(key, chunked(data, 64 * KiB))
    assert put.size == len(data)
    assert await written(tmp_path, 1) == {key.rpartition("/")[2]: len(data)}
    await remote.delete_many([key])
    assert await read_all(cache.get(key)) == data
    assert await read_all(cache.get_range(key, 1000, 2000)) == data[1000:2000]
    assert changes("lightmail_blob_cache_reads_total", result="hit") == 2
    assert changes("lightmail_blob_cache_reads_total", result="miss") == 0


async def test_a_miss_reads_s3_and_keeps_a_copy_but_a_part_read_does_not(
    remote: S3BlobStore, tmp_path: Path
) -> None:
    cache = cached(remote, tmp_path)
    key, data = new_blob_key(), os.urandom(10 * KiB)
    await remote.put(key, chunked(data, 4 * KiB))  # written by another node
    changes = Changes()
    assert await read_all(cache.get_range(key, 10, 20)) == data[10:20]
    await asyncio.sleep(0.1)  # time for a copy to be written, if one were kept
    assert copies(tmp_path) == {}
    assert await read_all(cache.get(key)) == data
    await written(tmp_path, 1)
    await remote.delete_many([key])
    assert await read_all(cache.get(key)) == data
    assert changes("lightmail_blob_cache_reads_total", result="miss") == 2
    assert changes("lightmail_blob_cache_reads_total", result="hit") == 1


async def test_a_read_that_stops_early_keeps_no_copy(remote: S3BlobStore, tmp_path: Path) -> None:
    cache = cached(remote, tmp_path)
    key, data = new_blob_key(), os.urandom(600 * KiB)
    await remote.put(key, chunked(data, 64 * KiB))
    chunks = cache.get(key)
    assert await anext(chunks)
    await chunks.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)  # time for a copy to be written, if one were kept
    assert copies(tmp_path) == {}


async def test_a_blob_larger_than_a_copy_may_be_is_read_from_s3_each_time(
    remote: S3BlobStore, tmp_path: Path
) -> None:
    cache = cached(remote, tmp_path)
    small, large = new_blob_key(), new_blob_key()
    await cache.put(small, chunked(b"x" * MAX_COPY, 256 * KiB))
    await cache.put(large, chunked(b"y" * (MAX_COPY + 1), 256 * KiB))
    assert await read_all(cache.get(large)) == b"y" * (MAX_COPY + 1)
    assert await written(tmp_path, 1) == {small.rpartition("/")[2]: MAX_COPY}
    await asyncio.sleep(0.1)  # no other copy comes
    assert len(copies(tmp_path)) == 1
    await remote.delete_many([small, large])
    assert await read_all(cache.get(small)) == b"x" * MAX_COPY
    with pytest.raises(BlobNotFound):
        await read_all(cache.get(large))


async def test_a_delete_deletes_the_copy_written_or_not(
    remote: S3BlobStore, tmp_path: Path
) -> None:
    cache = cached(remote, tmp_path)
    key = new_blob_key()
    await cache.put(key, chunked(b"hello", 5))
    await written(tmp_path, 1)
    await cache.delete_many([key])
    assert copies(tmp_path) == {}
    with pytest.raises(BlobNotFound):
        await read_all(cache.get(key))
    keys = [new_blob_key() for _ in range(20)]
    for key in keys:  # deleted while their copies are pending or being written
        await cache.put(key, chunked(b"hello", 5))
        await cache.delete_many([key])
    await asyncio.sleep(0.1)
    assert copies(tmp_path) == {}


async def test_a_folder_that_cannot_hold_copies_leaves_puts_and_reads_to_s3(
    remote: S3BlobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "copies").write_bytes(b"a file where the copies' folder goes")
    cache = cached(remote, tmp_path)
    key = new_blob_key()
    changes = Changes()
    with caplog.at_level(logging.WARNING, "lightmail.storage.blobs.cache"):
        await cache.put(key, chunked(b"hello", 5))
        assert await read_all(cache.get(key)) == b"hello"
        for _ in range(500):
            if "blob cache: copies not written" in caplog.text:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the read's copy may come in a batch of its own
    failures = caplog.text.count("blob cache: copies not written")  # one a batch
    assert failures in (1, 2), caplog.text
    assert changes("lightmail_blob_cache_reads_total", result="miss") == 1
    assert changes("lightmail_blob_errors_total", backend="cache", operation="put") == failures


async def test_a_copy_that_cannot_be_read_is_a_miss_answered_by_s3(
    remote: S3BlobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = cached(remote, tmp_path)
    key = new_blob_key()
    await cache.put(key, chunked(b"hello", 5))
    await written(tmp_path, 1)
    (copy,) = tmp_path.glob("copies/eml/*/*.eml")  # noqa: ASYNC240 (a folder of one file)
    copy.unlink()
    copy.mkdir()  # opening it fails with an error other than "not found"
    changes = Changes()
    with caplog.at_level(logging.WARNING, "lightmail.storage.blobs.cache"):
        assert await read_all(cache.get(key)) == b"hello"
    assert f"blob cache: reading {key} from S3 instead" in caplog.text
    assert changes("lightmail_blob_cache_reads_total", result="miss") == 1
    assert changes("lightmail_blob_errors_total", backend="cache", operation="get") == 1


async def test_the_oldest_copies_go_once_the_copies_pass_the_cache_size(
    remote: S3BlobStore, tmp_path: Path
) -> None:
    """64 KiB of cache, 8 KiB blobs: an eviction starts after each 4 KiB added, and
    leaves at most 60 KiB (15/16) of the oldest copies' bytes gone."""
    cache = cached(remote, tmp_path, size=64 * KiB)
    keys = [new_blob_key() for _ in range(20)]
    changes = Changes()
    for key in keys:
        await cache.put(key, chunked(os.urandom(8 * KiB), 8 * KiB))
        await asyncio.sleep(0.01)  # distinct write times
    names = [key.rpartition("/")[2] for key in keys]
    for _ in range(500):  # the last copy written, and the eviction after it done
        await asyncio.sleep(0.01)
        found = copies(tmp_path)
        if names[-1] in found and sum(found.values()) <= 60 * KiB:
            break
    kept = copies(tmp_path)
    assert sum(kept.values()) <= 60 * KiB, kept
    assert names[-1] in kept
    assert names[0] not in kept
    assert sorted(kept) == sorted(names[-len(kept) :])  # the newest, in order
    assert changes("lightmail_blob_cache_evicted_total") == len(keys) - len(kept)


async def test_a_node_starts_with_no_copies(remote: S3BlobStore, tmp_path: Path) -> None:
    cache = cached(remote, tmp_path)
    key = new_blob_key()
    await cache.put(key, chunked(b"hello", 5))
    await written(tmp_path, 1)
    (tmp_path / ".stale-left-by-a-start-that-was-killed").mkdir()
    empty_cache(tmp_path)
    assert not (tmp_path / "copies").exists()  # moved aside at once, deleted in a thread
    for _ in range(200):
        if not entries(tmp_path):
            break
        await asyncio.sleep(0.01)
    assert entries(tmp_path) == []
    await remote.delete_many([key])
    with pytest.raises(BlobNotFound):
        await read_all(cache.get(key))
    empty_cache(tmp_path / "new")  # a folder that is not there yet is made
    assert (tmp_path / "new").is_dir()
