"""The ``pipeline.schedule`` extension of bodywork.yaml: its model and its validation. Pure.

A schedule is a cron string (``schedule: "0 3 * * *"``, in UTC) or a mapping::

    schedule:
      cron: "0 3 * * 1-5"
      timezone: Europe/London          # IANA name; default UTC
      concurrency_policy: forbid       # forbid (default) | replace | allow, as Kubernetes CronJob
      starting_deadline_seconds: 600   # a missed fire later than this is recorded, not run; default: none
      suspend: false                   # true stops the fires and keeps the declaration

Bodywork ignored unknown keys under ``pipeline``, so a file with a schedule stays valid for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from runner.cron import CronError, CronRule, cron_rule
from runner.hints import quoted, show, unknown_key_message

SCHEDULE_KEYS = ("cron", "timezone", "concurrency_policy", "starting_deadline_seconds", "suspend")

# (path, message): how the bodywork.yaml validator records a problem.
Report = Callable[[tuple[Any, ...], str], None]


class ConcurrencyPolicy(StrEnum):
    """What a fire does while a run of the environment is queued or running (Kubernetes' names)."""

    FORBID = "forbid"
    """Skip this fire and record it as skipped."""
    REPLACE = "replace"
    """Cancel the running run and queue the scheduled one."""
    ALLOW = "allow"
    """Queue the scheduled run behind the running one."""


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str = "UTC"
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.FORBID
    starting_deadline_seconds: int | None = None
    """A fire that cannot start within this many seconds of its time is recorded as missed."""
    suspend: bool = False

    def rule(self) -> CronRule:
        """The fire-time rule (the schedule was validated, so this does not raise)."""
        return cron_rule(self.cron, self.timezone)

    def describe(self) -> str:
        """``"0 3 * * *" in Europe/London, concurrency forbid`` (and the deadline, suspension)."""
        parts = [f"{quoted(self.cron)} in {self.timezone}", f"concurrency {self.concurrency_policy}"]
        if self.starting_deadline_seconds is not None:
            parts.append(f"starting deadline {self.starting_deadline_seconds} s")
        if self.suspend:
            parts.append("suspended")
        return ", ".join(parts)

    def next_fires(self, after: datetime, count: int = 3) -> list[datetime]:
        """The next `count` fire times after `after`, in the schedule's time zone."""
        rule = self.rule()
        return [rule.local(time) for time in rule.fire_times(after, count)]


_FORM = (
    'a cron expression such as "0 3 * * *", or a mapping with cron, timezone, concurrency_policy, '
    "starting_deadline_seconds and suspend"
)


def _cron(value: Any, path: tuple[Any, ...], report: Report) -> str | None:
    if not isinstance(value, str) or not value.strip():
        report(path, f"must be {_FORM}, got {show(value)}")
        return None
    try:
        cron_rule(value)
    except CronError as error:
        report(path, f"is not a valid cron expression: {error}")
        return None
    return value


def _timezone(value: Any, path: tuple[Any, ...], report: Report) -> str | None:
    if not isinstance(value, str):
        report(path, f"must be an IANA time zone name such as Europe/London, got {show(value)}")
        return None
    try:
        cron_rule("0 0 * * *", value)
    except CronError as error:
        report(path, str(error))
        return None
    return value


def _policy(value: Any, path: tuple[Any, ...], report: Report) -> ConcurrencyPolicy | None:
    names = [policy.value for policy in ConcurrencyPolicy]
    if isinstance(value, str) and value in names:
        return ConcurrencyPolicy(value)
    hint = ""
    if isinstance(value, str) and value.strip().lower() in names:
        hint = f"; write {value.strip().lower()}"
    report(path, f"must be one of {', '.join(names)}, got {show(value)}{hint}")
    return None


def _deadline(value: Any, path: tuple[Any, ...], report: Report) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    report(path, f"must be an integer >= 1 (seconds), got {show(value)}")
    return None


def _suspend(value: Any, path: tuple[Any, ...], report: Report) -> bool | None:
    if isinstance(value, bool):
        return value
    report(path, f"must be true or false, got {show(value)}")
    return None


def read_schedule(value: Any, path: tuple[Any, ...], report: Report) -> Schedule | None:
    """The schedule declared by `value` at `path`; every problem goes to `report`, then None."""
    if not isinstance(value, dict):
        cron = _cron(value, path, report)
        return None if cron is None else Schedule(cron=cron)
    counted = _Counter(report)
    for key in value:
        if key not in SCHEDULE_KEYS:
            counted((*path, key), unknown_key_message(key, SCHEDULE_KEYS))
    cron = None
    if "cron" in value:
        cron = _cron(value["cron"], (*path, "cron"), counted)
    else:
        counted((*path, "cron"), 'missing; add it, e.g. cron: "0 3 * * *"')
    fields = {key: read(value[key], (*path, key), counted) for key, read in _READERS.items() if key in value}
    if counted.count or cron is None:
        return None
    return Schedule(cron=cron, **fields)


_READERS: dict[str, Callable[[Any, tuple[Any, ...], Report], Any]] = {
    "timezone": _timezone,
    "concurrency_policy": _policy,
    "starting_deadline_seconds": _deadline,
    "suspend": _suspend,
}


def schedule_in(section: dict[Any, Any], path: tuple[Any, ...], report: Report) -> Schedule | None:
    """The schedule under `section` (the pipeline section at `path`), or None when it declares none."""
    if "schedule" not in section:
        return None
    return read_schedule(section["schedule"], (*path, "schedule"), report)


def schedule_mapping(schedule: Schedule) -> dict[str, str | int | bool]:
    """`schedule` as the plain values of its bodywork.yaml mapping (defaults left out)."""
    values: dict[str, str | int | bool] = {"cron": schedule.cron}
    if schedule.timezone != "UTC":
        values["timezone"] = schedule.timezone
    if schedule.concurrency_policy is not ConcurrencyPolicy.FORBID:
        values["concurrency_policy"] = schedule.concurrency_policy.value
    if schedule.starting_deadline_seconds is not None:
        values["starting_deadline_seconds"] = schedule.starting_deadline_seconds
    if schedule.suspend:
        values["suspend"] = True
    return values


class _Counter:
    """Passes problems on and counts them."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.count = 0

    def __call__(self, path: tuple[Any, ...], message: str) -> None:
        self.count += 1
        self.report(path, message)
