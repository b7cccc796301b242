"""An in-memory :class:`~chatops.operations.Operations` for the handler and transport tests.

The end-to-end tests in tests/chatops/test_e2e_*.py use the real service instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from chatops.model import FireView, RunView, ScheduleView
from chatops.operations import OperationError, RerunPlan, ServiceView

from .builders import a_run


@dataclass
class MemoryOps:
    runs_: list[RunView] = field(default_factory=lambda: [a_run("running")])
    services_: list[ServiceView] = field(
        default_factory=lambda: [ServiceView("serve", "acme/pipelines", "production", a_run().id)]
    )
    envs: dict[str, list[str]] = field(default_factory=lambda: {"acme/pipelines": ["production", "staging"]})
    reruns: list[tuple[RerunPlan, str]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    deleted: list[ServiceView] = field(default_factory=list)
    schedules_: list[ScheduleView] = field(default_factory=lambda: [a_schedule()])
    fires: list[FireView] = field(default_factory=lambda: [a_fire("missed", 1_700_000_000.0)])
    fired_by: list[tuple[str, str]] = field(default_factory=list)
    fail_with: Exception | None = None

    def repositories(self) -> Sequence[str]:
        return list(self.envs)

    def environments(self, repository: str | None) -> Sequence[str]:
        return [e for r, es in self.envs.items() if repository in (None, r) for e in es]

    def runs(self, repository: str | None, environment: str | None, limit: int) -> Sequence[RunView]:
        return [
            r
            for r in self.runs_
            if repository in (None, r.repository) and environment in (None, r.environment)
        ]

    def latest(self, repository: str | None, environment: str | None) -> Sequence[RunView]:
        newest: dict[tuple[str, str], RunView] = {}
        for run in self.runs(repository, environment, 1000):
            newest.setdefault((run.repository, run.environment), run)
        return list(newest.values())

    def find_run(self, id_or_prefix: str) -> RunView | None:
        return next((r for r in self.runs_ if id_or_prefix and r.id.startswith(id_or_prefix)), None)

    def log_lines(self, run_id: str, limit: int) -> Sequence[tuple[str, str]]:
        return [("train", f"epoch {i}") for i in range(100)][-limit:]

    def plan_rerun(self, repository: str, branch_or_env: str | None) -> RerunPlan:
        if branch_or_env in (None, "main", "production"):
            return RerunPlan(repository, "production", "refs/heads/main")
        raise OperationError(
            f"`{branch_or_env}` is neither a deploy branch nor an environment of {repository}"
        )

    async def rerun(self, plan: RerunPlan, requested_by: str) -> RunView:
        if self.fail_with is not None:
            raise self.fail_with
        self.reruns.append((plan, requested_by))
        run = replace(a_run("queued"), id=f"rerun-{len(self.reruns)}", trigger=requested_by)
        self.runs_.insert(0, run)
        return run

    async def cancel(self, run_id: str) -> RunView:
        self.cancelled.append(run_id)
        return next(r for r in self.runs_ if r.id == run_id)

    async def services(self, repository: str | None, environment: str | None) -> Sequence[ServiceView]:
        return [
            s
            for s in self.services_
            if repository in (None, s.repository) and environment in (None, s.environment)
        ]

    async def delete_service(self, service: ServiceView) -> str:
        self.deleted.append(service)
        self.services_.remove(service)
        return f"Deleted service {service.name} in {service.environment}."

    def schedules(self) -> Sequence[ScheduleView]:
        return list(self.schedules_)

    def schedule_history(self, schedule_id: str, limit: int) -> Sequence[FireView]:
        return [f for f in self.fires if f.schedule_id == schedule_id][:limit]

    async def run_schedule(self, schedule_id: str, requested_by: str) -> FireView:
        self.fired_by.append((schedule_id, requested_by))
        fire = a_fire("queued", 1_700_003_600.0, run_id=f"fired-{len(self.fired_by)}-0000")
        self.fires.insert(0, fire)
        return fire


def a_schedule(**changes: object) -> ScheduleView:
    schedule = ScheduleView(
        id="production",
        repository="acme/pipelines",
        ref="refs/heads/main",
        source="bodywork.yaml",
        cron="30 6 * * 1-5",
        timezone="Europe/London",
        concurrency_policy="forbid",
        suspended=False,
        next_fire=1_700_000_000.0 + 3 * 3600,
        last_fire=None,
    )
    return replace(schedule, **changes)  # type: ignore[arg-type]


def a_fire(outcome: str, at: float, **changes: object) -> FireView:
    fire = FireView("production", at, outcome, detail=f"{outcome} for the test")
    if outcome == "queued":
        fire = replace(fire, detail="queued 0123456789, the head of refs/heads/main")
    return replace(fire, **changes)  # type: ignore[arg-type]
