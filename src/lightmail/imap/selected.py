"""One session's view of its selected mailbox (RFC 3501 sections 2.3.1.2, 5.2, 7.4.1).

Sans-I/O: the session feeds what changed in the mailbox (UIDs and flags read
from the mailstore: every message, or those changed since a mod-sequence and
the UIDs expunged since) and this view works out what to tell the client:
new messages (EXISTS, with ``\\Recent`` for those this session claimed),
flag changes (FETCH FLAGS) and expunges (EXPUNGE with sequence numbers that
are correct at the moment each response is sent). Expunges are held back
while the client may not be told of them (during FETCH, STORE and SEARCH,
RFC 3501 section 7.4.1) and announced at the next point that allows them.
It also keeps the keyword set the client was told of (FLAGS, RFC 3501
section 7.2.6): before a response shows a keyword outside it, the set is
announced again, grown by the mailbox's current keywords.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lightmail.imap.wire.types import SequenceSet


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A message as the mailstore sees it now."""

    uid: int
    flags: tuple[str, ...]
    modseq: int


@dataclass(slots=True)
class Updates:
    """What the client must be told, in this order (RFC 3501 section 7.4.1 and 7.3.1)."""

    # (sequence number, UID), each number valid when sent
    expunged: list[tuple[int, int]] = field(default_factory=list)
    exists: int | None = None
    recent: int | None = None
    # seq, uid, flags, mod-sequence
    flags: list[tuple[int, int, tuple[str, ...], int]] = field(default_factory=list)
    # The keywords for new FLAGS and PERMANENTFLAGS responses, sent before the rest.
    keywords: tuple[str, ...] | None = None

    def __bool__(self) -> bool:
        return bool(
            self.expunged or self.exists is not None or self.flags or self.keywords is not None
        )


