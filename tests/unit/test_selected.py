"""The per-session view of a selected mailbox: sequence numbers, flags, expunges."""

from __future__ import annotations

from typing import Any

from lightmail.imap.selected import SelectedMailbox, Snapshot, Updates
from lightmail.imap.wire.types import SequenceSet


def snap(*uids: int, flags: dict[int, tuple[str, ...]] | None = None) -> list[Snapshot]:
    """Messages whose mod-sequence is their UID plus 100 when flagged, else the UID."""
    flags = flags or {}
    return [Snapshot(uid, flags.get(uid, ()), uid + 100 * (uid in flags)) for uid in uids]


def update(view: SelectedMailbox, snapshot: list[Snapshot], **options: Any) -> Updates:
    """A snapshot of every message, as the session reads one when the store no longer
    records every expunge: all of it may have changed, what it lacks is expunged."""
    return view.apply(snapshot, view.missing(m.uid for m in snapshot), **options)


def test_sequence_map() -> None:
    view = SelectedMailbox(1, snap(3, 7, 9), readonly=False, recent=[9])
    assert (view.exists, view.recent_count, view.largest_uid) == (3, 1, 9)
    assert [view.uid_of(n) for n in (1, 2, 3)] == [3, 7, 9]
    assert (view.seq_of(7), view.seq_of(8)) == (2, None)
    assert view.first_unseen() == 1


def test_expunges_are_numbered_as_the_client_sees_them_when_sent() -> None:
    view = SelectedMailbox(1, snap(1, 2, 3, 4, 5), readonly=False)
    updates = update(view, snap(1, 3, 5), allow_expunge=True)
    # Highest first: each number is valid at the moment its response is sent.
    assert updates.expunged == [(4, 4), (2, 2)]
    assert updates.exists is None
    assert list(view.uids) == [1, 3, 5]


def test_expunges_wait_while_not_allowed_then_are_announced() -> None:
    view = SelectedMailbox(1, snap(1, 2, 3), readonly=False)
    held = update(view, snap(1, 3, 4), allow_expunge=False)
    assert held.expunged == []
    assert (held.exists, list(view.uids)) == (4, [1, 2, 3, 4])
    assert view.is_expunged(2)
    later = update(view, snap(1, 3, 4), allow_expunge=True)
    assert later.expunged == [(2, 2)]
    assert list(view.uids) == [1, 3, 4]


def test_new_messages_and_flag_changes() -> None:
    view = SelectedMailbox(1, snap(1, 2), readonly=False)
    updates = update(view, snap(1, 2, 3, flags={2: ("\\Seen",)}), allow_expunge=True, recent=[3])
    assert updates.flags == [(2, 2, ("\\Seen",), 102)]
    assert (updates.exists, updates.recent) == (3, 1)
    assert view.is_recent(3)
    assert not update(view, snap(1, 2, 3, flags={2: ("\\Seen",)}), allow_expunge=True)


def test_own_store_is_not_reported_back() -> None:
    view = SelectedMailbox(1, snap(1), readonly=False)
    view.set_flags(1, ("\\Flagged",))
    assert not update(view, snap(1, flags={1: ("\\Flagged",)}), allow_expunge=True)


def test_keywords_start_as_the_mailbox_set_plus_those_messages_have() -> None:
    # "$Late" was stored between reading the mailbox row and the messages.
    view = SelectedMailbox(
        1,
        snap(1, 2, flags={2: ("\\Seen", "$Late")}),
        readonly=False,
        keywords=["$Old", "$Junk"],
        keyword_room=False,
    )
    assert view.keywords == ("$Junk", "$Late", "$Old")
    assert not view.keyword_room
    assert not view.has_unannounced_keywords


def test_another_sessions_new_keyword_is_announced_with_its_flag_change() -> None:
    view = SelectedMailbox(1, snap(1, 2), readonly=False, keywords=["$Junk"])
    updates = update(
        view, snap(1, 2, flags={1: ("$Label1",)}), allow_expunge=True, keywords=["$Junk", "$Label1"]
    )
    assert updates.keywords == ("$Junk", "$Label1")
    assert updates.flags == [(1, 1, ("$Label1",), 101)]
    # Told once: the same set again announces nothing.
    assert not update(
        view, snap(1, 2, flags={1: ("$Label1",)}), allow_expunge=True, keywords=["$Junk", "$Label1"]
    )


def test_a_keyword_seen_only_on_a_message_is_announced_too() -> None:
    # The mailbox row was read before another session defined "$New".
    view = SelectedMailbox(1, snap(1), readonly=False)
    updates = update(view, snap(1, 2, flags={2: ("$New",)}), allow_expunge=True, keywords=[])
    assert (updates.keywords, updates.exists) == (("$New",), 2)


