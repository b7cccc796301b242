"""APScheduler wakes the firing core when schedules are due. The only ``apscheduler`` user in ``gitops``.

One job per distinct cron expression and time zone (:class:`TimerGroups`). Its trigger asks
:class:`runner.cron.CronRule` for fire times (APScheduler's own ``CronTrigger`` gets daylight-saving
changes wrong, see runner/cron.py). The job only wakes the core: what a fire does (run, skip, record
as missed) is decided by the core against the store, so a wake-up that comes late, twice or after a
restart never runs a fire twice (fires missed while the service was down are found by the core when it
arms the schedules).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from runner.cron import CronRule

log = logging.getLogger(__name__)

Wake = Callable[[str], Awaitable[None]]


class _RuleTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler has no type hints
    def __init__(self, rule: CronRule) -> None:
        self.rule = rule

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        return self.rule.next_fire(previous_fire_time or now)

    def __str__(self) -> str:
        return f"cron[{self.rule.expression} {self.rule.timezone}]"


class Timer:
    """Calls ``wake(key)`` on the event loop at each fire time of each armed job."""

    def __init__(self, wake: Wake) -> None:
        self._wake = wake
        self._scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": AsyncIOExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def start(self) -> None:
        """Starts firing; must be called on the running event loop."""
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def arm(self, key: str, rule: CronRule, first: datetime | None) -> None:
        """Wakes `key` at `first` (at once if it is past), then at the rule's fire times."""
        if first is None:
            self.disarm(key)
            return
        self._scheduler.add_job(
            self._wake,
            trigger=_RuleTrigger(rule),
            args=(key,),
            id=key,
            name=f"schedules {key}",
            next_run_time=first,
            replace_existing=True,
        )

    def disarm(self, key: str) -> None:
        if self._scheduler.get_job(key) is not None:
            self._scheduler.remove_job(key)

    def armed(self) -> dict[str, datetime]:
        """Each armed job's next wake-up time."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}


def group_key(cron: str, timezone: str) -> str:
    return f"{timezone} {cron}"


class TimerGroups:
    """One timer job per distinct cron expression and time zone: the schedules that share one (a
    thousand at ``0 * * * *``) wake together, as one batch, with one job for APScheduler to run."""

    def __init__(self, timer: Timer, now: Callable[[], datetime]) -> None:
        self.timer = timer
        self.now = now
        self._members: dict[str, set[str]] = {}
        self._group_of: dict[str, str] = {}

    def place(self, schedule_id: str, key: str | None, rule: CronRule | None) -> None:
        """Puts `schedule_id` in the group `key` (None: in none, e.g. suspended)."""
        if self._group_of.get(schedule_id) == key:
            return
        self.remove(schedule_id)
        if key is None or rule is None:
            return
        if key not in self._members:
            self._members[key] = set()
            self.timer.arm(key, rule, rule.next_fire(self.now()))
        self._members[key].add(schedule_id)
        self._group_of[schedule_id] = key

    def remove(self, schedule_id: str) -> None:
        key = self._group_of.pop(schedule_id, None)
        if key is None:
            return
        members = self._members[key]
        members.discard(schedule_id)
        if not members:
            del self._members[key]
            self.timer.disarm(key)

    def members(self, key: str) -> list[str]:
        return sorted(self._members.get(key, ()))

    def placed(self) -> set[str]:
        return set(self._group_of)
