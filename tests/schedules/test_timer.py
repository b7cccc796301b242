"""APScheduler really wakes the core: a fire missed before the start is decided at once, and the next
wake-up is the schedule's next fire time. Waits on events, never on the clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitops.schedules.firing import Fired
from gitops.schedules.policy import Outcome
from runner.cron import cron_rule
from tests.fakes.clock import FakeTime

from .harness import Harness, in_loop, schedule

pytestmark = pytest.mark.timeout(30)


@in_loop
async def test_a_missed_fire_wakes_the_core_at_start_and_the_timer_waits_for_the_next(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "store.sqlite3", FakeTime())
    harness.scheduler.clock = time.time
    fired: asyncio.Queue[Fired] = asyncio.Queue()
    write = harness.runs.fire

    async def fire(decisions: Sequence[Fired]) -> list[str | None]:
        run_ids = await write(decisions)
        for decision in decisions:
            await fired.put(decision)
        return run_ids

    harness.runs.fire = fire  # type: ignore[method-assign]
    await harness.register(schedule("0 * * * *", deadline=7200))
    record = harness.scheduler.book.schedule("pipelines")
    assert record is not None
    await harness.scheduler.book.save(replace(record, since=time.time() - 3 * 3600))  # down for 3 h

    harness.scheduler.start_firing()
    try:
        decision = await asyncio.wait_for(fired.get(), 10)
        assert [entry.outcome for entry in decision.entries] == [Outcome.MISSED, Outcome.QUEUED]
        latest = cron_rule("0 * * * *").fire_times(datetime.fromtimestamp(time.time() - 3600, UTC), 1)[0]
        assert decision.entries[-1].scheduled_for == latest.timestamp()
        assert harness.scheduler.timer is not None
        armed = harness.scheduler.timer.armed()
        assert armed == {"UTC 0 * * * *": cron_rule("0 * * * *").next_fire(datetime.now(UTC))}
        assert fired.empty()
    finally:
        harness.scheduler.stop_firing()
        harness.close()
