"""Prometheus metrics of a node (served at /metrics by the HTTP API).

One module so every metric name is defined once; the code that counts
imports the metric it needs.

The worker processes of a node (:mod:`lightmail.workers`) keep their samples
in files in one folder, named by ``PROMETHEUS_MULTIPROC_DIR`` in their
environment, so that any of them shows the whole node (:func:`node_registry`).
Each gauge says how the workers' values add up (``multiprocess_mode``).
"""

from __future__ import annotations

import functools
import os
from typing import TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

_M = TypeVar("_M", Counter, Gauge, Histogram)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # the environment variable naming the folder


class _Pid:
    """This process's id, read once and again after a fork. In multiprocess mode
    prometheus_client checks the pid at every sample update (it opens new files
    after a fork); ``os.getpid`` is a system call each time, several per IMAP
    command."""

    value = os.getpid()

    @classmethod
    def forked(cls) -> None:
        cls.value = os.getpid()

    @classmethod
    def get(cls) -> int:
        return cls.value


os.register_at_fork(after_in_child=_Pid.forked)
if values.ValueClass is not values.MutexValue:  # the library chose multiprocess mode
    # Before the first metric below is made: every sample takes this class.
    values.ValueClass = values.MultiProcessValue(process_identifier=_Pid.get)  # type: ignore[no-untyped-call]


def node_registry() -> CollectorRegistry:
    """The samples of this process, or of every worker of the node when they share a folder."""
    if not os.environ.get(MULTIPROCESS_DIR):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


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

# -- deliveries (LMTP_RECIPIENTS above) and appends
LMTP_MESSAGE_BYTES = Histogram(
    "lightmail_lmtp_message_bytes",
    "Size of messages delivered over LMTP, as stored (trace headers included); "
    "once per message, however many recipients got it.",
    buckets=(4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864),
)
APPENDS = Counter(
    "lightmail_appends",
    "IMAP APPEND by outcome: appended; refused (a permanent NO: quota, size, mailbox, "
    "content policy); deferred (NO [UNAVAILABLE]: the database, blob store or virus "
    "scanner is down); error (NO [SERVERBUG]); aborted (the literal broke off).",
    ["outcome"],
)

# -- logins
LOGINS_THROTTLED = Counter(
    "lightmail_logins_throttled",
    "Logins refused without checking the password because their client address "
    "(scope client) or account (scope account) failed too often lately ([auth] throttle_*).",
    ["scope"],
)

