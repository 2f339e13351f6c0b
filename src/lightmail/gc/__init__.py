"""Garbage collection: purging soft-deleted mail and sweeping orphan blobs."""

from lightmail.gc.collector import CLAIM_LEASE, GarbageCollector, GcStatus
from lightmail.gc.worker import GcWorker
from lightmail.mailstore.purge import GcReport

__all__ = ["CLAIM_LEASE", "GarbageCollector", "GcReport", "GcStatus", "GcWorker"]
