"""Prometheus metrics of a node (served at /metrics by the HTTP API).

One module so every metric name is defined once; the code that counts
imports the metric it needs.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ANTIVIRUS_VERDICTS = Counter(
    "lightmail_antivirus_verdicts",
    "Virus scans by outcome: clean, infected, or error (clamd unavailable or slow).",
    ["verdict"],
)
LMTP_RECIPIENTS = Counter(
    "lightmail_lmtp_recipients",
    "LMTP recipients by the reply they got after DATA: delivered, refused, deferred.",
    ["outcome"],
)

# -- garbage collection
GC_MESSAGES_PURGED = Counter(
    "lightmail_gc_messages_purged", "Soft-deleted messages purged by the garbage collector."
)
GC_BLOBS_DELETED = Counter(
    "lightmail_gc_blobs_deleted",
    "Blobs deleted by the garbage collector: purge (no message uses it any more) or orphan.",
    ["reason"],
)
GC_BYTES_FREED = Counter(
    "lightmail_gc_bytes_freed", "Bytes of blob storage freed by the garbage collector."
)
GC_BATCH_SECONDS = Histogram(
    "lightmail_gc_batch_seconds",
    "Duration of one garbage collection batch (purge) or listing page (orphan sweep).",
    ["phase"],
)
GC_ERRORS = Counter(
    "lightmail_gc_errors", "Garbage collection runs that stopped on an error.", ["phase"]
)
GC_PENDING = Gauge(
    "lightmail_gc_pending_messages",
    "Soft-deleted messages past retention not yet purged, as of the last run.",
)