# -- connections and commands, per protocol (imap, pop3, lmtp)
CONNECTIONS_ACCEPTED = Counter(
    "lightmail_connections_accepted",
    "Connections accepted (within the limits) and handed to a session.",
    ["protocol"],
)
CONNECTIONS_OPEN = Gauge(
    "lightmail_connections_open",
    "Connections being served now.",
    ["protocol"],
    multiprocess_mode="livesum",
)
CONNECTIONS_REFUSED = Counter(
    "lightmail_connections_refused",
    "Connections closed on arrival: reason max_connections, max_per_ip, "
    "shutdown (the server was stopping) or proxy_header (a peer in "
    "[server] proxy_networks sent no valid PROXY header).",
    ["protocol", "reason"],
)
COMMANDS = Counter(
    "lightmail_commands",
    "Commands received, by protocol and command verb (lower case, uid_ before the "
    "IMAP UID forms); other is an unknown or malformed command.",
    ["protocol", "command"],
)
COMMAND_SECONDS = Histogram(
    "lightmail_command_seconds",
    "Time spent on a command, from its arrival until its replies are written or queued, "
    "whatever they say; it includes waiting for the client within a command: the APPEND "
    "literal, LMTP DATA, IDLE until DONE, a SASL exchange.",
    ["protocol", "command"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

# -- CalDAV, which is HTTP: requests rather than commands
DAV_REQUESTS = Counter(
    "lightmail_dav_requests",
    "CalDAV requests by method (other: one CalDAV does not serve) and HTTP status "
    "of the answer; 401 is a request without (valid) credentials.",
    ["method", "status"],
)
DAV_REQUEST_SECONDS = Histogram(
    "lightmail_dav_request_seconds",
    "Time spent on a CalDAV request, from its arrival until its answer is sent, "
    "by method (other: one CalDAV does not serve).",
    ["method"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# -- storage latency
_STORAGE_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)  # fmt: skip
BLOB_SECONDS = Histogram(
    "lightmail_blob_seconds",
    "Blob store operations by backend (filesystem, s3, cache) and operation, failed ones "
    "included. put: until the blob is durable, less the time spent waiting for the "
    "message to arrive from the client; get and get_range: until the first chunk "
    "(time to first byte), so a slow reader does not count; delete: one batch of keys; "
    "list: one page.",
    ["backend", "operation"],
    buckets=_STORAGE_BUCKETS,
)
BLOB_ERRORS = Counter(
    "lightmail_blob_errors",
    "Blob store operations that failed (store unreachable or erring; a missing blob "
    "and a failure of the client sending the message are not counted).",
    ["backend", "operation"],
)
DB_TRANSACTION_SECONDS = Histogram(
    "lightmail_db_transaction_seconds",
    "Database transactions from BEGIN to COMMIT or ROLLBACK, including waiting for a "
    "pooled connection; kind read or write.",
    ["kind"],
    buckets=_STORAGE_BUCKETS,
)
DB_TRANSACTION_FAILURES = Counter(
    "lightmail_db_transaction_failures",
    "Database transactions that failed on a database error: reason unavailable "
    "(connection lost, refused, timed out, locked; answered as a temporary failure), "
    "conflict (a deadlock or lock wait timeout rolled it back; retrying may succeed) "
    "or error (any other database error). A rollback the application asked for is not "
    "counted.",
    ["kind", "reason"],
)
DB_TRANSACTION_RETRIES = Counter(
    "lightmail_db_transaction_retries",
    "Write transactions run again after a deadlock rolled them back (on a Galera "
    "cluster: another node committed a change to the same rows first); each retry "
    "is also counted as a conflict failure.",
)
LOST_COMMITS = Counter(
    "lightmail_db_lost_commits",
    "Writes that made a new message blob visible and whose database connection failed "
    "during COMMIT, by what a new connection then found: committed (answered as a "
    "success), rolled_back (a temporary failure), unknown (the database was still down: "
    "a temporary failure). The blob is kept for the orphan sweep unless committed.",
    ["outcome"],
)
BLOB_CACHE_READS = Counter(
    "lightmail_blob_cache_reads",
    "Reads of S3 blobs with [blobs] cache_folder set, by result: hit (read from the "
    "node's copy) or miss (read from S3). A copy that could not be read is a miss, and "
    'an error of lightmail_blob_errors{backend="cache"}.',
    ["result"],
)
BLOB_CACHE_EVICTED = Counter(
    "lightmail_blob_cache_evicted",
    "Copies deleted from the blob cache folder to keep it within [blobs] cache_size.",
)
BLOBS_MISSING = Counter(
    "lightmail_blobs_missing",
    "Messages whose blob was not in the blob store when read (a FETCH skipped them).",
)

# -- garbage collection
GC_MESSAGES_PURGED = Counter(
    "lightmail_gc_messages_purged", "Soft-deleted messages purged by the garbage collector."
)
GC_CALENDAR_OBJECTS_PURGED = Counter(
    "lightmail_gc_calendar_objects_purged",
    "Replaced or deleted calendar objects purged by the garbage collector.",
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
    multiprocess_mode="mostrecent",
)

# -- notifications
NOTIFY_CONNECTED = Gauge(
    "lightmail_notify_connected",
    "1 while change events reach sessions as changes happen (always with the in-process "
    "bus); 0 while a process of the node cannot reach Redis and its sessions poll the "
    "database every [notify] poll_interval instead (the lowest of the node's processes).",
    multiprocess_mode="livemin",
)

# -- state shared by the nodes of a cluster through Redis
CLUSTER_SHARED = Gauge(
    "lightmail_cluster_shared",
    "1 while the per-user connection caps and the login throttling are counted in Redis "
    "for the whole cluster ([notify] url); 0 while a process of the node cannot reach Redis "
    "and counts for this node only (the lowest of the node's processes); 0 without "
    "[notify] url, where every count is the node's.",
    multiprocess_mode="livemin",
)
CLUSTER_FALLBACKS = Counter(
    "lightmail_cluster_fallbacks",
    "Connection cap and login throttle decisions made on this node's own counts because "
    "Redis was unreachable.",
)


@functools.cache
def labelled(metric: _M, *values: str) -> _M:
    """``metric.labels(*values)``, looked up once: ``labels`` takes a lock and builds
    a key on every call, and the hot paths (each command, blob read and database
    transaction) use a bounded set of label values."""
    return metric.labels(*values)
