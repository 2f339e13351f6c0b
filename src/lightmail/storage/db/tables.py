"""The SQL schema: SQLAlchemy Core tables, one schema for SQLite and MySQL/MariaDB.

Migrations under ``migrations/`` create exactly these tables; a test compares
the two. docs/architecture.md describes them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql, sqlite

# A result row of any shape (SQLAlchemy 2.1 rows are typed by their columns).
AnyRow = Row[*tuple[Any, ...]]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

# BIGINT AUTO_INCREMENT on MySQL; INTEGER PRIMARY KEY (the rowid) on SQLite. Tables
# whose ids outlive their rows (messages of a deleted mailbox keep its id; the API
# names deleted messages and quarantine entries by id) add AUTOINCREMENT, so that
# SQLite never hands a deleted row's id out again, as MySQL/MariaDB do not.
Id = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
# Cached header blocks and body structures can exceed TEXT's 64 KB on MySQL.
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Timestamp = DateTime(timezone=False)  # always UTC, stored naive
# utf8mb4 with binary collation: names compare exactly as stored (case-folding,
# where wanted, is done by the code before it writes).
_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def columns(table: Table, *names: str) -> tuple[Column[Any], ...]:
    """``table``'s columns named ``names``, in that order, for ``select(*...)``. A
    name the table does not have raises KeyError where the tuple is built."""
    return tuple(table.c[name] for name in names)


domains = Table(
    "domains",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(253), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    **_MYSQL,
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("domain_id", Id, ForeignKey("domains.id"), nullable=False, index=True),
    Column("address", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("quota_bytes", BigInteger, nullable=True),  # NULL = unlimited
    Column("enabled", Boolean, nullable=False, default=True),
    # UIDVALIDITY handed to the next mailbox created for this user; strictly
    # increasing so a re-created name never reuses an old value (RFC 3501 2.3.1.1).
    Column("next_uidvalidity", BigInteger, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    **_MYSQL,
)

aliases = Table(
    "aliases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # "name@domain", or "@domain" for the domain's catch-all.
    Column("address", String(320), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("address", "user_id"),
    Index(None, "user_id"),
    **_MYSQL,
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("last_used_at", Timestamp, nullable=True),
    **_MYSQL,
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(1000), nullable=False),  # UTF-8, "/" as hierarchy delimiter
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False),
    Column("highestmodseq", BigInteger, nullable=False),
    Column("special_use", String(32), nullable=True),  # e.g. "\\Sent" (RFC 6154)
    # Highest UID some session has already announced as \Recent (RFC 3501 2.3.2).
    Column("recent_uid", BigInteger, nullable=False, server_default="0"),
    # The highest mod-sequence of an expunge whose UID no messages row records any
    # more (purged by the GC, restored under a new UID, moved out by renaming
    # INBOX): QRESYNC answers a client older than this with every UID not live.
    Column("purged_modseq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", Timestamp, nullable=False),
    # The keywords defined in the mailbox, space-separated and sorted: a superset
    # of those its live messages have, bounded by [imap] max_keywords_per_mailbox.
    Column("keywords", LongText, nullable=False, default=""),
    # How many live (not soft-deleted) messages the mailbox holds and their bytes,
    # kept by every change of its live set under the row's lock: a user's quota
    # usage is the sum over the user's mailboxes, not over every message.
    Column("live_count", BigInteger, nullable=False, server_default="0"),
    Column("live_size", BigInteger, nullable=False, server_default="0"),
    # Mailbox names can exceed MySQL's index key length, so uniqueness is on a hash.
    Column("name_hash", String(64), nullable=False),
    UniqueConstraint("user_id", "name_hash"),
    sqlite_autoincrement=True,
    **_MYSQL,
)

# Subscriptions outlive the mailbox they name (RFC 3501 section 6.3.6).
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(1000), nullable=False),
    Column("name_hash", String(64), nullable=False),
    UniqueConstraint("user_id", "name_hash"),
    **_MYSQL,
)

object_keys = Table(
    "object_keys",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    **_MYSQL,
)

# System flags are a bit set; keywords a space-separated list.
FLAG_SEEN = 1
FLAG_ANSWERED = 2
FLAG_FLAGGED = 4
FLAG_DELETED = 8
FLAG_DRAFT = 16

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # No foreign keys to mailboxes and users: deleting either soft-deletes its
    # messages, and the rows stay until the garbage collector purges them.
    Column("mailbox_id", Id, nullable=False),
    Column("user_id", Id, nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Column("object_key", String(64), ForeignKey("object_keys.key"), nullable=False),
    Column("size", BigInteger, nullable=False),
    # The size with every bare LF sent as CRLF: what POP3's LIST and RETR count.
    Column("size_crlf", BigInteger, nullable=False, server_default="0"),
    Column("internaldate", Timestamp, nullable=False),
    # The zone INTERNALDATE was given in, minutes east of UTC (RFC 3501 2.3.3):
    # FETCH shows it and BEFORE/ON/SINCE compare dates in it.
    Column("internaldate_offset", Integer, nullable=False, server_default="0"),
    Column("flags", Integer, nullable=False, default=0),
    Column("keywords", Text, nullable=False, default=""),
    Column("deleted_at", Timestamp, nullable=True),
    # Set when the garbage collector claims a soft-deleted message for purging:
    # from then on the message can no longer be restored, and no other worker
    # takes it before this time passes (a crashed worker's claim runs out).
    Column("purge_claimed_until", Timestamp, nullable=True),
    # The parse cached at delivery, so FETCH of headers/ENVELOPE/BODYSTRUCTURE
    # and SEARCH/SORT on header fields never read the blob.
    Column("header", Blob, nullable=False),
    Column("envelope", LongText, nullable=False),
    Column("bodystructure", LongText, nullable=False),
    Column("sent_date", Timestamp, nullable=True),
    Column("subject", Text, nullable=False, default=""),
    Column("from_addr", Text, nullable=False, default=""),
    Column("to_addr", Text, nullable=False, default=""),
    Column("cc_addr", Text, nullable=False, default=""),
    Column("bcc_addr", Text, nullable=False, default=""),
    Column("message_id", Text, nullable=False, default=""),
    # SORT and THREAD keys (RFC 5256, RFC 5957; mime/sorting.py): the base
    # subject and the first addresses in i;unicode-casemap form, whether the
    # subject marks a reply, the normalized Message-ID and references
    # (space-separated).
    Column("sort_subject", LongText, nullable=False, default=""),
    Column("subject_reply", Boolean, nullable=False, default=False),
    Column("sort_from", LongText, nullable=False, default=""),
    Column("sort_to", LongText, nullable=False, default=""),
    Column("sort_cc", LongText, nullable=False, default=""),
    Column("sort_display_from", LongText, nullable=False, default=""),
    Column("sort_display_to", LongText, nullable=False, default=""),
    Column("thread_message_id", LongText, nullable=False, default=""),
    Column("thread_references", LongText, nullable=False, default=""),
    UniqueConstraint("mailbox_id", "uid"),
    Index(None, "object_key"),
    Index(None, "deleted_at"),
    # The quota's sum of a user's live messages reads this index alone.
    Index(None, "user_id", "deleted_at", "size"),
    # What changed in a mailbox since a mod-sequence (a session catching up, CONDSTORE).
    Index(None, "mailbox_id", "modseq"),
    sqlite_autoincrement=True,
    **_MYSQL,
)

# Messages a virus scan kept aside ([antivirus] mode = quarantine): not in any
# mailbox; the blob stays referenced through object_keys until release or delete.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("object_key", String(64), ForeignKey("object_keys.key"), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("recipients", Text, nullable=False),  # JSON: [[address, user_id], ...]
    Column("virus", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    sqlite_autoincrement=True,
    **_MYSQL,
)

# One row per garbage collection run (any node, or `lightmail gc run`), so
# operators and the API can see when mail was last purged. Old rows are trimmed.
gc_runs = Table(
    "gc_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("node", String(255), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=False),
    Column("messages_purged", BigInteger, nullable=False),
    Column("blobs_deleted", BigInteger, nullable=False),
    Column("bytes_freed", BigInteger, nullable=False),
    Column("orphans_deleted", BigInteger, nullable=False),
    Column("error", Text, nullable=True),
    **_MYSQL,
)

# A GC task one node of the cluster does per round (``sweep``: the orphan and
# unfinished-upload sweeps): the node holding it and until when
# (:mod:`lightmail.gc.lease`). The row is made by the migration.
gc_leases = Table(
    "gc_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("held_until", Timestamp, nullable=False),
    **_MYSQL,
)

# DAV collections of a kind: calendars (CalDAV, RFC 4791) and address books
# (CardDAV, RFC 6352), one per user, kind and path segment. Each change to one of
# its objects raises ``sync_token`` by one; the objects changed carry that value as
# their ``modseq`` (the getctag and the RFC 6578 token).
calendars = Table(
    "calendars",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False, server_default="calendar"),  # or addressbook
    Column("name", String(255), nullable=False),  # the path segment
    Column("display_name", String(255), nullable=False, default=""),
    Column("color", String(32), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("components", String(64), nullable=False),  # e.g. "VEVENT VTODO", "VCARD"
    Column("sync_token", BigInteger, nullable=False),
    # Removed objects up to this token were purged: older sync tokens are refused.
    Column("purged_modseq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("user_id", "kind", "name"),
    sqlite_autoincrement=True,
    **_MYSQL,
)

# One row per stored version of a calendar or address object resource; the .ics
# or .vcf bytes are the blob. Replacing or deleting one soft-deletes its row (the tombstone that
# sync-collection reports), which the garbage collector purges like a message.
calendar_objects = Table(
    "calendar_objects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # No foreign key: a deleted calendar's objects stay until the GC purges them.
    Column("calendar_id", Id, nullable=False),
    Column("user_id", Id, nullable=False),
    Column("name", String(255), nullable=False),  # the resource's path segment
    Column("uid", String(255), nullable=False),  # the iCalendar or vCard UID
    Column("etag", String(64), nullable=False),
    Column("object_key", String(64), ForeignKey("object_keys.key"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("component", String(16), nullable=False),  # VEVENT, VTODO, VJOURNAL, VCARD
    # The first instance's start and the last one's end, UTC; NULL: unbounded.
    Column("first_start", Timestamp, nullable=True),
    Column("last_end", Timestamp, nullable=True),
    Column("recurring", Boolean, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Column("deleted_at", Timestamp, nullable=True),
    Column("purge_claimed_until", Timestamp, nullable=True),
    Index(None, "calendar_id", "name"),
    Index(None, "calendar_id", "modseq"),
    Index(None, "calendar_id", "uid"),
    Index(None, "object_key"),
    Index(None, "deleted_at"),
    Index(None, "user_id", "deleted_at"),
    sqlite_autoincrement=True,
    **_MYSQL,
)
