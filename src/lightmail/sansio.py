"""What every sans-I/O protocol receiver shares (IMAP, LMTP, later POP3).

A receiver takes bytes with ``receive_data`` and returns events from
``next_event``; these two sentinels are the events that carry no data.
"""

from __future__ import annotations

import enum


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"
    CONNECTION_CLOSED = "CONNECTION_CLOSED"


NEED_DATA = Sentinel.NEED_DATA
"""Feed more bytes with ``receive_data`` before asking again."""
CONNECTION_CLOSED = Sentinel.CONNECTION_CLOSED
"""The peer closed (``receive_data(b"")``), or the receiver cannot go on; anything
in progress is abandoned."""


class LocalProtocolError(Exception):
    """The caller used a receiver out of turn or built a reply wrongly: our bug,
    never the peer's."""
