"""Blob store and database metrics move as the stores work, on both backends."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import exc, text

from lightmail.errors import TemporaryFailure
from lightmail.storage.blobs import (
    BlobNotFound,
    BlobStore,
    FileSystemBlobStore,
    S3BlobStore,
    new_blob_key,
)
from lightmail.storage.db.engine import Database
from tests.conftest import Backend
from tests.support.metrics import Changes

BLOB_SECONDS = "lightmail_blob_seconds_count"
BLOB_SECONDS_SUM = "lightmail_blob_seconds_sum"
BLOB_ERRORS = "lightmail_blob_errors_total"
DB_SECONDS = "lightmail_db_transaction_seconds_count"
DB_FAILURES = "lightmail_db_transaction_failures_total"
OPERATIONS = ("put", "get", "get_range", "delete", "list")


class SourceBrokeError(Exception):
    pass


def backend_label(blobs: BlobStore) -> str:
    return "filesystem" if isinstance(blobs, FileSystemBlobStore) else "s3"


async def chunks(*parts: bytes, pause: float = 0) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(pause)
        yield part


async def broken_source() -> AsyncIterator[bytes]:
    yield b"From: a@example.org\r\n"
    raise SourceBrokeError


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def select_one(db: Database, *, then_raise: Exception | None = None) -> None:
    async with db.write() as conn:
        await conn.execute(text("SELECT 1"))
        if then_raise is not None:
            raise then_raise


async def read_missing_table(db: Database) -> None:
    async with db.read() as conn:
        await conn.execute(text("SELECT * FROM lightmail_no_such_table"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_every_blob_operation_is_timed_once(backend: Backend) -> None:
    blobs, label = backend.blobs, backend_label(backend.blobs)
    key = new_blob_key()
    changes = Changes()

    await blobs.put(key, chunks(b"Subject: hi\r\n", b"\r\nbody\r\n"))
    assert await read_all(blobs.get(key)) == b"Subject: hi\r\n\r\nbody\r\n"
    assert await read_all(blobs.get_range(key, 0, 7)) == b"Subject"
    assert key in [info.key async for page in blobs.list("eml") for info in page]
    await blobs.delete_many([key])

    for operation in ("put", "get", "get_range", "delete"):
        assert changes(BLOB_SECONDS, backend=label, operation=operation) == 1, operation
    assert changes(BLOB_SECONDS, backend=label, operation="list") >= 1
    for operation in OPERATIONS:
        assert changes(BLOB_ERRORS, backend=label, operation=operation) == 0, operation


async def test_a_missing_blob_is_timed_but_not_an_error(backend: Backend) -> None:
    label = backend_label(backend.blobs)
    changes = Changes()

    with pytest.raises(BlobNotFound):
        await read_all(backend.blobs.get(new_blob_key()))

    assert changes(BLOB_SECONDS, backend=label, operation="get") == 1
    assert changes(BLOB_ERRORS, backend=label, operation="get") == 0


async def test_a_put_whose_source_fails_is_neither_timed_nor_a_store_error(
    backend: Backend,
) -> None:
    label = backend_label(backend.blobs)
    changes = Changes()

    with pytest.raises(SourceBrokeError):
        await backend.blobs.put(new_blob_key(), broken_source())

    assert changes(BLOB_SECONDS, backend=label, operation="put") == 0
    assert changes(BLOB_ERRORS, backend=label, operation="put") == 0


async def test_put_time_leaves_out_waiting_for_the_client(backend: Backend) -> None:
    """A client that sends slowly does not make the store look slow."""
    label = backend_label(backend.blobs)
    changes = Changes()

    started = time.perf_counter()
    await backend.blobs.put(new_blob_key(), chunks(b"a" * 100, b"b" * 100, pause=0.5))
    wall = time.perf_counter() - started

    assert changes(BLOB_SECONDS, backend=label, operation="put") == 1
    assert changes(BLOB_SECONDS_SUM, backend=label, operation="put") <= wall - 1.0


async def test_get_time_is_time_to_first_byte(backend: Backend) -> None:
    """A reader that reads slowly does not make the store look slow."""
    blobs, label = backend.blobs, backend_label(backend.blobs)
    key = new_blob_key()
    await blobs.put(key, chunks(b"x" * (1024 * 1024)))
    changes = Changes()

    started = time.perf_counter()
    read = 0
    async for chunk in blobs.get(key):
        read += len(chunk)
        await asyncio.sleep(0.5 if read == len(chunk) else 0)  # after the first chunk only
    wall = time.perf_counter() - started

    assert read == 1024 * 1024
    assert changes(BLOB_SECONDS, backend=label, operation="get") == 1
    assert changes(BLOB_SECONDS_SUM, backend=label, operation="get") <= wall - 0.5


async def test_filesystem_failures_are_counted(tmp_path: Path) -> None:
    root = tmp_path / "not-a-folder"
    root.write_bytes(b"")
    store = FileSystemBlobStore(root)
    changes = Changes()

    with pytest.raises(TemporaryFailure):
        await store.put(new_blob_key(), chunks(b"body"))

    assert changes(BLOB_ERRORS, backend="filesystem", operation="put") == 1
    assert changes(BLOB_SECONDS, backend="filesystem", operation="put") == 1


async def test_s3_failures_are_counted() -> None:
    store = S3BlobStore(
        "mail",
        endpoint=f"http://127.0.0.1:{closed_port()}",
        region="us-east-1",
        access_key="AKIDEXAMPLE",
        secret_key="secret-key-example",
    )
    changes = Changes()

    with pytest.raises(TemporaryFailure):
        await store.delete_many([new_blob_key()])
    with pytest.raises(TemporaryFailure):
        await read_all(store.get(new_blob_key()))

    assert changes(BLOB_ERRORS, backend="s3", operation="delete") == 1
    assert changes(BLOB_ERRORS, backend="s3", operation="get") == 1


async def test_transactions_are_timed_by_kind(backend: Backend) -> None:
    changes = Changes()

    async with backend.db.read() as conn:
        await conn.execute(text("SELECT 1"))
    async with backend.db.write() as conn:
        await conn.execute(text("SELECT 1"))
    with pytest.raises(ValueError, match="changed my mind"):
        await select_one(backend.db, then_raise=ValueError("changed my mind"))

    assert changes(DB_SECONDS, kind="read") == 1
    assert changes(DB_SECONDS, kind="write") == 2
    for kind in ("read", "write"):  # a rollback the application asked for is no failure
        for reason in ("unavailable", "error"):
            assert changes(DB_FAILURES, kind=kind, reason=reason) == 0


async def test_a_database_error_is_a_failed_transaction(backend: Backend) -> None:
    changes = Changes()

    # SQLite calls a missing table an OperationalError (so: unavailable),
    # MariaDB a ProgrammingError (error); either is one failed read.
    with pytest.raises((TemporaryFailure, exc.ProgrammingError)):
        await read_missing_table(backend.db)

    failed = changes(DB_FAILURES, kind="read", reason="unavailable") + changes(
        DB_FAILURES, kind="read", reason="error"
    )
    assert failed == 1
    assert changes(DB_SECONDS, kind="read") == 1


async def test_an_unreachable_database_is_counted_as_unavailable(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/missing-folder/lightmail.db")
    changes = Changes()
    try:
        with pytest.raises(TemporaryFailure):
            await select_one(db)
    finally:
        await db.close()

    assert changes(DB_FAILURES, kind="write", reason="unavailable") == 1
