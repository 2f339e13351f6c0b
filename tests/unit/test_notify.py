"""Change events cross process boundaries as plain values."""

from __future__ import annotations

import json

from lightmail.notify.bus import ChangeEvent, ChangeKind, InProcessNotificationBus


def test_a_change_event_survives_json() -> None:
    for event in (
        ChangeEvent(7, ChangeKind.FLAGS_CHANGED, 12, 99),
        ChangeEvent(8, ChangeKind.MAILBOXES_CHANGED),
    ):
        assert ChangeEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_a_resync_hint_concerns_every_mailbox() -> None:
    assert ChangeEvent(7, ChangeKind.FLAGS_CHANGED, 12).concerns(12)
    assert not ChangeEvent(7, ChangeKind.FLAGS_CHANGED, 12).concerns(13)
    assert not ChangeEvent(7, ChangeKind.MAILBOXES_CHANGED).concerns(13)
    assert ChangeEvent(7, ChangeKind.RESYNC).concerns(13)


async def test_resync_hints_every_subscription_once() -> None:
    bus = InProcessNotificationBus()
    assert bus.live
    async with (
        bus.subscription(1) as first,
        bus.subscription(1) as second,
        bus.subscription(2) as other,
    ):
        bus.resync()
        assert first.drain() == second.drain() == [ChangeEvent(1, ChangeKind.RESYNC)]
        assert other.drain() == [ChangeEvent(2, ChangeKind.RESYNC)]
