"""The notification bus: how sessions learn that a mailbox changed.

Events are hints, not a log: a subscriber that receives one re-reads the state
it cares about from the mailstore. So a slow subscriber whose queue is full may
miss an event without losing a change, because an earlier unread event will
make it look again. The in-process bus serves one node; a Redis bus with the
same interface serves several; between the worker processes of one node,
the supervisor relays (:mod:`lightmail.workers`).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol


class ChangeKind(enum.Enum):
    MESSAGES_ADDED = "added"
    MESSAGES_EXPUNGED = "expunged"
    FLAGS_CHANGED = "flags"
    MAILBOXES_CHANGED = "mailboxes"
    # Anything of the user's may have changed: the bus may have lost events (Redis
    # was unreachable), so every session of the user re-reads what it shows.
    RESYNC = "resync"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    user_id: int
    kind: ChangeKind
    mailbox_id: int | None = None  # None for changes to the mailbox list itself
    modseq: int = 0  # the mailbox's HIGHESTMODSEQ after the change, when known

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-compatible values, for another process."""
        return {
            "user_id": self.user_id,
            "kind": self.kind.value,
            "mailbox_id": self.mailbox_id,
            "modseq": self.modseq,
        }

    def concerns(self, mailbox_id: int) -> bool:
        """Whether a session with ``mailbox_id`` selected must look at it again."""
        return self.mailbox_id == mailbox_id or self.kind is ChangeKind.RESYNC

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChangeEvent:
        """The event :meth:`to_dict` gave."""
        return cls(data["user_id"], ChangeKind(data["kind"]), data["mailbox_id"], data["modseq"])


class NotificationBus(Protocol):
    description: str

    @property
    def live(self) -> bool:
        """Whether events reach subscribers as changes happen; False while they are
        lost (Redis unreachable) and subscribers get a RESYNC hint every poll interval."""
        ...

    async def publish(self, event: ChangeEvent) -> None: ...

    def subscription(self, user_id: int) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to one user's events for the duration of an ``async with``."""
        ...

    async def close(self) -> None: ...


class Subscription:
    """A bounded list of one user's events, and who to wake when one comes.

    A session's connection waits for its client and for these events with one
    read: ``waker`` (while it is set, e.g. :meth:`Connection.wake` during IDLE)
    is called on each event, so no task of its own waits for them.
    """

    def __init__(self, user_id: int, maxsize: int = 256) -> None:
        self.user_id = user_id
        self.waker: Callable[[], None] | None = None
        self._maxsize = maxsize
        self._events: list[ChangeEvent] = []

    def offer(self, event: ChangeEvent) -> None:
        # A full list already holds unread hints; dropping this one loses nothing.
        if len(self._events) < self._maxsize:
            self._events.append(event)
        if self.waker is not None:
            self.waker()

    @property
    def pending(self) -> bool:
        return bool(self._events)

    def drain(self) -> list[ChangeEvent]:
        """Every event waiting now, without blocking."""
        events, self._events = self._events, []
        return events


class InProcessNotificationBus:
    """Delivers events to subscribers in this process only."""

    description = "in-process"

    @property
    def live(self) -> bool:
        return True  # nothing between publisher and subscribers to lose events

    def __init__(self) -> None:
        self._subscribers: dict[int, set[Subscription]] = {}

    async def publish(self, event: ChangeEvent) -> None:
        for subscription in self._subscribers.get(event.user_id, ()):
            subscription.offer(event)

    @asynccontextmanager
    async def subscription(self, user_id: int) -> AsyncIterator[Subscription]:
        subscription = Subscription(user_id)
        self._subscribers.setdefault(user_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            remaining = self._subscribers[user_id]
            remaining.discard(subscription)
            if not remaining:
                del self._subscribers[user_id]

    def resync(self) -> None:
        """Give every subscriber a RESYNC hint: events may have been lost."""
        for user_id, subscriptions in self._subscribers.items():
            hint = ChangeEvent(user_id, ChangeKind.RESYNC)
            for subscription in subscriptions:
                subscription.offer(hint)

    async def close(self) -> None:
        self._subscribers.clear()
