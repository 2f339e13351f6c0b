"""The per-session view of a selected mailbox: sequence numbers, flags, expunges."""

from __future__ import annotations

from lightmail.imap.selected import SelectedMailbox, Snapshot


def snap(*uids: int, flags: dict[int, tuple[str, ...]] | None = None) -> list[Snapshot]:
    flags = flags or {}
    return [Snapshot(uid, flags.get(uid, ())) for uid in uids]


def test_sequence_map() -> None:
    view = SelectedMailbox(1, snap(3, 7, 9), readonly=False, recent=[9])
    assert (view.exists, view.recent_count, view.largest_uid) == (3, 1, 9)
    assert [view.uid_of(n) for n in (1, 2, 3)] == [3, 7, 9]
    assert (view.seq_of(7), view.seq_of(8)) == (2, None)
    assert view.first_unseen() == 1


def test_expunges_are_numbered_as_the_client_sees_them_when_sent() -> None:
    view = SelectedMailbox(1, snap(1, 2, 3, 4, 5), readonly=False)
    updates = view.update(snap(1, 3, 5), allow_expunge=True)
    # Highest first: each number is valid at the moment its response is sent.
    assert updates.expunged == [4, 2]
    assert updates.exists is None
    assert list(view.uids) == [1, 3, 5]


def test_expunges_wait_while_not_allowed_then_are_announced() -> None:
    view = SelectedMailbox(1, snap(1, 2, 3), readonly=False)
    held = view.update(snap(1, 3, 4), allow_expunge=False)
    assert held.expunged == []
    assert (held.exists, list(view.uids)) == (4, [1, 2, 3, 4])
    assert view.is_expunged(2)
    later = view.update(snap(1, 3, 4), allow_expunge=True)
    assert later.expunged == [2]
    assert list(view.uids) == [1, 3, 4]


def test_new_messages_and_flag_changes() -> None:
    view = SelectedMailbox(1, snap(1, 2), readonly=False)
    updates = view.update(snap(1, 2, 3, flags={2: ("\\Seen",)}), allow_expunge=True, recent=[3])
    assert updates.flags == [(2, 2, ("\\Seen",))]
    assert (updates.exists, updates.recent) == (3, 1)
    assert view.is_recent(3)
    assert not view.update(snap(1, 2, 3, flags={2: ("\\Seen",)}), allow_expunge=True)


def test_own_store_is_not_reported_back() -> None:
    view = SelectedMailbox(1, snap(1), readonly=False)
    view.set_flags(1, ("\\Flagged",))
    assert not view.update(snap(1, flags={1: ("\\Flagged",)}), allow_expunge=True)
