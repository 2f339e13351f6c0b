"""TimeSlice gives way to the event loop once its slice is used up, and only then."""

from __future__ import annotations

import asyncio
import contextlib

from lightmail.fairness import TimeSlice


async def _steps_of_other_task_during(turn: TimeSlice, pauses: int) -> int:
    steps = 0

    async def other() -> None:
        nonlocal steps
        while True:
            steps += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    await asyncio.sleep(0)  # let it start
    before = steps
    for _ in range(pauses):
        await turn.pause()
    ran = steps - before
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return ran


async def test_a_used_up_slice_lets_other_tasks_run_at_each_pause() -> None:
    assert await _steps_of_other_task_during(TimeSlice(0.0), 5) == 5


async def test_within_its_slice_a_loop_keeps_the_event_loop() -> None:
    assert await _steps_of_other_task_during(TimeSlice(3600.0), 5) == 0
