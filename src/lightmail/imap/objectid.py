"""OBJECTID (RFC 8474): the object identifiers of mailboxes and messages.

Every identifier starts with a letter of its kind (section 8.1: never a digit,
a dash or NIL), followed by letters and digits:

- MAILBOXID ``F`` + the mailbox's row id: ids are never reused (AUTOINCREMENT),
  RENAME keeps the row, and RENAME of INBOX makes a new mailbox for the moved
  messages while INBOX keeps its id, name and UIDVALIDITY (section 4);
- EMAILID ``M`` + the 32 hex digits of the message's blob (its UUIDv7 key):
  immutable, and shared by the copies COPY, MOVE and a delivery to several
  recipients make of one blob, which the RFC allows (section 5.1);
- THREADID ``T`` + 24 hex digits of SHA-256 of the thread's first Message-ID
  (the first of the References cached at delivery, or the message's own
  Message-ID): the same for every message of a thread in any mailbox, never
  changed once told (section 5.2). A message without either is a thread of
  its own, named after its blob.
"""

from __future__ import annotations

import hashlib

from lightmail.mailstore.store import Mailbox


def mailbox_id(mailbox: Mailbox) -> bytes:
    return b"F%d" % mailbox.id


def email_id(object_key: str) -> bytes:
    return b"M" + _blob_hex(object_key)


def thread_id(thread_root: str, object_key: str) -> bytes:
    """The THREADID of a message (``MessageMeta.thread_root`` and its blob's key)."""
    if not thread_root:
        return b"T" + _blob_hex(object_key)
    return b"T" + hashlib.sha256(thread_root.encode()).hexdigest()[:24].encode("ascii")


def _blob_hex(object_key: str) -> bytes:
    """The hex digits of a blob key (``msg/<uuid>.eml``), or of its SHA-256 for a key
    of another shape."""
    name = object_key.rsplit("/", 1)[-1].removesuffix(".eml").replace("-", "")
    if len(name) == 32 and all(c in "0123456789abcdef" for c in name):
        return name.encode("ascii")
    return hashlib.sha256(object_key.encode()).hexdigest()[:32].encode("ascii")
