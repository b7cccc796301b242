"""Which replica fires: the one that holds the lock starts firing, stops when it loses it, and releases
it when it stops (gitops.schedules.leader). The lock's answers are scripted; sleeping is fake."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gitops.schedules.leader import lead_while_holding

from .harness import FiringRecorder, in_loop

pytestmark = pytest.mark.timeout(10)


class ScriptedLock:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.released = 0

    def try_hold(self) -> bool:
        return self.answers.pop(0) if self.answers else True

    def release(self) -> None:
        self.released += 1


@in_loop
async def test_fires_only_while_holding_and_releases_on_stop() -> None:
    lock = ScriptedLock([False, True, True, False, False, True])
    scheduler = FiringRecorder()
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
    scheduler = FiringRecorder()
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


class SlowRenewal:
    """A lock whose renewal is on the wire until the test lets it answer."""

    def __init__(self) -> None:
        self.renewing = threading.Event()
        self.answer = threading.Event()
        self.events: list[str] = []

    def try_hold(self) -> bool:
        self.renewing.set()
        self.answer.wait(5)
        self.events.append("renewed")
        return True

    def release(self) -> None:
        self.events.append("released")


@in_loop
async def test_stopped_during_a_renewal_releases_after_it_not_before() -> None:
    lock = SlowRenewal()
    scheduler = FiringRecorder()
    task = asyncio.create_task(lead_while_holding(lock, scheduler, 5.0))
    await asyncio.to_thread(lock.renewing.wait, 5)
    task.cancel()  # the replica stops while its first renewal is still unanswered
    await asyncio.sleep(0)
    lock.answer.set()
    await asyncio.gather(task, return_exceptions=True)
    # Released after the renewal that took the Lease: otherwise it stays held until it expires.
    assert lock.events == ["renewed", "released"]
    assert "start" not in scheduler.calls  # it never fired
