"""Mailbox names as the mailstore keeps them: UTF-8, "/" between levels.

IMAP puts them on the wire in modified UTF-7 (RFC 3501 section 5.1.3); that
conversion belongs to the IMAP layer. Here a name is validated and INBOX is
normalised: it is case-insensitive, also as the first level of a deeper name.
"""

from __future__ import annotations

import hashlib

from lightmail.errors import InvalidMailboxName

DELIMITER = "/"
INBOX = "INBOX"
MAX_NAME_BYTES = 1000
_FORBIDDEN = frozenset("\x00\r\n*%")  # control bytes that break lines; LIST wildcards

# Created for every new user, with their RFC 6154 special-use attribute.
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    (INBOX, None),
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


def normalize(name: str) -> str:
    """Return the canonical form of a mailbox name, or raise InvalidMailboxName."""
    if not name:
        raise InvalidMailboxName(name, "the name is empty")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidMailboxName(name, f"the name is longer than {MAX_NAME_BYTES} bytes")
    if any(ch in _FORBIDDEN or ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        raise InvalidMailboxName(name, "the name contains a control character, '*' or '%'")
    levels = name.split(DELIMITER)
    if any(level == "" for level in levels):
        raise InvalidMailboxName(name, f"the name has an empty level or a stray {DELIMITER!r}")
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return DELIMITER.join(levels)


def parents(name: str) -> list[str]:
    """The names above ``name`` in the hierarchy, outermost first."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:depth]) for depth in range(1, len(levels))]


def name_hash(name: str) -> str:
    """The key that makes names unique per user (names can outgrow a MySQL index)."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()
