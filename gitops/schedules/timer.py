"""APScheduler wakes the firing core when a schedule is due. The only ``apscheduler`` user in ``gitops``.

One job per armed schedule. Its trigger asks :class:`runner.cron.CronRule` for fire times (APScheduler's
own ``CronTrigger`` gets daylight-saving changes wrong, see runner/cron.py). The job only wakes the core:
what a fire does (run, skip, record as missed) is decided by the core against the store, so a wake-up
that comes late, twice or after a restart never runs a fire twice. A job's first run time may lie in
the past (a fire missed while the service was down): APScheduler then runs it at once.
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
    """Calls ``wake(schedule_id)`` on the event loop at each fire time of each armed schedule."""

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

    def arm(self, schedule_id: str, rule: CronRule, first: datetime | None) -> None:
        """Fires `schedule_id` at `first` (at once if it is past), then at the rule's fire times."""
        if first is None:
            self.disarm(schedule_id)
            return
        self._scheduler.add_job(
            self._wake,
            trigger=_RuleTrigger(rule),
            args=(schedule_id,),
            id=schedule_id,
            name=f"schedule {schedule_id}",
            next_run_time=first,
            replace_existing=True,
        )

    def disarm(self, schedule_id: str) -> None:
        if self._scheduler.get_job(schedule_id) is not None:
            self._scheduler.remove_job(schedule_id)

    def armed(self) -> dict[str, datetime]:
        """Each armed schedule's next wake-up time."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}
