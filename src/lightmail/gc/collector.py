"""The garbage collector: purges soft-deleted mail past retention, sweeps orphan blobs.

EXPUNGE, POP3's DELE and the API only set ``messages.deleted_at``. A purge
batch then goes in three steps, each safe to interrupt:

1. **Claim** (one transaction): pick up to ``batch_size`` messages deleted
   before ``now - retention`` that no other worker holds, and set their
   ``purge_claimed_until``. From this commit on a claimed message can no
   longer be restored, so it is doomed even if this worker dies now. Rows are
   picked with ``FOR UPDATE SKIP LOCKED`` (MySQL/MariaDB), so workers on
   several nodes take different batches; a claim that runs out (a worker that
   crashed) is taken over by the next run.
2. **Delete blobs**: of the blobs the batch uses, those no unclaimed message
   and no quarantine entry refers to. Nothing can start referring to such a
   blob again (a copy needs a live message that uses it), so this never takes
   a live message's data. A blob already gone is not an error.
3. **Delete rows** (one transaction): the batch's ``messages`` rows, then the
   ``object_keys`` rows no message refers to any more (the foreign key wants
   the messages first). The ``object_keys`` rows are locked first, so two
   workers finishing batches that share a blob cannot both leave its row.

Calendar objects replaced or deleted (soft-deleted ``calendar_objects`` rows)
are purged after the messages in the same three steps
(:mod:`lightmail.calendars.purge`).

A crash between steps leaves claimed rows whose blobs may be gone: they are
never visible again and the next run completes them. The orphan sweep then
deletes blobs that have no ``object_keys`` row at all (a crash between a blob
write and its commit), once they are older than ``orphan_grace``, and the
remains of blob writes that never finished (a process killed during a put
leaves a temporary file or an incomplete S3 multipart upload) once they are
as old. Those two sweeps list the whole blob store, so of the nodes of a
cluster one does them per round: the one holding the ``sweep`` lease
(:mod:`lightmail.gc.lease`), renewed page by page.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from lightmail.calendars.purge import CalendarPurge
from lightmail.clock import utcnow
from lightmail.config import GcSettings
from lightmail.errors import TransactionConflict
from lightmail.gc.lease import SWEEP, GcLease
from lightmail.mailstore.purge import Claim, GcReport, Purge
from lightmail.metrics import (
    GC_BATCH_SECONDS,
    GC_BLOBS_DELETED,
    GC_BYTES_FREED,
    GC_CALENDAR_OBJECTS_PURGED,
    GC_ERRORS,
    GC_MESSAGES_PURGED,
    GC_PENDING,
)
from lightmail.storage.blobs import BLOB_PREFIXES, BlobInfo, BlobStore, blob_key_time
from lightmail.storage.db.engine import Database

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=5)
"""How long a claimed batch is left to its worker before another may take it over."""

_DELETE_CHUNK = 1000  # keys per blob store delete request (S3's DeleteObjects limit)
_LIST_PAGE = 1000  # blobs per page of the orphan sweep's listing
_CONFLICT_RETRIES = 5  # attempts at a transaction the database rolled back on a conflict

_MIN_LEASE = 60.0  # seconds the sweep lease lasts at least, for a node with a short interval

_T = TypeVar("_T")


def _chunks(values: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


class _Purger(Protocol):
    """The SQL of one kind of soft-deleted row: messages or calendar objects."""

    async def claim(
        self, now: datetime, retention: timedelta, limit: int, lease: timedelta
    ) -> Claim: ...

    async def unused_keys(self, keys: Sequence[str]) -> dict[str, int]: ...

    async def delete_rows(self, ids: Sequence[int], keys: Sequence[str]) -> int: ...


@dataclass(frozen=True, slots=True)
class GcStatus:
    last_run: GcReport | None  # the latest run of any node
    deleted_messages: int  # soft-deleted and not yet purged
    deleted_bytes: int
    due_messages: int  # of those, past retention


@dataclass(slots=True)
class _Totals:
    messages: int = 0
    calendar_objects: int = 0
    blobs: int = 0
    bytes: int = 0
    orphans: int = 0
    incomplete: int = 0


class GarbageCollector:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: GcSettings,
        *,
        node: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock  # naive UTC; tests move it forward
        self.purge = Purge(db)
        # One node of the cluster sweeps per round, renewing as it goes (lightmail.gc.lease).
        self.sweep_lease = GcLease(
            db, SWEEP, self.node, timedelta(seconds=max(settings.interval, _MIN_LEASE)), clock
        )
        self.calendar_purge = CalendarPurge(db)

    @property
    def retention(self) -> timedelta:
        return timedelta(seconds=self.settings.retention)

    async def run(self, *, dry_run: bool = False) -> GcReport:
        """One full run: purge every due message, then sweep orphan blobs.

        A real run is recorded in ``gc_runs``, also when it stops on an error,
        which is then raised (the worker logs it and tries again later).
        """
        started = self.clock()
        totals = _Totals()
        try:
            if dry_run:
                await self._plan_purge(totals)
            else:
                await self._purge(totals)
            if dry_run or await self.sweep_lease.claim():
                await self._sweep_orphans(totals, dry_run=dry_run)
                await self._sweep_incomplete(totals, dry_run=dry_run)
            else:
                log.info("gc: another node holds the sweep lease; it sweeps for orphans")
        except Exception as error:
            report = self._report(started, totals, dry_run, error=f"{error}")
            if not dry_run:
                await self._record(report, quiet=True)
            raise
        report = self._report(started, totals, dry_run)
        if not dry_run:
            await self._record(report)
            GC_PENDING.set(await self._due_count())
        return report

    async def status(self) -> GcStatus:
        totals = await self.purge.deleted_totals(self.clock() - self.retention)
        last_run = await self.purge.last_run()
        return GcStatus(last_run, totals.messages, totals.bytes, totals.due)

    # -- purge ---------------------------------------------------------------

    async def _purge(self, totals: _Totals) -> None:
        """Purge due messages, then due calendar objects, batch by batch."""
        for purger, what in ((self.purge, "messages"), (self.calendar_purge, "calendar objects")):
            while True:
                began = time.monotonic()
                try:
                    batch = await self._purge_batch(purger)
                except Exception:
                    GC_ERRORS.labels("purge").inc()
                    raise
                if batch is None:
                    break
                elapsed = time.monotonic() - began
                GC_BATCH_SECONDS.labels("purge").observe(elapsed)
                rows, blobs, freed = batch
                if purger is self.purge:
                    totals.messages += rows
                    GC_MESSAGES_PURGED.inc(rows)
                else:
                    totals.calendar_objects += rows
                    GC_CALENDAR_OBJECTS_PURGED.inc(rows)
                totals.blobs += blobs
                totals.bytes += freed
                log.info(
                    "gc: purged %d %s, deleted %d blobs (%d bytes) in %.2f s",
                    rows,
                    what,
                    blobs,
                    freed,
                    elapsed,
                )

    async def _purge_batch(self, purger: _Purger) -> tuple[int, int, int] | None:
        """Claim, delete blobs, delete rows; None when nothing is due."""
        claim = await purger.claim(
            self.clock(), self.retention, self.settings.batch_size, CLAIM_LEASE
        )
        ids, keys = claim.ids, claim.keys
        if not ids:
            return None
        doomed = await purger.unused_keys(keys)
        for chunk in _chunks(sorted(doomed), _DELETE_CHUNK):
            await self.blobs.delete_many(chunk)
        rows = await self._delete_rows(purger, ids, keys)
        freed = sum(doomed.values())
        GC_BLOBS_DELETED.labels("purge").inc(len(doomed))
        GC_BYTES_FREED.inc(freed)
        return rows, len(doomed), freed

    async def _delete_rows(self, purger: _Purger, ids: Sequence[int], keys: Sequence[str]) -> int:
        """Step 3, retried when the database rolls it back on a conflict with
        another worker's batch (MariaDB breaks such deadlocks by rolling one back)."""
        for attempt in range(1, _CONFLICT_RETRIES + 1):
            try:
                return await purger.delete_rows(ids, keys)
            except TransactionConflict:
                if attempt == _CONFLICT_RETRIES:
                    raise
                await asyncio.sleep(random.uniform(0.01, 0.1) * attempt)  # noqa: S311
        raise AssertionError("unreachable")

    async def _plan_purge(self, totals: _Totals) -> None:
        """What :meth:`_purge` would do now, changing nothing."""
        now = self.clock()
        totals.messages, totals.blobs, totals.bytes = await self.purge.plan(now, self.retention)
        totals.calendar_objects, calendar_bytes = await self.calendar_purge.plan(
            now, self.retention
        )
        totals.blobs += totals.calendar_objects
        totals.bytes += calendar_bytes

    async def _due_count(self) -> int:
        return await self.purge.due_count(self.clock(), self.retention)

    # -- orphan sweep ------------------------------------------------------------

    async def _sweep_orphans(self, totals: _Totals, *, dry_run: bool) -> None:
        """Delete blobs (messages and calendar objects) without an ``object_keys`` row,
        older than the grace.

        A blob's age counts from the later of its key's UUIDv7 time and the
        store's modification time. The listing is read one page at a time.
        """
        cutoff = self.clock() - timedelta(seconds=self.settings.orphan_grace)
        began = time.monotonic()
        try:
            async for page in self._listing():
                if not dry_run and not await self.sweep_lease.claim():
                    log.warning("gc: the sweep lease ran out during the orphan sweep; stopping")
                    return
                orphans = await self._orphans(page, cutoff)
                freed = sum(blob.size for blob in orphans)
                if orphans and not dry_run:
                    await self.blobs.delete_many([blob.key for blob in orphans])
                    GC_BLOBS_DELETED.labels("orphan").inc(len(orphans))
                    GC_BYTES_FREED.inc(freed)
                    log.info("gc: deleted %d orphan blobs (%d bytes)", len(orphans), freed)
                totals.orphans += len(orphans)
                totals.bytes += freed
                GC_BATCH_SECONDS.labels("orphans").observe(time.monotonic() - began)
                began = time.monotonic()
        except Exception:
            GC_ERRORS.labels("orphans").inc()
            raise

    async def _listing(self) -> AsyncIterator[list[BlobInfo]]:
        for prefix in BLOB_PREFIXES:
            async for page in self.blobs.list(prefix, page_size=_LIST_PAGE):
                yield page

    async def _sweep_incomplete(self, totals: _Totals, *, dry_run: bool) -> None:
        """Remove blob writes that never finished, begun more than the grace ago."""
        cutoff = self.clock() - timedelta(seconds=self.settings.orphan_grace)
        began = time.monotonic()
        try:
            removed = await self.blobs.sweep_incomplete(cutoff.replace(tzinfo=UTC), dry_run=dry_run)
        except Exception:
            GC_ERRORS.labels("incomplete").inc()
            raise
        GC_BATCH_SECONDS.labels("incomplete").observe(time.monotonic() - began)
        totals.incomplete += removed
        if removed and not dry_run:
            GC_BLOBS_DELETED.labels("incomplete").inc(removed)
            log.info("gc: removed %d unfinished blob writes", removed)

    async def _orphans(self, page: Sequence[BlobInfo], cutoff: datetime) -> list[BlobInfo]:
        old = [blob for blob in page if _blob_time(blob) <= cutoff]
        if not old:
            return []
        known = await self.purge.known_keys([blob.key for blob in old])
        return [blob for blob in old if blob.key not in known]

    # -- bookkeeping -------------------------------------------------------------

    def _report(
        self, started: datetime, totals: _Totals, dry_run: bool, error: str | None = None
    ) -> GcReport:
        return GcReport(
            started_at=started,
            finished_at=self.clock(),
            dry_run=dry_run,
            messages_purged=totals.messages,
            blobs_deleted=totals.blobs,
            bytes_freed=totals.bytes,
            orphans_deleted=totals.orphans,
            error=error,
            incomplete_removed=totals.incomplete,
            calendar_objects_purged=totals.calendar_objects,
        )

    async def _record(self, report: GcReport, *, quiet: bool = False) -> None:
        try:
            await self.purge.record_run(self.node, report)
        except Exception:
            if not quiet:
                raise
            log.warning("gc: could not record the failed run")


def _blob_time(blob: BlobInfo) -> datetime:
    """The blob's age reference, naive UTC: the later of key time and modification."""
    modified = blob.modified.replace(tzinfo=None) - (blob.modified.utcoffset() or timedelta())
    made = blob_key_time(blob.key)
    if made is None:
        return modified
    return max(modified, made.replace(tzinfo=None))
