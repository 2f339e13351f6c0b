"""The garbage collector as a node service: one run every ``[gc] interval``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from lightmail.config import format_duration
from lightmail.errors import TemporaryFailure
from lightmail.gc.collector import GarbageCollector

log = logging.getLogger(__name__)

_STOP_GRACE = 10.0  # seconds a batch in progress may take to finish at shutdown


class GcWorker:
    """Runs the collector at start and then every interval, until stopped.

    A run that fails (database or blob store unreachable) is logged and the
    next one tries again; whatever it left half done, that run completes.
    """

    name = "gc"

    def __init__(self, collector: GarbageCollector, interval: float) -> None:
        self.collector = collector
        self.interval = interval
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._every = format_duration(interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gc")
        settings = self.collector.settings
        log.info(
            "gc: every %s, purging mail deleted more than %s ago, in batches of %d",
            format_duration(self.interval),
            format_duration(settings.retention),
            settings.batch_size,
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), _STOP_GRACE)
        except TimeoutError:
            # The claimed batch is left for the next run, once its claim runs out.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                report = await self.collector.run()
            except TemporaryFailure as error:
                log.warning("gc: run stopped, will retry in %s: %s", self._every, error)
            except Exception:
                log.exception("gc: run failed, will retry in %s", self._every)
            else:
                if report.messages_purged or report.orphans_deleted:
                    log.info(
                        "gc: run done: %d messages purged, %d blobs and %d orphans deleted, "
                        "%d bytes freed",
                        report.messages_purged,
                        report.blobs_deleted,
                        report.orphans_deleted,
                        report.bytes_freed,
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
