"""How mailstore values map to SQL rows: column lists, row converters, predicates.

Internal to the mailstore package.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import BindParameter, and_, bindparam, update

from lightmail.mailstore.mime.types import ParsedMessage, SortKeys
from lightmail.mailstore.types import Flags, Mailbox, MessageInfo
from lightmail.storage.db import tables as t

_T = TypeVar("_T")

# IN (...) lists are cut into pieces of this many values (SQLite allows 32766).
CHUNK = 500


def aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def zoned(value: datetime, offset_minutes: int) -> datetime:
    """A stored UTC instant in the zone it was given in (minutes east of UTC)."""
    if not offset_minutes:
        return value.replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC).astimezone(_zone(offset_minutes))


@functools.lru_cache(maxsize=256)
def _zone(offset_minutes: int) -> timezone:
    return timezone(timedelta(minutes=offset_minutes))


def offset_minutes(value: datetime) -> int:
    """The zone of an aware datetime as whole minutes east of UTC (0 if naive)."""
    offset = value.utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def chunks(values: Sequence[_T]) -> Iterator[list[_T]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


class LineEndings:
    """Counts bare LFs in a stream of chunks (a CR may end one chunk, its LF start the next)."""

    def __init__(self) -> None:
        self.bare_lf = 0
        self._after_cr = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        crlf = chunk.count(b"\r\n") + (1 if self._after_cr and chunk[0] == 0x0A else 0)
        self.bare_lf += chunk.count(b"\n") - crlf
        self._after_cr = chunk[-1] == 0x0D


def mailbox_from_row(row: Sequence[Any]) -> Mailbox:
    """The mailbox of a row that starts with :data:`MAILBOX_COLUMNS` (a ``Row`` or
    the plain tuple of :meth:`~lightmail.storage.db.engine.Database.query`)."""
    id_, user_id, name, uidvalidity, uidnext, highestmodseq, special_use, keywords = row[:8]
    return Mailbox(
        id=id_,
        user_id=user_id,
        name=name,
        uidvalidity=uidvalidity,
        uidnext=uidnext,
        highestmodseq=highestmodseq,
        special_use=special_use,
        keywords=tuple(keywords.split()),
    )


def info_from_row(row: Sequence[Any]) -> MessageInfo:
    """The message of a row that starts with :data:`INFO_COLUMNS`."""
    # Unpacked by position: a Row's attribute lookup by name costs more than the rest.
    uid, modseq, system, keywords, size, internaldate, offset, object_key, size_crlf = row[:9]
    return MessageInfo(
        uid=uid,
        modseq=modseq,
        flags=Flags.from_row(system, keywords),
        size=size,
        internaldate=zoned(internaldate, offset),
        object_key=object_key,
        size_crlf=size_crlf,
    )


MAILBOX_COLUMNS = t.columns(
    t.mailboxes,
    "id",
    "user_id",
    "name",
    "uidvalidity",
    "uidnext",
    "highestmodseq",
    "special_use",
    "keywords",
)
# In info_from_row's order.
INFO_COLUMNS = t.columns(
    t.messages,
    "uid",
    "modseq",
    "flags",
    "keywords",
    "size",
    "internaldate",
    "internaldate_offset",
    "object_key",
    "size_crlf",
)
# SortKeys (SORT and THREAD, RFC 5256) in its fields' order.
SORT_KEY_COLUMNS = (
    "sort_subject",
    "subject_reply",
    "sort_from",
    "sort_to",
    "sort_cc",
    "sort_display_from",
    "sort_display_to",
    "thread_message_id",
    "thread_references",
)
# The parse results cached at delivery, so FETCH, SEARCH and SORT never read the blob.
_PARSED_COLUMNS = (
    "header",
    "envelope",
    "bodystructure",
    "sent_date",
    "subject",
    "from_addr",
    "to_addr",
    "cc_addr",
    "bcc_addr",
    "message_id",
)
PARSE_CACHE_COLUMNS = (*_PARSED_COLUMNS, *SORT_KEY_COLUMNS)
# Columns copied unchanged when a message is copied or moved.
COPIED_COLUMNS = (
    "object_key",
    "size",
    "size_crlf",
    "internaldate",
    "internaldate_offset",
    "flags",
    "keywords",
    *PARSE_CACHE_COLUMNS,
)


def parse_cache_values(parsed: ParsedMessage) -> dict[str, Any]:
    """The :data:`PARSE_CACHE_COLUMNS` of a new message row, in that order."""
    values = (
        parsed.header,
        json.dumps(parsed.envelope.to_json(), separators=(",", ":")),
        json.dumps(parsed.body.to_json(), separators=(",", ":")),
        naive_utc(parsed.sent_date) if parsed.sent_date else None,
        parsed.subject,
        parsed.from_,
        parsed.to,
        parsed.cc,
        parsed.bcc,
        parsed.message_id,
    )
    return {**dict(zip(_PARSED_COLUMNS, values, strict=True)), **sort_key_values(parsed.sort)}


def sort_key_values(keys: SortKeys) -> dict[str, Any]:
    """The :data:`SORT_KEY_COLUMNS` of a message row."""
    values = (
        keys.subject,
        keys.reply,
        keys.from_,
        keys.to,
        keys.cc,
        keys.display_from,
        keys.display_to,
        keys.message_id,
        " ".join(keys.references),
    )
    return dict(zip(SORT_KEY_COLUMNS, values, strict=True))


def sort_keys_from_row(row: Sequence[Any]) -> SortKeys:
    """The SortKeys of the :data:`SORT_KEY_COLUMNS` values of a row, in that order."""
    subject, reply, from_, to, cc, display_from, display_to, message_id, references = row
    return SortKeys(
        subject,
        bool(reply),
        from_,
        to,
        cc,
        display_from,
        display_to,
        message_id,
        tuple(references.split()),
    )


def same_mailbox(mailbox_created: datetime | None, message_deleted: datetime) -> bool:
    """Whether a mailbox row is the one a message was deleted from.

    Mailbox ids can be reused (SQLite hands out the highest rowid again), but
    a mailbox created after the message was deleted cannot be where it was.
    """
    return mailbox_created is not None and mailbox_created <= message_deleted


def live(mailbox_id: int | BindParameter[int]) -> Any:
    return and_(t.messages.c.mailbox_id == mailbox_id, t.messages.c.deleted_at.is_(None))


# ``live`` with the mailbox as the bound parameter ``mailbox_id``, for statements built once.
LIVE = live(bindparam("mailbox_id", type_=t.messages.c.mailbox_id.type))


# Expunges up to ``modseq`` lose the rows that record their UIDs (the GC purged
# them, a restore gave one a new UID, renaming INBOX moved them out): the
# mailbox's ``purged_modseq`` rises to it, so QRESYNC no longer lists the
# expunges since an older mod-sequence from the rows (RFC 7162 section 3.2.6).
FORGET_EXPUNGES = (
    update(t.mailboxes)
    .where(
        t.mailboxes.c.id == bindparam("mailbox_id"),
        t.mailboxes.c.purged_modseq < bindparam("modseq"),
    )
    .values(purged_modseq=bindparam("modseq"))
)
