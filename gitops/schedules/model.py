"""What the service keeps about a schedule: its registration, its state and its history. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gitops.schedules.policy import Outcome
from runner.schedule import Schedule

SOURCE_PIPELINE = "bodywork.yaml"
SOURCE_CONFIG = "service config"
TRIGGER = "schedule"
"""The ``trigger`` of the runs a schedule queues (a push's is ``webhook``)."""


@dataclass(frozen=True)
class Registration:
    """A schedule as a deploy declares it: one per environment, whose id it takes."""

    environment: str
    repository: str
    """The repository's settings key, ``provider:name``."""
    ref: str
    """The deployed branch (or tag): a fire runs its head."""
    namespace: str | None
    preview: bool
    source: str
    """Where it is declared: ``bodywork.yaml`` or ``service config``."""
    schedule: Schedule

    @property
    def id(self) -> str:
        return self.environment


@dataclass(frozen=True)
class ScheduleRecord:
    """A registered schedule and how far its fires have been decided."""

    registration: Registration
    since: float
    """Every fire at or before this instant (epoch seconds) has been decided; restarts resume here."""
    last_fire: float | None = None
    """The time of the last fire decided (its scheduled time, not when it was decided)."""
    last_outcome: Outcome | None = None
    last_run_id: str | None = None
    last_detail: str = ""

    @property
    def id(self) -> str:
        return self.registration.id

    def registered_as(self, registration: Registration, now: float) -> ScheduleRecord:
        """This record after `registration` is deployed again: a changed cron or time zone starts
        afresh at `now` (fires of the old expression are not caught up under the new one)."""
        old = self.registration.schedule
        new = registration.schedule
        since = self.since if (old.cron, old.timezone) == (new.cron, new.timezone) else now
        if old.suspend and not new.suspend:
            since = now  # resuming does not catch up the fires slept through while suspended
        return replace(self, registration=registration, since=since)


@dataclass(frozen=True)
class HistoryEntry:
    schedule_id: str
    scheduled_for: float
    """The fire's scheduled time (epoch seconds); for a run through the API, when it was asked."""
    decided_at: float
    outcome: Outcome
    run_id: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule_id,
            "scheduled_for": iso(self.scheduled_for),
            "decided_at": iso(self.decided_at),
            "outcome": self.outcome.value,
            "run_id": self.run_id,
            "detail": self.detail,
        }


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def registration_json(registration: Registration) -> dict[str, Any]:
    schedule = registration.schedule
    return {
        "id": registration.id,
        "environment": registration.environment,
        "repository": registration.repository.split(":", 1)[-1],
        "ref": registration.ref,
        "source": registration.source,
        "schedule": {
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "concurrency_policy": schedule.concurrency_policy.value,
            "starting_deadline_seconds": schedule.starting_deadline_seconds,
            "suspend": schedule.suspend,
        },
    }