class SelectedMailbox:
    """The message sequence map and flag cache of one selected mailbox."""

    def __init__(
        self,
        mailbox_id: int,
        snapshot: Iterable[Snapshot],
        *,
        readonly: bool,
        recent: Iterable[int] = (),
        keywords: Iterable[str] = (),
        keyword_room: bool = True,
    ) -> None:
        self.mailbox_id = mailbox_id
        self.readonly = readonly
        messages = sorted(snapshot, key=lambda m: m.uid)
        # Most messages share one of a few flag combinations: keep one tuple of
        # each, so a session's memory grows by little more than a UID per message.
        self._shared: dict[tuple[str, ...], tuple[str, ...]] = {}
        # Keywords the client was told of (only grows while selected), and those
        # that entered the flag cache since and are still to be told.
        self._keywords: frozenset[str] = frozenset()
        self._unannounced: set[str] = set()
        self._keyword_room = keyword_room
        self._uids: list[int] = [m.uid for m in messages]
        self._flags: dict[int, tuple[str, ...]] = {m.uid: self._share(m.flags) for m in messages}
        self._recent: set[int] = set(recent)
        # UIDs the store no longer has but the client has not been told of yet.
        self._gone: set[int] = set()
        self._keywords = frozenset(keywords) | self._unannounced
        self._unannounced.clear()
        # The UIDs a SEARCH RETURN (SAVE) kept (RFC 5182 section 2.1): empty until
        # one does; a new selection starts a new view, so SELECT, EXAMINE, CLOSE
        # and UNSELECT reset it.
        self.search_result: list[int] = []

    # -- the sequence map ----------------------------------------------------

    def search_result_set(self, *, uid: bool) -> SequenceSet:
        """The saved search result (``$``) by UID or by sequence number now: a message
        whose expunge the client was told of has left it (RFC 5182 section 2.1).
        Empty is a valid set that names no message."""
        present = ((u, self.seq_of(u)) for u in self.search_result)
        return SequenceSet.from_numbers(u if uid else seq for u, seq in present if seq is not None)

    @property
    def exists(self) -> int:
        return len(self._uids)

    @property
    def recent_count(self) -> int:
        return len(self._recent)

    @property
    def uids(self) -> Sequence[int]:
        return self._uids

    @property
    def largest_uid(self) -> int:
        return self._uids[-1] if self._uids else 0

    def uid_of(self, seq: int) -> int:
        return self._uids[seq - 1]

    def seq_of(self, uid: int) -> int | None:
        index = bisect.bisect_left(self._uids, uid)
        if index < len(self._uids) and self._uids[index] == uid:
            return index + 1
        return None

    def flags_of(self, uid: int) -> tuple[str, ...]:
        return self._flags[uid]

    def is_recent(self, uid: int) -> bool:
        return uid in self._recent

    def is_expunged(self, uid: int) -> bool:
        """Still in the map but already gone from the store (not yet announced)."""
        return uid in self._gone

    @property
    def has_pending_expunges(self) -> bool:
        return bool(self._gone)

    def uids_between(self, low: int, high: int) -> Sequence[int]:
        """The UIDs in the map from ``low`` to ``high`` inclusive, in order."""
        return self._uids[
            bisect.bisect_left(self._uids, low) : bisect.bisect_right(self._uids, high)
        ]

    @property
    def keywords(self) -> tuple[str, ...]:
        """The keywords the client was last told of in FLAGS, sorted."""
        return tuple(sorted(self._keywords))

    @property
    def keyword_room(self) -> bool:
        """Whether the last PERMANENTFLAGS offered ``\\*`` (new keywords allowed)."""
        return self._keyword_room

    @property
    def has_unannounced_keywords(self) -> bool:
        """Whether a cached message has a keyword the client was not told of yet."""
        return bool(self._unannounced)

    def announce_keywords(self, mailbox_keywords: Iterable[str], *, room: bool) -> bool:
        """Take in the mailbox's keyword set; True when the client must be sent FLAGS
        and PERMANENTFLAGS again (:attr:`keywords`, :attr:`keyword_room`).

        The announced set only grows: it keeps every keyword the client was
        told of and adds the mailbox's and any a cached message has.
        """
        wanted = self._keywords | self._unannounced | frozenset(mailbox_keywords)
        self._unannounced.clear()
        changed = wanted != self._keywords or room != self._keyword_room
        self._keywords, self._keyword_room = wanted, room
        return changed

    def known_through(self, pairs: Iterable[tuple[int, int]]) -> int:
        """QRESYNC's message sequence match data (RFC 7162 section 3.2.5.2): the UID of
        the last of the client's (number, UID) pairs, taken in order, that all
        match this view; the client knows every expunge up to it (0: none)."""
        through = 0
        for seq, uid in pairs:
            if not 0 < seq <= len(self._uids) or self._uids[seq - 1] != uid:
                break
            through = uid
        return through

    def first_unseen(self) -> int | None:
        for seq, uid in enumerate(self._uids, start=1):
            if "\\Seen" not in self._flags[uid]:
                return seq
        return None

    # -- changes -------------------------------------------------------------

    def _share(self, flags: tuple[str, ...]) -> tuple[str, ...]:
        shared = self._shared.get(flags)
        if shared is None:
            # A combination seen before had its keywords noted then; the
            # announced set only grows, so they are announced or still noted.
            shared = self._shared[flags] = flags
            self._unannounced.update(
                f for f in flags if not f.startswith("\\") and f not in self._keywords
            )
        return shared

    def set_flags(self, uid: int, flags: tuple[str, ...]) -> None:
        """Record flags this session itself just stored (and already reported)."""
        if uid in self._flags:
            self._flags[uid] = self._share(flags)

    def release_expunges(self) -> Updates:
        """Drop the vanished messages from the map; their EXPUNGE numbers, highest first
        (so the numbers of the messages still to go do not shift)."""
        updates = Updates()
        for index in range(len(self._uids) - 1, -1, -1):
            uid = self._uids[index]
            if uid in self._gone:
                updates.expunged.append((index + 1, uid))
                del self._uids[index]
                del self._flags[uid]
                self._recent.discard(uid)
        self._gone.clear()
        return updates

    def missing(self, live: Iterable[int]) -> list[int]:
        """The UIDs of the view that are not among ``live``: expunged meanwhile."""
        present = set(live)
        return [uid for uid in self._uids if uid not in present]

    def apply(
        self,
        changed: Iterable[Snapshot],
        expunged: Iterable[int],
        *,
        allow_expunge: bool,
        recent: Iterable[int] = (),
        keywords: Iterable[str] = (),
        keyword_room: bool | None = None,
    ) -> Updates:
        """Take in what changed since the view was current and return what to announce.

        ``changed`` are the messages (in UID order) whose flags may have changed
        or that are new; ``expunged`` the UIDs expunged meanwhile (any not in the
        view are ignored). ``recent`` are the new UIDs this session claimed as
        ``\\Recent``; ``keywords`` and ``keyword_room`` are the mailbox's keyword
        set and whether it may grow, read just before (None: unchanged). With
        ``allow_expunge`` false, expunged messages stay in the map (their data
        can no longer be fetched) until a later update allows it.
        """
        self._gone.update(uid for uid in expunged if uid in self._flags)
        updates = self.release_expunges() if allow_expunge else Updates()
        largest = self.largest_uid
        new: list[Snapshot] = []
        for message in changed:
            uid = message.uid
            if uid > largest:
                new.append(message)
            elif uid not in self._gone and message.flags != self._flags.get(uid, message.flags):
                self._flags[uid] = self._share(message.flags)
                updates.flags.append((self.seq_of(uid) or 0, uid, message.flags, message.modseq))
        if new:
            self._recent.update(recent)
            for message in new:
                self._uids.append(message.uid)
                self._flags[message.uid] = self._share(message.flags)
            # Never an EXISTS that lowers the count: only EXPUNGE may (RFC 3501 5.2).
            updates.exists = len(self._uids)
            updates.recent = len(self._recent)
        room = self._keyword_room if keyword_room is None else keyword_room
        if self.announce_keywords(keywords, room=room):
            updates.keywords = self.keywords
        return updates
