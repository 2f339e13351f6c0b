"""The BlobStore contract, run on the filesystem store and on S3 (SeaweedFS).

Every S3 test gets its own prefix in the session's bucket, so tests never see
each other's blobs.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import random
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lightmail.errors import TemporaryFailure
from lightmail.storage.blobs import (
    BlobNotFound,
    BlobStore,
    CachedBlobStore,
    FileSystemBlobStore,
    S3BlobStore,
    new_blob_key,
    open_blob_store,
)
from tests.support.s3server import S3Server

MiB = 1024 * 1024


@pytest.fixture(params=["filesystem", "s3", "s3-cached"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """Each backend; ``s3-cached``: S3 with copies in a local folder (1 MiB of them)."""
    if request.param == "filesystem":
        yield FileSystemBlobStore(tmp_path / "blobs")
        return
    s3: S3Server = request.getfixturevalue("s3_server")
    remote = s3.blob_store(f"t-{uuid.uuid4().hex[:12]}")
    yield remote if request.param == "s3" else CachedBlobStore(remote, tmp_path / "cache", MiB)


@pytest.fixture
async def store(blob_store: BlobStore) -> AsyncIterator[BlobStore]:
    try:
        yield blob_store
    finally:
        await blob_store.close()


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def list_keys(store: BlobStore, prefix: str) -> list[str]:
    return [info.key async for page in store.list(prefix) for info in page]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class SourceBrokeError(Exception):
    pass


async def test_put_then_get_round_trips_with_size_and_sha256(store: BlobStore) -> None:
    key = new_blob_key()
    data = b"From: a@example.com\r\nSubject: hi\r\n\r\nHello, world.\r\n"

    result = await store.put(key, chunked(data, 7))

    assert result.size == len(data)
    assert result.sha256 == sha256(data)
    assert await read_all(store.get(key)) == data


async def test_empty_blob_round_trips(store: BlobStore) -> None:
    key = new_blob_key()

    result = await store.put(key, chunked(b"", 1))

    assert (result.size, result.sha256) == (0, sha256(b""))
    assert await read_all(store.get(key)) == b""
    assert await read_all(store.get_range(key, 0, 10)) == b""


async def test_20_mb_blob_streamed_in_64_kb_chunks_survives(store: BlobStore) -> None:
    key = new_blob_key()
    data = random.randbytes(20 * MiB)

    result = await store.put(key, chunked(data, 64 * 1024))

    assert (result.size, result.sha256) == (len(data), sha256(data))
    digest = hashlib.sha256()
    size = largest = 0
    async for chunk in store.get(key):
        digest.update(chunk)
        size += len(chunk)
        largest = max(largest, len(chunk))
    assert (size, digest.hexdigest()) == (len(data), sha256(data))
    assert largest <= MiB, "get() must stream bounded chunks"


async def test_ranges_are_clamped_to_the_size(store: BlobStore) -> None:
    key = new_blob_key()
    size = 600_000  # more than two 256 KB read chunks
    data = random.randbytes(size)
    await store.put(key, chunked(data, 50_000))

    cases = [
        (0, 10),  # start
        (262_100, 262_200),  # across a read-chunk boundary
        (100_000, 550_000),  # middle, several chunks
        (size - 10, size),  # end
        (size - 10, size + 1000),  # past the end
        (size, size + 100),  # starts at the end
        (size + 5000, size + 6000),  # starts past the end
        (10, 10),  # empty
        (10, 5),  # reversed
    ]
    for start, end in cases:
        got = await read_all(store.get_range(key, start, end))
        assert got == data[start:end], f"range {start}-{end}"


async def test_a_negative_range_start_is_our_bug_and_raises_at_once(store: BlobStore) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        store.get_range(new_blob_key(), -1, 10)


async def test_missing_key_raises_blob_not_found(store: BlobStore) -> None:
    key = new_blob_key()

    for chunks in (store.get(key), store.get_range(key, 0, 10), store.get_range(key, 5, 5)):
        with pytest.raises(BlobNotFound) as caught:
            await read_all(chunks)
        assert caught.value.key == key


async def test_delete_many_deletes_present_keys_and_ignores_missing_ones(
    store: BlobStore,
) -> None:
    kept, first, second = new_blob_key(), new_blob_key(), new_blob_key()
    for key in (kept, first, second):
        await store.put(key, chunked(b"x" * 100, 10))

    await store.delete_many([first, new_blob_key(), second, "eml/never-was.eml"])
    await store.delete_many([])

    for key in (first, second):
        with pytest.raises(BlobNotFound):
            await read_all(store.get(key))
    assert await read_all(store.get(kept)) == b"x" * 100
    assert await list_keys(store, "eml") == [kept]


async def test_list_pages_through_a_folder(store: BlobStore) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    wanted = {new_blob_key(): n + 1 for n in range(7)}
    for key, size in wanted.items():
        await store.put(key, chunked(b"y" * size, 3))
    for other in ("other/a.eml", "emlx/b.eml"):  # outside the folder "eml"
        await store.put(other, chunked(b"z", 1))

    pages = [page async for page in store.list("eml", page_size=3)]

    assert [len(page) for page in pages] == [3, 3, 1]
    infos = [info for page in pages for info in page]
    assert {info.key: info.size for info in infos} == wanted
    for info in infos:
        assert info.modified.utcoffset() == timedelta(0)
        assert before <= info.modified <= datetime.now(UTC) + timedelta(minutes=1)
    slash = [info.key async for page in store.list("eml/", page_size=2) for info in page]
    assert sorted(slash) == sorted(wanted)
    everything = await list_keys(store, "")
    assert sorted(everything) == sorted([*wanted, "other/a.eml", "emlx/b.eml"])
    assert [page async for page in store.list("nothing-here")] == []


@pytest.mark.parametrize(
    ("good_chunks", "chunk_size"),
    [(0, 1024), (3, 64 * 1024), (100, 64 * 1024)],  # nothing, small, past one S3 part
    ids=["at-once", "small", "multipart"],
)
async def test_a_failing_source_leaves_no_blob(
    store: BlobStore, good_chunks: int, chunk_size: int
) -> None:
    key = new_blob_key()
    broken = SourceBrokeError("the client went away")

    async def source() -> AsyncIterator[bytes]:
        for _ in range(good_chunks):
            yield b"m" * chunk_size
        raise broken

    with pytest.raises(SourceBrokeError) as caught:
        await store.put(key, source())

    assert caught.value is broken
    with pytest.raises(BlobNotFound):
        await read_all(store.get(key))
    assert [page async for page in store.list("")] == []
    if isinstance(store, FileSystemBlobStore):  # no temporary file (nor its folder) left
        assert list((store.root / ".tmp").glob("*")) == []


async def test_sweep_incomplete_spares_finished_blobs_and_writes_younger_than_the_cutoff(
    store: BlobStore,
) -> None:
    finished = new_blob_key()
    await store.put(finished, chunked(b"x" * 100, 10))
    gate = asyncio.Event()

    async def paused() -> AsyncIterator[bytes]:
        yield b"y" * (6 * MiB)  # past one S3 part: a multipart upload is under way
        await gate.wait()
        yield b"z"

    writing = new_blob_key()
    put = asyncio.create_task(store.put(writing, paused()))
    later = datetime.now(UTC) + timedelta(hours=1)
    for _ in range(100):
        if await store.sweep_incomplete(later, dry_run=True) == 1:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the write in progress was never seen as incomplete")
    assert await store.sweep_incomplete(datetime.now(UTC) - timedelta(hours=1)) == 0
    gate.set()
    assert (await put).size == 6 * MiB + 1
    assert await store.sweep_incomplete(later) == 0  # finished writes leave nothing
    assert sorted(await list_keys(store, "eml")) == sorted([finished, writing])


@pytest.mark.parametrize(
    "key", ["", "/abs.eml", "../up.eml", "eml/../up.eml", "eml//x.eml", "eml/.x", "a\\b", "a\nb"]
)
async def test_bad_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.get(key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.put(key, chunked(b"x", 1))
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.delete_many([key])


async def test_unreachable_s3_is_a_temporary_failure() -> None:
    port = closed_port()
    store = S3BlobStore(
        "mail",
        "blobs",
        endpoint=f"http://127.0.0.1:{port}",
        region="us-east-1",
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI-very-secret",
    )
    key = new_blob_key()
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: store.put(key, chunked(b"x" * 100, 10)),
        lambda: read_all(store.get(key)),
        lambda: read_all(store.get_range(key, 0, 10)),
        lambda: store.delete_many([key]),
        lambda: list_keys(store, "eml"),
        lambda: store.sweep_incomplete(datetime.now(UTC)),
    ]
    for attempt in attempts:
        with pytest.raises(TemporaryFailure) as caught:
            await attempt()
        message = str(caught.value)
        assert f"127.0.0.1:{port}" in message
        assert "mail/blobs" in message
        assert "very-secret" not in message
        assert "AKIDEXAMPLE" not in message
    assert store.description == f"s3 http://127.0.0.1:{port} mail/blobs"


async def test_filesystem_shards_keys_and_leaves_no_temp_file(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path)
    key = new_blob_key()
    name = key.removeprefix("eml/")

    await store.put(key, chunked(b"body", 2))

    assert store.path_of(key) == tmp_path / "eml" / name[-6:-4] / name
    assert store.path_of(key).read_bytes() == b"body"
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert store.description == f"filesystem {tmp_path}"


async def test_filesystem_a_failed_fsync_after_the_rename_leaves_no_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is renamed into place before it is fsynced: a disk that fails the
    fsync must not leave it there, where a later read would take it for whole."""
    store = FileSystemBlobStore(tmp_path)
    key = new_blob_key()
    (tmp_path / ".tmp").mkdir()
    store.path_of(key).parent.mkdir(parents=True)  # so the rename is reached

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("lightmail.storage.blobs.filesystem.os.fsync", failing_fsync)
    with pytest.raises(TemporaryFailure, match="Input/output error"):
        await store.put(key, chunked(b"body", 2))

    assert not store.path_of(key).exists()
    assert list((tmp_path / ".tmp").iterdir()) == []


