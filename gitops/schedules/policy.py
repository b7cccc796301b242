"""What a schedule does when it is due: which fire runs, which are missed, and what the concurrency
policy says while a run of the environment is queued or running. Pure: time comes in as arguments.

The fire times themselves (cron in a time zone, daylight-saving changes) come from
:class:`runner.cron.CronRule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from runner.cron import CronRule
from runner.schedule import ConcurrencyPolicy

# Missed fires are counted up to this many (an every-minute schedule down for a week has 10,080).
MAX_COUNTED = 1000
# Windows looked back through for the latest fire before now, smallest first (a fire every minute is
# found in the first, a yearly one in the last).
_WINDOWS = tuple(timedelta(minutes=2 * 8**power) for power in range(7))


class Outcome(StrEnum):
    """What became of one fire; each lands in the schedule's history."""

    QUEUED = "queued"
    """A run was queued (with ``replace``: after cancelling the one that was running)."""
    SKIPPED = "skipped"
    """``forbid``: a run of the environment was queued or running."""
    MISSED = "missed"
    """Not started in time: the service was not running, or the fire was later than the deadline."""
    FAILED = "failed"
    """The run could not be queued (e.g. nothing deployed yet); the detail says why."""


class Action(StrEnum):
    QUEUE = "queue"
    SKIP = "skip"
    REPLACE = "replace"


@dataclass(frozen=True)
class DuePlan:
    """The fires due in (`since`, `now`]."""

    run: datetime | None
    """The fire to run now: the latest, if it is still within the starting deadline."""
    missed: int
    """How many fires are not run (all but the latest, and the latest when it is too late)."""
    first_missed: datetime | None
    last_missed: datetime | None
    counted_all: bool
    """False when there were more than MAX_COUNTED missed fires (``missed`` is then a lower bound)."""

    @property
    def nothing_due(self) -> bool:
        return self.run is None and self.missed == 0


def latest_fire(rule: CronRule, since: datetime, now: datetime) -> datetime | None:
    """The last fire time in (`since`, `now`], or None."""
    for window in (*_WINDOWS, now - since):
        begin = max(since, now - window)
        found = None
        current = rule.next_fire(begin)
        while current is not None and current <= now:
            found = current
            current = rule.next_fire(current)
        if found is not None or begin == since:
            return found
    return None


def _count_fires(rule: CronRule, since: datetime, until: datetime) -> tuple[int, datetime | None, bool]:
    """How many fires lie in (`since`, `until`) (capped), and the first of them."""
    count, first = 0, None
    current = rule.next_fire(since)
    while current is not None and current < until:
        first = first or current
        count += 1
        if count >= MAX_COUNTED:
            return count, first, False
        current = rule.next_fire(current)
    return count, first, True


def plan_due(rule: CronRule, since: datetime, now: datetime, deadline_seconds: int | None) -> DuePlan:
    """The fires in (`since`, `now`]: at most one runs, the latest, if it is within `deadline_seconds`
    of its time (any lateness when there is no deadline); every other one is missed. So a service that
    was down catches up once, never once per fire it slept through."""
    first_due = rule.next_fire(since)
    if first_due is None or first_due > now:
        return DuePlan(None, 0, None, None, True)
    following = rule.next_fire(first_due)
    if following is None or following > now:  # the usual case: one fire, woken on time
        latest, earlier, first, complete = first_due, 0, None, True
    else:
        latest = latest_fire(rule, since, now) or first_due
        earlier, first, complete = _count_fires(rule, since, latest)
    in_time = deadline_seconds is None or (now - latest).total_seconds() <= deadline_seconds
    if in_time:
        last_missed = None
        if earlier:
            last_missed = _last_before(rule, since, latest)
        return DuePlan(latest, earlier, first, last_missed, complete)
    return DuePlan(None, earlier + 1, first or latest, latest, complete)


def _last_before(rule: CronRule, since: datetime, fire: datetime) -> datetime | None:
    return latest_fire(rule, since, fire - timedelta(microseconds=1))


def concurrency_action(policy: ConcurrencyPolicy, running: bool, queued: bool) -> Action:
    """What a due fire does, given whether a run of its environment is running or queued."""
    if not running and not queued:
        return Action.QUEUE
    if policy is ConcurrencyPolicy.FORBID:
        return Action.SKIP
    if policy is ConcurrencyPolicy.REPLACE and running:
        return Action.REPLACE
    return Action.QUEUE


def missed_detail(plan: DuePlan, deadline_seconds: int | None) -> str:
    """Why the fires of `plan` were not run, for the history."""
    if plan.first_missed is None or plan.last_missed is None:
        return ""
    count = f"{plan.missed}" if plan.counted_all else f"more than {plan.missed}"
    span = (
        f"due at {_stamp(plan.first_missed)}"
        if plan.missed == 1
        else f"{count} fires due from {_stamp(plan.first_missed)} to {_stamp(plan.last_missed)}"
    )
    if plan.run is not None:
        return f"{span}: not run, the service was not running then; the latest fire runs instead"
    limit = f"starting_deadline_seconds ({deadline_seconds})"
    return f"{span}: not started within {limit}, so not run"


def _stamp(time: datetime) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
