"""The firing core: registers schedules, decides each fire against the store, and queues the runs.

Time comes from a clock it is given, the store and the run queue through the two ports below, so the
tests drive it with fake time against the real store. :class:`~gitops.schedules.timer.Timer`
(APScheduler) only wakes the schedules of an expression at its fire times (and arming wakes those
whose fire was missed); every decision is made here, for all the schedules woken together at once:

* the fires due since the schedule's ``since`` are planned by :func:`~gitops.schedules.policy.plan_due`
  (the latest runs if still within the starting deadline, the others are recorded as missed);
* the concurrency policy decides between queueing, skipping and replacing;
* the decision, the schedule's new ``since`` and the queued run are written in ONE store transaction,
  so a restart at any point neither loses a fire (not written: decided again) nor doubles one (written:
  ``since`` has moved past it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from gitops.schedules.model import (
    TRIGGER,
    HistoryEntry,
    Registration,
    ScheduleRecord,
    iso,
    registration_json,
)
from gitops.schedules.policy import Action, Outcome, concurrency_action, missed_detail, plan_due
from gitops.schedules.timer import Timer, TimerGroups, group_key
from gitops.store import NewRun
from runner.cron import CronRule, cron_rule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Activity:
    """The runs of an environment that are running and queued (ids, oldest first)."""

    running: tuple[str, ...] = ()
    queued: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fired:
    """One decision, written in one transaction."""

    schedule_id: str
    since: float | None
    """The schedule's new ``since``; None for a run through the API (the schedule's fires go on)."""
    entries: tuple[HistoryEntry, ...]
    run: NewRun | None
    """The run to queue; the ``queued`` entry among `entries` gets its id."""


_Decision = tuple[Fired, tuple[str, ...]]
"""A fire to record, and the runs to cancel once it is (``replace``)."""


class HeadError(Exception):
    """The head of the deployed branch could not be found; the message says why."""


class ScheduleBook(Protocol):
    """The store's schedule tables."""

    def schedules(self) -> list[ScheduleRecord]: ...

    def schedule(self, schedule_id: str) -> ScheduleRecord | None: ...

    async def save(self, record: ScheduleRecord) -> None: ...

    async def delete(self, schedule_id: str) -> bool: ...


class RunQueue(Protocol):
    """The service's side: what runs, the branch heads, and queueing runs as a push does."""

    def activity(self, environments: Sequence[str]) -> dict[str, Activity]:
        """What each of `environments` runs (every one of them is a key)."""
        ...

    async def head(self, repository: str, ref: str) -> str:
        """The commit `ref` points at now; HeadError when it cannot be found."""
        ...

    async def fire(self, decisions: Sequence[Fired]) -> list[str | None]:
        """Writes `decisions` in one transaction (queueing their runs as a push would be); returns
        each one's queued run id."""
        ...

    async def cancel(self, run_id: str, reason: str) -> None: ...


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@functools.lru_cache(maxsize=4096)
def _rule(cron: str, timezone: str) -> CronRule:
    return cron_rule(cron, timezone)


def rule_of(record: ScheduleRecord) -> CronRule:
    schedule = record.registration.schedule
    return _rule(schedule.cron, schedule.timezone)


