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
