"""Change events cross process boundaries as plain values."""

from __future__ import annotations

import json

from lightmail.notify.bus import ChangeEvent, ChangeKind


def test_a_change_event_survives_json() -> None:
    for event in (
        ChangeEvent(7, ChangeKind.FLAGS_CHANGED, 12, 99),
        ChangeEvent(8, ChangeKind.MAILBOXES_CHANGED),
    ):
        assert ChangeEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event
