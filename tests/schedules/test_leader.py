"""Which replica fires: the one that holds the lock starts firing, stops when it loses it, and releases
it when it stops (gitops.schedules.leader). The lock's answers are scripted; sleeping is fake."""

from __future__ import annotations

import asyncio

import pytest

from gitops.schedules.leader import lead_while_holding

from .harness import in_loop

pytestmark = pytest.mark.timeout(10)


class ScriptedLock:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.released = 0

    def try_hold(self) -> bool:
        return self.answers.pop(0) if self.answers else True

    def release(self) -> None:
        self.released += 1


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start_firing(self) -> None:
        self.calls.append("start")

    def reconcile(self) -> None:
        self.calls.append("reconcile")

    def stop_firing(self) -> None:
        self.calls.append("stop")


@in_loop
async def test_fires_only_while_holding_and_releases_on_stop() -> None:
    lock = ScriptedLock([False, True, True, False, False, True])
    scheduler = Recorder()
    periods: list[float] = []
    done = asyncio.Event()

    async def sleep(seconds: float) -> None:
        periods.append(seconds)
        if len(periods) == 7:
            done.set()
            await asyncio.Event().wait()  # parked until cancelled
        await asyncio.sleep(0)

    task = asyncio.create_task(lead_while_holding(lock, scheduler, 5.0, sleep))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert scheduler.calls == ["start", "reconcile", "stop", "start", "reconcile", "stop"]
    assert periods == [5.0] * 7
    assert lock.released == 1


@in_loop
async def test_a_follower_that_stops_releases_nothing() -> None:
    lock = ScriptedLock([False] * 10)
    scheduler = Recorder()
    asked = asyncio.Event()

    async def sleep(seconds: float) -> None:
        if len(lock.answers) <= 7:  # asked three times
            asked.set()
        await asyncio.sleep(0)

    task = asyncio.create_task(lead_while_holding(lock, scheduler, 5.0, sleep))
    await asyncio.wait_for(asked.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert scheduler.calls == [] and lock.released == 0
