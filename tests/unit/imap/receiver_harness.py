"""The harness of the IMAP receiver tests: bytes in, events out, however split.

Every transcript is fed whole, one byte at a time and split at every position
(sampled for long ones) and must give the same events; consecutive
``LiteralChunk`` events are merged first since their boundaries follow the
reads. The session side is simulated by ``_react``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator

from lightmail.imap.wire.commands import (
    AppendCommand,
    AppendMessage,
    AuthenticateCommand,
    CatenateText,
    IdleCommand,
    NoopCommand,
)
from lightmail.imap.wire.receiver import (
    CONNECTION_CLOSED,
    NEED_DATA,
    BadCommand,
    Event,
    LiteralChunk,
    Receiver,
)
from lightmail.imap.wire.types import (
    STAR,
    SequenceSet,
)

MAX_APPEND = 1 << 20
SMALL = {"max_line": 1024, "max_literal": 1024, "max_append": MAX_APPEND}

# --------------------------------------------------------------------------- harness

React = Callable[[Receiver, Event], None]


def _react(r: Receiver, event: Event) -> None:
    """What a session does after each event (accept APPENDs it can take)."""
    if isinstance(event, AppendCommand | AppendMessage) and event.catenate:
        return  # parts follow, no literal of its own
    if isinstance(event, AppendCommand | AppendMessage | CatenateText):
        if event.size <= MAX_APPEND:
            r.accept_literal()
        else:
            r.reject_literal()
    elif isinstance(event, IdleCommand):
        r.start_idle()
    elif isinstance(event, AuthenticateCommand) and event.initial_response is None:
        r.expect_sasl_response()


def _reject(r: Receiver, event: Event) -> None:
    if isinstance(event, AppendCommand | AppendMessage) and event.catenate:
        return
    if isinstance(event, AppendCommand | AppendMessage | CatenateText):
        r.reject_literal()
    else:
        _react(r, event)


def _merge(events: list[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        if isinstance(event, LiteralChunk) and merged and isinstance(merged[-1], LiteralChunk):
            merged[-1] = LiteralChunk(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def run(
    chunks: Iterable[bytes],
    *,
    eof: bool = False,
    react: React = _react,
    limits: dict[str, int] | None = None,
) -> list[Event]:
    r = Receiver(**(limits or {"max_append": MAX_APPEND}))
    events: list[Event] = []

    def drain() -> bool:
        for _ in range(100_000):  # a bound, so a receiver bug cannot hang the tests
            event = r.next_event()
            if event is NEED_DATA:
                return True
            events.append(event)
            if event is CONNECTION_CLOSED:
                return False
            react(r, event)
        raise AssertionError("next_event never returned NEED_DATA")

    for chunk in chunks:
        if not chunk:  # b"" would mean EOF
            continue
        r.receive_data(chunk)
        if not drain():
            return _merge(events)
    if eof:
        r.receive_data(b"")
        drain()
    return _merge(events)


def splits(data: bytes, *, exhaustive: bool) -> Iterator[list[bytes]]:
    yield [data]
    if exhaustive:
        yield [data[i : i + 1] for i in range(len(data))]
        positions: Iterable[int] = range(1, len(data))
    else:
        rng = random.Random(len(data))
        positions = sorted(rng.sample(range(1, len(data)), min(20, len(data) - 1)))
        yield [data[i : i + 997] for i in range(0, len(data), 997)]
    for i in positions:
        yield [data[:i], data[i:]]


def check(
    data: bytes,
    *,
    eof: bool = False,
    react: React = _react,
    limits: dict[str, int] | None = None,
) -> list[Event]:
    """Events for ``data``, asserting they are the same for every way of splitting it."""
    expected = run([data], eof=eof, react=react, limits=limits)
    for chunks in splits(data, exhaustive=len(data) <= 600):
        assert run(chunks, eof=eof, react=react, limits=limits) == expected, chunks
    return expected


def one(data: bytes) -> Event:
    events = check(data)
    assert len(events) == 1, events
    return events[0]


def seq(*ranges: tuple[int | str, int | str]) -> SequenceSet:
    return SequenceSet(tuple((STAR if a == "*" else a, STAR if b == "*" else b) for a, b in ranges))  # type: ignore[misc]


def bad(data: bytes) -> BadCommand:
    """``data`` is one bad command; the receiver then still parses the next one."""
    events = check(data + b"zz9 NOOP\r\n")
    assert events[-1] == NoopCommand(b"zz9"), events
    bads = [e for e in events if isinstance(e, BadCommand)]
    assert len(bads) == 1, events
    assert len(events) in (2, 3), events  # maybe a ContinuationRequest before the BAD
    assert not bads[0].fatal
    return bads[0]
