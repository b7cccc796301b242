"""What the command handlers need of the service, as a Protocol the gitops integration implements.

Handlers find the repository and environment a command is about first (``plan_*``), so that the
authorization check sees them, and only then act.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chatops.model import FireView, RunView, ScheduleView


class OperationError(Exception):
    """A command that cannot be done as asked (unknown name, nothing to cancel, ...): shown to the user."""


@dataclass(frozen=True)
class ServiceView:
    name: str
    repository: str
    environment: str
    run_id: str
    url: str = ""
    namespace: str = ""
    """Where the backend runs it (the run's namespace; the environment when it has none)."""


@dataclass(frozen=True)
class RerunPlan:
    repository: str
    environment: str
    ref: str
    """The full ref to run (``refs/heads/main``)."""


class Operations(Protocol):
    def repositories(self) -> Sequence[str]: ...

    def environments(self, repository: str | None) -> Sequence[str]: ...

    def runs(self, repository: str | None, environment: str | None, limit: int) -> Sequence[RunView]: ...

    def latest(self, repository: str | None, environment: str | None) -> Sequence[RunView]:
        """The newest run of each (repository, environment)."""
        ...

    def find_run(self, id_or_prefix: str) -> RunView | None: ...

    def log_lines(self, run_id: str, limit: int) -> Sequence[tuple[str, str]]:
        """The last `limit` lines as (stage, line), masked."""
        ...

    def plan_rerun(self, repository: str, branch_or_env: str | None) -> RerunPlan:
        """Raises :class:`OperationError` for an unknown repository, branch or environment."""
        ...

    async def rerun(self, plan: RerunPlan, requested_by: str) -> RunView: ...

    async def cancel(self, run_id: str) -> RunView: ...

    async def services(self, repository: str | None, environment: str | None) -> Sequence[ServiceView]:
        """The services deployed now (the backend is asked where it can say)."""
        ...

    async def delete_service(self, service: ServiceView) -> str:
        """Deletes it on the backend; returns what was done."""
        ...

    def schedules(self) -> Sequence[ScheduleView]:
        """Every registered schedule (empty when the service keeps none)."""
        ...

    def schedule_history(self, schedule_id: str, limit: int) -> Sequence[FireView]:
        """A schedule's last `limit` fires, newest first (kept after the schedule is removed)."""
        ...

    async def run_schedule(self, schedule_id: str, requested_by: str) -> FireView:
        """Fires it now, as ``POST /api/schedules/{id}/run`` does; OperationError when there is none."""
        ...