async def test_filesystem_a_failed_rename_closes_and_removes_its_file(tmp_path: Path) -> None:
    """A directory where the blob's file goes: the put fails, and its temporary file
    is closed (an open one is an unraisable ResourceWarning here) and removed."""
    store = FileSystemBlobStore(tmp_path)
    key = new_blob_key()
    store.path_of(key).mkdir(parents=True)
    with pytest.raises(TemporaryFailure, match="Is a directory"):
        await store.put(key, chunked(b"body", 2))
    gc.collect()
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_open_blob_store_file_url_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = {"endpoint": "", "region": "", "access_key": "", "secret_key": ""}

    relative = open_blob_store("file:var/blobs", **settings)
    absolute = open_blob_store(f"file://{tmp_path}/abs", **settings)

    assert isinstance(relative, FileSystemBlobStore)
    assert relative.root == tmp_path / "var" / "blobs"
    assert isinstance(absolute, FileSystemBlobStore)
    assert absolute.root == tmp_path / "abs"


def test_open_blob_store_s3_url() -> None:
    settings = {"region": "eu-west-1", "access_key": "AK", "secret_key": "SK"}

    with_prefix = open_blob_store(
        "s3://mail-bucket/lm/blobs/", endpoint="http://h:9000", **settings
    )
    bare = open_blob_store("s3://mail-bucket", endpoint="http://h:9000", **settings)

    assert isinstance(with_prefix, S3BlobStore)
    assert with_prefix.description == "s3 http://h:9000 mail-bucket/lm/blobs"
    assert bare.description == "s3 http://h:9000 mail-bucket"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "blobs",
        "ftp://host/x",
        "file:",
        "file://remote/x",
        "s3://",
        "s3://Bad_Bucket/x",
        "s3://ab",
        "s3://bucket/../x",
        "s3://bucket//x",
    ],
)
def test_open_blob_store_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="blob store URL"):
        open_blob_store(url, endpoint="", region="", access_key="", secret_key="")


def test_open_blob_store_wants_both_s3_keys_or_neither() -> None:
    with pytest.raises(ValueError, match="set together"):
        open_blob_store("s3://bucket", endpoint="", region="", access_key="AK", secret_key="")
