"""Schedules firing with fake time against the real store: time zones across DST changes, restarts,
fires missed while the service was down, the concurrency policies, removal and suspension."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gitops.schedules.firing import Fired
from gitops.schedules.model import TRIGGER
from gitops.schedules.policy import Outcome
from gitops.status import RunStatus
from tests.fakes.clock import FakeTime

from .harness import HEAD, Harness, in_loop, schedule, stamp, utc

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path / "store.sqlite3", FakeTime(utc("2026-03-27T12:00")))
    yield made
    made.close()


@in_loop
async def test_fires_at_local_time_across_both_dst_changes_of_the_year(harness: Harness) -> None:
    await harness.register(schedule("30 1 * * *", "Europe/London", policy="allow"))
    recorded = await harness.advance(utc("2026-03-31T00:00"))
    harness.clock.now = utc("2026-10-23T12:00")
    harness = harness.restart()  # the summer passes with the service down and no deadline...
    recorded += await harness.advance(utc("2026-10-23T12:00"))
    harness.clock.now = utc("2026-10-23T12:00")
    recorded += await harness.advance(utc("2026-10-27T00:00"))
    fires = [(stamp(entry.scheduled_for, "Europe/London"), entry.outcome) for entry in recorded]
    assert fires == [
        ("2026-03-28T01:30:00+00:00", Outcome.QUEUED),
        ("2026-03-29T02:00:00+01:00", Outcome.QUEUED),  # 01:30 does not exist: when the clocks jump
        ("2026-03-30T01:30:00+01:00", Outcome.QUEUED),
        # ...so the summer's fires are recorded as missed and only the latest runs, once
        ("2026-10-22T01:30:00+01:00", Outcome.MISSED),
        ("2026-10-23T01:30:00+01:00", Outcome.QUEUED),
        ("2026-10-24T01:30:00+01:00", Outcome.QUEUED),
        ("2026-10-25T01:30:00+01:00", Outcome.QUEUED),  # 01:30 happens twice: fires once
        ("2026-10-26T01:30:00+00:00", Outcome.QUEUED),
    ]
    assert recorded[3].detail.startswith(
        "206 fires due from 2026-03-31 00:30:00 UTC to 2026-10-22 00:30:00 UTC"
    )
    harness.close()


@in_loop
async def test_every_fire_queues_a_run_of_the_branch_head_marked_as_scheduled(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *", policy="allow"))
    recorded = await harness.advance(utc("2026-03-27T14:30"))
    runs = harness.runs_of()
    assert [entry.run_id for entry in recorded] == [run.id for run in runs]
    assert [(run.trigger, run.commit, run.ref, run.state) for run in runs] == [
        (TRIGGER, HEAD, "refs/heads/main", RunStatus.SUPERSEDED),  # coalesced like a push's
        (TRIGGER, HEAD, "refs/heads/main", RunStatus.QUEUED),
    ]
    listed = harness.scheduler.describe(harness.scheduler.book.schedule("pipelines"))  # type: ignore[arg-type]
    assert listed["last_fire"] == "2026-03-27T14:00:00+00:00"
    assert listed["next_fire"] == "2026-03-27T15:00:00+00:00"
    assert (listed["last_outcome"], listed["last_run_id"]) == ("queued", runs[-1].id)


@in_loop
async def test_a_restart_between_two_fires_neither_doubles_nor_loses_one(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *"))
    first = await harness.advance(utc("2026-03-27T13:00:05"))
    harness = harness.restart()
    assert await harness.scheduler.fire_due("pipelines") == []  # 13:00 was decided before the restart
    harness.store.finish(first[0].run_id or "", RunStatus.SUCCEEDED)
    second = await harness.advance(utc("2026-03-27T14:00:05"))
    assert [(stamp(e.scheduled_for), e.outcome) for e in first + second] == [
        ("2026-03-27T13:00:00+00:00", Outcome.QUEUED),
        ("2026-03-27T14:00:00+00:00", Outcome.QUEUED),
    ]
    assert len(harness.runs_of()) == 2
    harness.close()


@in_loop
async def test_a_crash_before_the_decision_is_written_decides_it_again_after_the_restart(
    harness: Harness,
) -> None:
    await harness.register(schedule("0 * * * *", deadline=600))
    harness.runs.crash_before_write = True
    harness.clock.now = utc("2026-03-27T13:00:01")
    with pytest.raises(RuntimeError):
        await harness.scheduler.fire_due("pipelines")
    harness.clock.now = utc("2026-03-27T13:02:00")
    harness = harness.restart()
    recorded = await harness.scheduler.fire_due("pipelines")
    assert [(stamp(e.scheduled_for), e.outcome) for e in recorded] == [
        ("2026-03-27T13:00:00+00:00", Outcome.QUEUED)
    ]
    assert len(harness.runs_of()) == 1
    harness.close()


@pytest.mark.parametrize(
    ("back_at", "outcomes"),
    [
        ("2026-03-27T13:04:59", [Outcome.QUEUED]),
        ("2026-03-27T13:05:01", [Outcome.MISSED]),
        ("2026-03-27T15:03:00", [Outcome.MISSED, Outcome.QUEUED]),
        ("2026-03-27T15:06:00", [Outcome.MISSED]),
    ],
    ids=["within the deadline", "beyond it", "two hours down", "two hours down, beyond it"],
)
@in_loop
async def test_a_fire_missed_while_down_runs_once_within_the_deadline(
    harness: Harness, back_at: str, outcomes: list[Outcome]
) -> None:
    await harness.register(schedule("0 * * * *", deadline=300))
    harness.clock.now = utc(back_at)
    harness = harness.restart()
    recorded = await harness.scheduler.fire_due("pipelines")
    assert [entry.outcome for entry in recorded] == outcomes
    assert len(harness.runs_of()) == outcomes.count(Outcome.QUEUED)
    history = harness.store.schedules.history("pipelines")
    assert [entry.outcome for entry in reversed(history)] == outcomes
    missed = [entry for entry in history if entry.outcome is Outcome.MISSED]
    assert all("not" in entry.detail for entry in missed)
    harness.close()


@in_loop
async def test_forbid_skips_and_records_while_a_run_is_active(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *"))
    running = harness.start_run()
    recorded = await harness.advance(utc("2026-03-27T13:00:10"))
    assert [(e.outcome, e.run_id) for e in recorded] == [(Outcome.SKIPPED, None)]
    assert recorded[0].detail == (
        f"skipped (concurrency_policy forbid): run {running} of pipelines is running"
    )
    assert [run.id for run in harness.runs_of()] == [running]


@in_loop
async def test_replace_cancels_the_running_run_and_queues_its_own(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *", policy="replace"))
    running = harness.start_run()
    recorded = await harness.advance(utc("2026-03-27T13:00:10"))
    assert [entry.outcome for entry in recorded] == [Outcome.QUEUED]
    new = recorded[0].run_id
    assert harness.runs.cancelled == [(running, f"replaced by the scheduled run {new}")]
    states = {run.id: run.state for run in harness.runs_of()}
    assert states == {running: RunStatus.CANCELLED, new: RunStatus.QUEUED}


@in_loop
async def test_allow_queues_behind_the_running_run(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *", policy="allow"))
    running = harness.start_run()
    recorded = await harness.advance(utc("2026-03-27T13:00:10"))
    assert [entry.outcome for entry in recorded] == [Outcome.QUEUED]
    states = {run.id: run.state for run in harness.runs_of()}
    assert states == {running: RunStatus.RUNNING, recorded[0].run_id: RunStatus.QUEUED}
    assert harness.runs.cancelled == []


@in_loop
async def test_a_branch_that_is_gone_is_a_failed_fire_in_the_history(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *"))
    harness.runs.head_commit = None
    recorded = await harness.advance(utc("2026-03-27T13:00:10"))
    assert [(e.outcome, e.detail) for e in recorded] == [
        (Outcome.FAILED, "not run: refs/heads/main no longer exists in acme/pipelines")
    ]
    assert harness.runs_of() == []


@in_loop
async def test_a_removed_schedule_no_longer_fires_and_keeps_its_history(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *"))
    await harness.advance(utc("2026-03-27T13:00:10"))
    assert await harness.scheduler.unregister("pipelines")
    assert await harness.advance(utc("2026-03-28T00:00")) == []
    assert harness.scheduler.book.schedules() == []
    assert [e.outcome for e in harness.store.schedules.history("pipelines")] == [Outcome.QUEUED]
    assert await harness.scheduler.run_now("pipelines") is None


@in_loop
async def test_suspend_stops_fires_and_resuming_does_not_catch_up(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *", suspend=True))
    record = harness.scheduler.book.schedule("pipelines")
    assert record is not None and harness.scheduler.next_wakeup(record) is None
    assert harness.scheduler.describe(record)["next_fire"] is None
    assert await harness.advance(utc("2026-03-27T18:00")) == []
    harness.clock.now = utc("2026-03-27T18:30")
    assert await harness.scheduler.fire_due("pipelines") == []
    await harness.register(schedule("0 * * * *", suspend=False))
    recorded = await harness.advance(utc("2026-03-27T19:00:10"))
    assert [(stamp(e.scheduled_for), e.outcome) for e in recorded] == [
        ("2026-03-27T19:00:00+00:00", Outcome.QUEUED)
    ]


@in_loop
async def test_a_changed_cron_starts_afresh(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *"))
    harness.clock.now = utc("2026-03-27T15:30")
    await harness.register(schedule("45 * * * *"))
    recorded = await harness.advance(utc("2026-03-27T16:00"))
    assert [(stamp(e.scheduled_for), e.outcome) for e in recorded] == [
        ("2026-03-27T15:45:00+00:00", Outcome.QUEUED)
    ]


@in_loop
async def test_run_now_applies_the_policy_and_leaves_the_schedule_s_fires_alone(harness: Harness) -> None:
    await harness.register(schedule("0 * * * *"))
    harness.clock.now = utc("2026-03-27T12:10")
    now = await harness.scheduler.run_now("pipelines")
    assert now is not None and now.outcome is Outcome.QUEUED
    assert now.detail.startswith("run through the API; queued c0ffee0000")
    again = await harness.scheduler.run_now("pipelines")
    assert again is not None and again.outcome is Outcome.SKIPPED  # forbid: the first is queued
    harness.store.finish(now.run_id or "", RunStatus.SUCCEEDED)
    recorded = await harness.advance(utc("2026-03-27T13:00:10"))
    assert [e.outcome for e in recorded] == [Outcome.QUEUED]


@in_loop
async def test_schedules_sharing_an_expression_wake_together_and_are_written_in_one_transaction(
    harness: Harness,
) -> None:
    for environment in ("a", "b", "c"):
        await harness.register(schedule("0 * * * *"), environment)
    await harness.register(schedule("30 13 * * *"), "d")
    batches: list[list[str]] = []
    write = harness.runs.fire

    async def fire(decisions: Sequence[Fired]) -> list[str | None]:
        batches.append([decision.schedule_id for decision in decisions])
        return await write(decisions)

    harness.runs.fire = fire  # type: ignore[method-assign]
    harness.scheduler.start_firing()
    try:
        timer = harness.scheduler.timer
        assert timer is not None
        assert set(timer.armed()) == {"UTC 0 * * * *", "UTC 30 13 * * *"}  # two jobs, four schedules
        harness.clock.now = utc("2026-03-27T13:00:01")
        await harness.scheduler._wake_group("UTC 0 * * * *")  # what the timer calls at 13:00
        while harness.scheduler._batch is not None and not harness.scheduler._batch.done():
            await harness.scheduler._batch
        assert batches == [["a", "b", "c"]]
        assert [len(harness.runs_of(name)) for name in "abcd"] == [1, 1, 1, 0]
        await harness.scheduler.unregister("d")
        assert set(timer.armed()) == {"UTC 0 * * * *"}
    finally:
        harness.scheduler.stop_firing()
