"""What chatops knows of a run: plain values, built by the service's adapter from its store. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

FINAL_RUN_STATES = frozenset({"succeeded", "failed", "cancelled", "superseded"})


@dataclass(frozen=True)
class StageView:
    name: str
    kind: str
    """``batch`` or ``service``."""
    state: str
    """A runner ``StageState`` value: pending, running, succeeded, failed, rolled_back, cancelled, skipped."""
    started_at: float | None = None
    finished_at: float | None = None
    reason: str = ""

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True)
class CommitView:
    sha: str
    author: str = ""
    title: str = ""
    """First line of the commit message."""
    url: str = ""


@dataclass(frozen=True)
class RunView:
    id: str
    repository: str
    """``owner/name``."""
    environment: str
    ref: str
    commit: CommitView
    state: str
    """A runner ``RunState`` value."""
    trigger: str
    """push, tag, schedule, slack:<user>, api, ..."""
    url: str
    """The run page."""
    action: str = "deploy"
    reason: str = ""
    superseded_by: str | None = None
    superseded_by_commit: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    stages: tuple[StageView, ...] = field(default_factory=tuple)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_RUN_STATES

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @property
    def failed_stage(self) -> StageView | None:
        return next((s for s in self.stages if s.state == "failed"), None)


@dataclass(frozen=True)
class ScheduleView:
    """A registered schedule, as ``GET /api/schedules`` shows it; times are epoch seconds."""

    id: str
    """The environment's name (a schedule belongs to one environment)."""
    repository: str
    """``owner/name``."""
    ref: str
    source: str
    """``bodywork.yaml`` or ``service config``."""
    cron: str
    timezone: str
    concurrency_policy: str
    suspended: bool
    next_fire: float | None = None
    last_fire: float | None = None
    last_outcome: str | None = None
    """queued, skipped, missed or failed; None before the first fire."""
    last_run_id: str | None = None
    last_run_url: str = ""
    last_detail: str = ""


@dataclass(frozen=True)
class FireView:
    """One entry of a schedule's history."""

    schedule_id: str
    scheduled_for: float
    outcome: str
    """queued, skipped, missed or failed."""
    run_id: str | None = None
    run_url: str = ""
    detail: str = ""
