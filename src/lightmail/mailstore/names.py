"""Mailbox names as the mailstore keeps them: UTF-8, "/" between levels.

IMAP puts them on the wire in modified UTF-7 (RFC 3501 section 5.1.3); that
conversion belongs to the IMAP layer. Here a name is validated and INBOX is
normalised: it is case-insensitive, also as the first level of a deeper name;
and LIST/LSUB patterns are matched against names (``MailboxPattern``).
"""

from __future__ import annotations

import hashlib

from lightmail.errors import InvalidMailboxName, PatternTooComplex, SpecialUseNotSupported

DELIMITER = "/"
INBOX = "INBOX"
MAX_NAME_BYTES = 1000
_FORBIDDEN = frozenset("\x00\r\n*%")  # control bytes that break lines; LIST wildcards
STAR, PERCENT = "*", "%"  # LIST wildcards (RFC 3501 section 6.3.8)
_WILDCARDS = (STAR, PERCENT)
MAX_PATTERN_WILDCARDS = 20
"""The most ``*`` and ``%`` one LIST or LSUB pattern may hold, its reference included."""

# Created for every new user, with their RFC 6154 special-use attribute.
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    (INBOX, None),
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


# The special uses a mailbox here can have (RFC 6154 section 2): those of the
# mailboxes every user gets. \All and \Flagged would be virtual mailboxes.
SPECIAL_USES = frozenset(use for _, use in DEFAULT_MAILBOXES if use is not None)


def special_use(attribute: str) -> str:
    """``attribute`` as one of :data:`SPECIAL_USES` (matched without regard to case);
    SpecialUseNotSupported if it is not one."""
    for use in SPECIAL_USES:
        if use.lower() == attribute.lower():
            return use
    raise SpecialUseNotSupported(attribute)


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


class MailboxPattern:
    """A LIST or LSUB reference and mailbox pattern (RFC 3501 section 6.3.8).

    The two are read as one pattern: the reference followed by the pattern,
    or the pattern alone when the reference is empty or the pattern starts
    with the delimiter. INBOX is case-insensitive as its first level, as in
    a name. ``*`` matches any run of characters, ``%`` any run without the
    delimiter; every other character matches itself.

    ``matches`` runs the pattern as an NFA with every live state in one bit
    set (bit ``i``: the first ``i`` pattern items are matched), so a name
    costs one pass of a few integer operations per character, whatever the
    pattern: O(len(name) * len(pattern) / machine word) with no
    backtracking. A pattern with more than ``MAX_PATTERN_WILDCARDS``
    wildcards raises ``PatternTooComplex``.
    """

    __slots__ = (
        "_accept",
        "_literals",
        "_needed",
        "_percent",
        "_rest",
        "_star",
        "_start",
        "text",
    )

    def __init__(self, reference: str, pattern: str) -> None:
        full = pattern if pattern.startswith(DELIMITER) or not reference else reference + pattern
        levels = full.split(DELIMITER)
        if levels[0].upper() == INBOX:
            levels[0] = INBOX
        self.text = DELIMITER.join(levels)
        wildcards = sum(ch in _WILDCARDS for ch in self.text)
        if wildcards > MAX_PATTERN_WILDCARDS:
            raise PatternTooComplex(wildcards, MAX_PATTERN_WILDCARDS)
        items: list[str] = []  # characters; a run of wildcards is one, "*" if it holds one
        for ch in self.text:
            if ch in _WILDCARDS and items and items[-1] in _WILDCARDS:
                items[-1] = STAR if STAR in (ch, items[-1]) else PERCENT
            else:
                items.append(ch)
        literals: dict[str, int] = {}
        star = percent = 0
        for bit, item in enumerate(items):
            if item == STAR:
                star |= 1 << bit
            elif item == PERCENT:
                percent |= 1 << bit
            else:
                literals[item] = literals.get(item, 0) | 1 << bit
        self._literals = literals
        self._star = star
        self._percent = percent
        self._accept = 1 << len(items)
        self._rest = star & (self._accept >> 1)  # a final "*": once there, the rest matches
        self._needed = len(items) - (star | percent).bit_count()
        # A wildcard may match nothing. No two wildcard items are adjacent, so one
        # step reaches every state (here and after each character in ``matches``).
        self._start = 1 | ((1 & (star | percent)) << 1)

    def __repr__(self) -> str:
        return f"MailboxPattern({self.text!r})"

    @property
    def ends_with_percent(self) -> bool:
        """Whether the pattern's last character is ``%`` (LSUB then lists the levels
        above subscribed names, RFC 3501 section 6.3.9)."""
        return self.text.endswith(PERCENT)

    def matches(self, name: str) -> bool:
        """Whether ``name`` (as the mailstore keeps it) matches the whole pattern."""
        if len(name) < self._needed:
            return False
        literals, star, percent = self._literals, self._star, self._percent
        wild = star | percent
        states = self._start
        for ch in name:
            moved = ((states & literals.get(ch, 0)) << 1) | (states & star)
            if ch != DELIMITER:
                moved |= states & percent
            states = moved | ((moved & wild) << 1)
            if not states:
                return False
            if states & self._rest:
                return True
        return bool(states & self._accept)
