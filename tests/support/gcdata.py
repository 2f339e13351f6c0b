"""Many soft-deleted messages, made fast, for the garbage collector's tests and benchmark.

One real message is delivered through :meth:`MailStore.deliver` to get a
template row (its parse columns are copied into every row made here), then
removed again. The blobs are real: distinct small messages written to the
blob store concurrently. Their ``object_keys`` rows and the ``messages`` rows
are bulk-inserted, the messages spread round-robin over the blobs, so several
rows share one blob as after COPY (with 4 rows a blob, rows ``i`` and
``i + blobs`` share one: they fall in different GC batches).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from lightmail.clock import utcnow
from lightmail.mailstore.rows import PARSE_CACHE_COLUMNS
from lightmail.mailstore.store import MailStore, Recipient
from lightmail.storage.blobs import BlobStore, PutResult, new_blob_key
from lightmail.storage.db import tables as t

# Columns of the template row copied into every message row made here.
_TEMPLATE_COLUMNS = ("internaldate", "flags", "keywords", *PARSE_CACHE_COLUMNS)


@dataclass(frozen=True, slots=True)
class GcData:
    template: Mapping[str, Any]  # the copied columns of a real delivery's row
    blobs: dict[str, bytes]  # key -> content, in the order the messages use them
    user_id: int
    mailbox_id: int


def blob_message(n: int) -> bytes:
    return (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: gc data {n}\r\n"
        f"Message-ID: <{n}.{uuid.uuid4().hex}@example.org>\r\n\r\nBody {n}.\r\n"
    ).encode()


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def create_deleted_messages(
    store: MailStore,
    user_id: int,
    address: str,
    count: int,
    *,
    blobs: int | None = None,
    deleted_at: datetime,
    put_concurrency: int = 64,
    chunk: int = 2000,
) -> GcData:
    """``count`` messages in the user's INBOX, soft-deleted at ``deleted_at`` (naive
    UTC), over ``blobs`` distinct blobs (default: one each)."""
    blobs = count if blobs is None else blobs
    if not 1 <= blobs <= max(count, 1):
        raise ValueError(f"blobs must be from 1 to count ({count}), got {blobs}")
    template = await _template(store, user_id, address)
    contents = {new_blob_key(): blob_message(n) for n in range(blobs)}
    puts = await _put_all(store.blobs, contents, put_concurrency)
    now = utcnow()
    object_keys = [
        {"key": key, "size": put.size, "sha256": put.sha256, "created_at": now}
        for key, put in puts.items()
    ]
    async with store.db.write() as conn:
        for rows in _chunks(object_keys, chunk):
            await conn.execute(insert(t.object_keys), rows)
    keys = list(contents)
    used = [keys[i % blobs] for i in range(count)]
    mailbox_id = await add_messages(
        store, template, user_id, used, contents, deleted_at=deleted_at, chunk=chunk
    )
    return GcData(template, contents, user_id, mailbox_id)


async def add_messages(
    store: MailStore,
    template: Mapping[str, Any],
    user_id: int,
    keys: Sequence[str],
    contents: Mapping[str, bytes],
    *,
    deleted_at: datetime | None = None,
    chunk: int = 2000,
) -> int:
    """One message in the user's INBOX for each of ``keys`` (blobs already stored,
    with their ``object_keys`` rows), live by default, as COPY makes them; returns
    the INBOX's id. UIDs are reserved by bumping ``uidnext`` in the same transaction."""
    mailbox_id = (await store.get_mailbox(user_id, "INBOX")).id
    mb = t.mailboxes.c
    async with store.db.write() as conn:
        await conn.execute(
            update(t.mailboxes)
            .where(mb.id == mailbox_id)
            .values(uidnext=mb.uidnext + len(keys), highestmodseq=mb.highestmodseq + 1)
        )
        box = (
            await conn.execute(select(mb.uidnext, mb.highestmodseq).where(mb.id == mailbox_id))
        ).one()
        first_uid = box.uidnext - len(keys)
        rows = [
            {
                **template,
                "mailbox_id": mailbox_id,
                "user_id": user_id,
                "uid": first_uid + index,
                "modseq": box.highestmodseq,
                "object_key": key,
                "size": len(contents[key]),
                "size_crlf": len(contents[key]),  # blob_message() uses CRLF only
                "deleted_at": deleted_at,
            }
            for index, key in enumerate(keys)
        ]
        for part in _chunks(rows, chunk):
            await conn.execute(insert(t.messages), part)
    return mailbox_id


async def _template(store: MailStore, user_id: int, address: str) -> dict[str, Any]:
    """Deliver one real message, keep its row's parse columns, remove it again."""
    (outcome,) = await store.deliver([Recipient(user_id, address)], _one_chunk(blob_message(-1)))
    assert outcome.result is not None, outcome.error
    m = t.messages.c
    async with store.db.write() as conn:
        row = (
            await conn.execute(
                select(m.id, m.object_key, *(m[name] for name in _TEMPLATE_COLUMNS)).where(
                    m.mailbox_id == outcome.result.mailbox_id, m.uid == outcome.result.uid
                )
            )
        ).one()
        await conn.execute(delete(t.messages).where(m.id == row.id))
        await conn.execute(delete(t.object_keys).where(t.object_keys.c.key == row.object_key))
    await store.blobs.delete_many([row.object_key])
    return {name: row._mapping[name] for name in _TEMPLATE_COLUMNS}


async def _put_all(
    blobs: BlobStore, contents: Mapping[str, bytes], concurrency: int
) -> dict[str, PutResult]:
    """Write every blob, ``concurrency`` puts in flight."""
    pending = iter(contents.items())
    done: dict[str, PutResult] = {}

    async def putter() -> None:
        for key, data in pending:  # the putters share one iterator
            done[key] = await blobs.put(key, _one_chunk(data))

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(contents))):
            group.create_task(putter())
    return {key: done[key] for key in contents}