def test_own_store_of_a_new_keyword_waits_to_be_announced() -> None:
    view = SelectedMailbox(1, snap(1, 2), readonly=False, keywords=["a"])
    pending = []
    view.set_flags(1, ("\\Seen",))
    pending.append(view.has_unannounced_keywords)
    view.set_flags(1, ("\\Seen", "b"))
    pending.append(view.has_unannounced_keywords)
    assert view.announce_keywords(["a", "b"], room=True)
    pending.append(view.has_unannounced_keywords)
    assert view.keywords == ("a", "b")
    # A second message with the same flags brings nothing new to announce.
    view.set_flags(2, ("\\Seen", "b"))
    pending.append(view.has_unannounced_keywords)
    assert pending == [False, True, False, False]
    assert not view.announce_keywords(["a", "b"], room=True)


def test_announced_keywords_only_grow_and_room_changes_are_announced() -> None:
    view = SelectedMailbox(1, snap(1, flags={1: ("a",)}), readonly=False, keywords=["a", "b"])
    # The mailbox dropped "b" (unused) to make room for "c", and is full now.
    updates = update(
        view,
        snap(1, flags={1: ("a", "c")}),
        allow_expunge=True,
        keywords=["a", "c"],
        keyword_room=False,
    )
    rooms = [view.keyword_room]
    assert updates.keywords == ("a", "b", "c")
    # Room again with the same keywords: PERMANENTFLAGS must change (\* is back).
    updates = update(view, snap(1, flags={1: ("a", "c")}), allow_expunge=True, keyword_room=True)
    rooms.append(view.keyword_room)
    assert updates.keywords == ("a", "b", "c")
    assert rooms == [False, True]
    # Without news of the mailbox (keyword_room None), nothing changes.
    assert not update(view, snap(1, flags={1: ("a", "c")}), allow_expunge=True)


def test_known_through_is_the_last_of_the_matching_pairs_in_order() -> None:
    """QRESYNC's sequence match data (RFC 7162 section 3.2.5.2): up to the first pair
    that does not match the view."""
    view = SelectedMailbox(1, snap(1, 3, 4, 6, 8), readonly=False)
    assert view.known_through([]) == 0
    assert view.known_through([(1, 1), (2, 3), (4, 6)]) == 6
    # Its message 3 was UID 3 (gone since): nothing past UID 3 is known.
    assert view.known_through([(1, 1), (2, 3), (3, 3), (5, 8)]) == 3
    assert view.known_through([(1, 2), (2, 3)]) == 0
    assert view.known_through([(6, 9)]) == 0  # past the end
    assert view.known_through([(0, 1)]) == 0


def test_changes_alone_give_what_a_full_snapshot_gives() -> None:
    """``apply`` with only the changed messages and the expunged UIDs announces what
    ``update`` with every message would; expunged UIDs the view never had, or has
    dropped already, are ignored, and a held expunge's flag change is not told."""
    full = SelectedMailbox(1, snap(1, 2, 3, 4), readonly=False)
    changes = SelectedMailbox(1, snap(1, 2, 3, 4), readonly=False)
    after = snap(1, 3, 4, 5, flags={3: ("\\Seen",)})
    expected = update(full, after, allow_expunge=True, recent=[5])
    got = changes.apply(snap(3, 5, flags={3: ("\\Seen",)}), [2, 9], allow_expunge=True, recent=[5])
    assert got == expected
    assert list(changes.uids) == list(full.uids) == [1, 3, 4, 5]

    held = changes.apply(snap(4, flags={4: ("\\Flagged",)}), [4, 2], allow_expunge=False)
    assert (held.expunged, held.flags) == ([], [])
    assert changes.is_expunged(4)
    assert changes.apply([], [], allow_expunge=True).expunged == [(3, 4)]


def test_the_saved_search_result_keeps_its_messages_until_their_expunge_is_told() -> None:
    """RFC 5182 section 2.1: ``$`` follows the numbering the client sees."""
    view = SelectedMailbox(1, snap(3, 7, 9, 12), readonly=False)
    assert view.search_result_set(uid=True) == SequenceSet(())
    view.search_result = [7, 9, 12]
    assert view.search_result_set(uid=False).to_bytes() == b"2:4"
    update(view, snap(3, 12), allow_expunge=False)  # held back: still numbered
    assert view.search_result_set(uid=False).to_bytes() == b"2:4"
    update(view, snap(3, 12), allow_expunge=True)
    assert view.search_result_set(uid=False).to_bytes() == b"2"
    assert view.search_result_set(uid=True).to_bytes() == b"12"
