"""The firing core on the real store with fake time: a clock the test moves, and the run queue's
service side played by the store itself (queue, mark running, cancel), without the HTTP service."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops.schedules.firing import Activity, Fired, HeadError, Scheduler
from gitops.schedules.model import HistoryEntry, Registration
from gitops.schedules.service import _StoreBook
from gitops.status import RunStatus
from gitops.store import RunRecord, Store
from runner.schedule import ConcurrencyPolicy, Schedule
from tests.fakes.clock import FakeTime

HEAD = "c0ffee" + "0" * 34


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def stamp(epoch: float, zone: str = "UTC") -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(epoch, ZoneInfo(zone)).isoformat()


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async test run in an event loop of its own (the project has no asyncio pytest plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class FiringRecorder:
    """The scheduler as `lead_while_holding` drives it: records each call it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start_firing(self) -> None:
        self.calls.append("start")

    def reconcile(self) -> None:
        self.calls.append("reconcile")

    def stop_firing(self) -> None:
        self.calls.append("stop")


class StoreRuns:
    """The service side of the port, on the real store: runs are queued as a push queues them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.head_commit: str | None = HEAD
        self.cancelled: list[tuple[str, str]] = []
        self.crash_before_write = False

    def activity(self, environments: Sequence[str]) -> dict[str, Activity]:
        found = self.store.schedules.activity(environments)
        return {name: Activity(tuple(running), tuple(queued)) for name, (running, queued) in found.items()}

    async def head(self, repository: str, ref: str) -> str:
        if self.head_commit is None:
            raise HeadError(f"{ref} no longer exists in {repository.split(':', 1)[1]}")
        return self.head_commit

    async def fire(self, decisions: Sequence[Fired]) -> list[str | None]:
        if self.crash_before_write:
            raise RuntimeError("the service died before the decision was written")
        rows = [(fired.schedule_id, fired.since, fired.entries, fired.run) for fired in decisions]
        accepted = await asyncio.wrap_future(self.store.submit(self.store.schedules.record_fires, rows))
        return [None if queued is None else queued.run.id for queued in accepted]

    async def cancel(self, run_id: str, reason: str) -> None:
        self.cancelled.append((run_id, reason))
        self.store.finish(run_id, RunStatus.CANCELLED, reason)


class Harness:
    """A scheduler over the store at `path`; `restart()` gives a new one on the same file, as a
    restarted service would have."""

    def __init__(self, path: Path, clock: FakeTime) -> None:
        self.path = path
        self.clock = clock
        self.store = Store(path)
        self.runs = StoreRuns(self.store)
        self.scheduler = Scheduler(_StoreBook(self.store), self.runs, clock.clock)
        self.closed = False

    def restart(self) -> Harness:
        self.close()
        return Harness(self.path, self.clock)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.store.close()

    async def register(self, schedule: Schedule, environment: str = "pipelines") -> None:
        registration = Registration(
            environment, "github:acme/pipelines", "refs/heads/main", None, False, "bodywork.yaml", schedule
        )
        await self.scheduler.register(registration)

    async def advance(self, until: float, delay: float = 0.25) -> list[HistoryEntry]:
        """Plays the timer: wakes each schedule `delay` seconds after each of its fire times up to
        `until`, and returns what was recorded."""
        recorded: list[HistoryEntry] = []
        while True:
            wakeups = [
                (wake.timestamp(), record.id)
                for record in self.scheduler.book.schedules()
                if (wake := self.scheduler.next_wakeup(record)) is not None
            ]
            due = [(at, schedule_id) for at, schedule_id in wakeups if at + delay <= until]
            if not due:
                self.clock.now = max(self.clock.now, until)
                return recorded
            at, schedule_id = min(due)
            self.clock.now = max(self.clock.now, at + delay)
            recorded += await self.scheduler.fire_due(schedule_id)

    def runs_of(self, environment: str = "pipelines") -> list[RunRecord]:
        return list(reversed(self.store.list_runs(environment=environment)))

    def start_run(self, environment: str = "pipelines") -> str:
        """Queues a push-like run of `environment` and marks it running, as the dispatcher would."""
        from gitops.store import NewRun

        new = NewRun(
            "github:acme/pipelines",
            "github",
            "refs/heads/main",
            "f" * 40,
            environment,
            None,
            False,
            "deploy",
            "webhook",
        )
        run = self.store.accept(new, ())
        assert self.store.mark_running(run.run.id)
        return run.run.id


def schedule(
    cron: str, zone: str = "UTC", policy: str = "forbid", deadline: int | None = None, suspend: bool = False
) -> Schedule:
    return Schedule(cron, zone, ConcurrencyPolicy(policy), deadline, suspend)
