"""Long work in one session gives way to the others (issue #14).

All sessions of a node share one event loop: a SEARCH or FETCH over thousands of
messages that never awaits holds every other session, logins included, until it
is done. Such loops call :meth:`TimeSlice.pause` after each step; once the
loop has run for ``SLICE_SECONDS`` since it last gave way, ``pause`` yields to the
event loop, so other sessions' ready work runs in between.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["SLICE_SECONDS", "TimeSlice"]

SLICE_SECONDS = 0.002
"""How long a loop may keep the event loop before it gives way."""


class TimeSlice:
    """Gives way to the event loop every ``seconds`` of a loop's running time."""

    __slots__ = ("_seconds", "_since")

    def __init__(self, seconds: float = SLICE_SECONDS) -> None:
        self._seconds = seconds
        self._since = time.perf_counter()

    async def pause(self) -> None:
        """Yield to the event loop if this slice is used up; else return at once."""
        if time.perf_counter() - self._since >= self._seconds:
            await asyncio.sleep(0)
            self._since = time.perf_counter()