class Scheduler:
    def __init__(self, book: ScheduleBook, runs: RunQueue, clock: Callable[[], float] = time.time) -> None:
        self.book = book
        self.runs = runs
        self.clock = clock
        self.timer: Timer | None = None
        self._groups: TimerGroups | None = None
        self._lock = asyncio.Lock()
        self._pending: set[str] = set()
        self._batch: asyncio.Future[None] | None = None

    # -- registering (any replica) ------------------------------------------------------------------

    async def register(self, registration: Registration) -> ScheduleRecord:
        """Registers or updates the schedule of `registration`'s environment."""
        now = self.clock()
        existing = self.book.schedule(registration.id)
        if existing is None:
            record = ScheduleRecord(registration, since=now)
        else:
            record = existing.registered_as(registration, now)
        await self.book.save(record)
        if self.timer is not None:
            self._arm(record)
        return record

    async def unregister(self, schedule_id: str) -> bool:
        """Removes a schedule (declaration removed, environment torn down); False if there was none."""
        removed = await self.book.delete(schedule_id)
        self._disarm(schedule_id)
        return removed

    # -- firing (the one replica that leads) ----------------------------------------------------------

    def start_firing(self) -> None:
        """Arms every registered schedule and decides the fires missed while no replica fired; must
        be called on the running event loop."""
        if self.timer is None:
            self.timer = Timer(self._wake_group)
            self.timer.start()
            self._groups = TimerGroups(self.timer, lambda: _at(self.clock()))
        self.reconcile()

    def stop_firing(self) -> None:
        if self.timer is not None:
            self.timer.stop()
        self.timer = None
        self._groups = None

    async def close(self) -> None:
        """Stops firing and abandons a decision in progress: not written, it is made again after the
        restart (see the module docstring)."""
        self.stop_firing()
        self._pending.clear()
        if self._batch is not None and not self._batch.done():
            self._batch.cancel()
            await asyncio.gather(self._batch, return_exceptions=True)

    def reconcile(self) -> None:
        """Arms what the store holds and disarms what it no longer does (another replica may have
        registered or removed schedules)."""
        if self._groups is None:
            return
        records = self.book.schedules()
        for record in records:
            self._arm(record)
        for schedule_id in self._groups.placed() - {record.id for record in records}:
            self._groups.remove(schedule_id)

    def _arm(self, record: ScheduleRecord) -> None:
        """Puts the schedule in its timer group, and wakes it now if a fire is already due (it was
        missed while no replica fired)."""
        if self._groups is None:
            return
        schedule = record.registration.schedule
        if schedule.suspend:
            self._groups.place(record.id, None, None)
            return
        self._groups.place(record.id, group_key(schedule.cron, schedule.timezone), rule_of(record))
        wakeup = self.next_wakeup(record)
        if wakeup is not None and wakeup.timestamp() <= self.clock():
            self.wake(record.id)

    def _disarm(self, schedule_id: str) -> None:
        if self._groups is not None:
            self._groups.remove(schedule_id)

    def next_wakeup(self, record: ScheduleRecord) -> datetime | None:
        """The first fire after the schedule's ``since`` (in the past while a fire is to be decided);
        None when suspended or when it never fires again."""
        if record.registration.schedule.suspend:
            return None
        return rule_of(record).next_fire(_at(record.since))

    async def _wake_group(self, key: str) -> None:
        """The timer's call for a group of schedules sharing an expression."""
        if self._groups is not None:
            for schedule_id in self._groups.members(key):
                self.wake(schedule_id)

    def wake(self, schedule_id: str) -> None:
        """Decides `schedule_id`'s due fires soon. The schedules woken at one moment are decided
        together, in one store transaction (a thousand firing at 03:00 cost one commit)."""
        self._pending.add(schedule_id)
        if self._batch is None or self._batch.done():
            self._batch = asyncio.ensure_future(self._fire_pending())

    async def _fire_pending(self) -> None:
        await asyncio.sleep(0)  # the other wake-ups of this moment join the batch
        while self._pending:
            ids = sorted(self._pending)
            self._pending.clear()
            try:
                await self.fire_due_many(ids)
            except Exception:
                log.exception(
                    "deciding the due fires of %d schedules failed; their next wake-up retries", len(ids)
                )

    async def fire_due(self, schedule_id: str) -> list[HistoryEntry]:
        """Decides every fire of `schedule_id` due by now; returns what was recorded."""
        return (await self.fire_due_many([schedule_id])).get(schedule_id, [])

    async def fire_due_many(self, schedule_ids: Sequence[str]) -> dict[str, list[HistoryEntry]]:
        """Decides the fires due by now of each of `schedule_ids`; what was recorded, by schedule."""
        async with self._lock:
            now = self.clock()
            records = self._records(schedule_ids)
            records = [record for record in records if not record.registration.schedule.suspend]
            activities = self.runs.activity([record.registration.environment for record in records])
            decided = await asyncio.gather(
                *(
                    self._decide_due(record, now, activities[record.registration.environment])
                    for record in records
                )
            )
            return await self._record([decision for decision in decided if decision is not None])

    def _records(self, schedule_ids: Sequence[str]) -> list[ScheduleRecord]:
        if len(schedule_ids) == 1:
            one = self.book.schedule(schedule_ids[0])
            return [] if one is None else [one]
        wanted = set(schedule_ids)
        return [record for record in self.book.schedules() if record.id in wanted]

    async def _decide_due(self, record: ScheduleRecord, now: float, activity: Activity) -> _Decision | None:
        schedule = record.registration.schedule
        deadline = schedule.starting_deadline_seconds
        plan = plan_due(rule_of(record), _at(record.since), _at(now), deadline)
        if plan.nothing_due:
            return None
        entries = []
        if plan.last_missed is not None:
            detail = missed_detail(plan, deadline)
            missed = plan.last_missed.timestamp()
            entries.append(HistoryEntry(record.id, missed, now, Outcome.MISSED, None, detail))
        run: NewRun | None = None
        cancel: tuple[str, ...] = ()
        if plan.run is not None:
            entry, run, cancel = await self._decide(record, plan.run.timestamp(), now, "", activity)
            entries.append(entry)
        return Fired(record.id, now, tuple(entries), run), cancel

    async def run_now(self, schedule_id: str, why: str = "run through the API") -> HistoryEntry | None:
        """A fire now, asked for through the API (or ChatOps: `why` says who asked, for the history):
        the concurrency policy applies, the schedule's own fires are not affected. None when there is
        no such schedule."""
        async with self._lock:
            record = self.book.schedule(schedule_id)
            if record is None:
                return None
            now = self.clock()
            activity = self.runs.activity([record.registration.environment])[record.registration.environment]
            entry, run, cancel = await self._decide(record, now, now, f"{why}; ", activity)
            recorded = await self._record([(Fired(schedule_id, None, (entry,), run), cancel)])
            return recorded[schedule_id][-1]

    async def _decide(
        self, record: ScheduleRecord, scheduled_for: float, now: float, why: str, activity: Activity
    ) -> tuple[HistoryEntry, NewRun | None, tuple[str, ...]]:
        registration = record.registration
        environment = registration.environment
        policy = registration.schedule.concurrency_policy
        action = concurrency_action(policy, bool(activity.running), bool(activity.queued))

        def entry(outcome: Outcome, detail: str) -> HistoryEntry:
            return HistoryEntry(record.id, scheduled_for, now, outcome, None, why + detail)

        if action is Action.SKIP:
            busy, state = (activity.running, "running") if activity.running else (activity.queued, "queued")
            detail = f"skipped (concurrency_policy forbid): run {busy[0]} of {environment} is {state}"
            return entry(Outcome.SKIPPED, detail), None, ()
        try:
            commit = await self.runs.head(registration.repository, registration.ref)
        except HeadError as error:
            return entry(Outcome.FAILED, f"not run: {error}"), None, ()
        run = NewRun(
            repository=registration.repository,
            provider=registration.repository.split(":", 1)[0],
            ref=registration.ref,
            commit=commit,
            environment=environment,
            namespace=registration.namespace,
            preview=registration.preview,
            action="deploy",
            trigger=TRIGGER,
        )
        detail = f"queued {commit[:10]}, the head of {registration.ref}"
        cancel: tuple[str, ...] = activity.running if action is Action.REPLACE else ()
        if cancel:
            detail += f", replacing run {', '.join(cancel)} (concurrency_policy replace)"
        return entry(Outcome.QUEUED, detail), run, cancel

    async def _record(self, decisions: list[_Decision]) -> dict[str, list[HistoryEntry]]:
        if not decisions:
            return {}
        run_ids = await self.runs.fire([fired for fired, _ in decisions])
        recorded = {}
        for (fired, cancel), run_id in zip(decisions, run_ids, strict=True):
            for old in cancel:
                await self.runs.cancel(old, f"replaced by the scheduled run {run_id}")
            recorded[fired.schedule_id] = [
                replace(entry, run_id=run_id) if entry.outcome is Outcome.QUEUED else entry
                for entry in fired.entries
            ]
        return recorded

    # -- what users see --------------------------------------------------------------------------------

    def describe(self, record: ScheduleRecord) -> dict[str, Any]:
        """A schedule as the API shows it: declaration, next and last fire, last outcome."""
        following = self.next_wakeup(record)
        now = self.clock()
        next_fire = None if following is None else max(following.timestamp(), now)
        return {
            **registration_json(record.registration),
            "next_fire": iso(next_fire),
            "last_fire": iso(record.last_fire),
            "last_outcome": None if record.last_outcome is None else record.last_outcome.value,
            "last_run_id": record.last_run_id,
            "last_detail": record.last_detail,
        }
