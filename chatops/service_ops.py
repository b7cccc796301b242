"""The command handlers' :class:`~chatops.operations.Operations` over the running service.

``rerun`` resolves the ref's current commit through the service's mirror and queues a run like
``POST /api/runs`` does (trigger ``slack:<user>``); ``cancel`` is the API's cancel; ``services`` are the
service stages of each environment's latest successful run that the backend still runs; ``delete``
asks the backend to remove one. Both ask the backend only through its optional
:class:`~runner.backends.base.ServiceInventory` capability, never by its name: whichever backend it is
(local processes; the Deployment, Service and Ingress on Kubernetes), its own module is never imported
here.
``schedules`` are the service's schedules (``GET /api/schedules``); ``run_schedule`` fires one now as
``POST /api/schedules/{id}/run`` does, its history entry saying who asked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from chatops.model import FireView, RunView, ScheduleView
from chatops.operations import OperationError, RerunPlan, ServiceView
from chatops.views import ServiceViews
from gitops.environments import deploy_environment, manual_target
from gitops.schedules.model import HistoryEntry
from gitops.schedules.service import ScheduleService
from gitops.service import Service
from gitops.settings import RepositorySettings
from runner.backends.base import ServiceInventory

log = logging.getLogger(__name__)


class ServiceOperations:
    def __init__(self, service: Service, views: ServiceViews) -> None:
        self.service = service
        self.views = views

    def _settings(self, name: str) -> RepositorySettings:
        found = next((r for r in self.service.settings.repositories if r.name.lower() == name.lower()), None)
        if found is None:
            raise OperationError(f"Repository `{name}` is not configured.")
        return found

    def repositories(self) -> Sequence[str]:
        return [r.name for r in self.service.settings.repositories]

    def environments(self, repository: str | None) -> Sequence[str]:
        names = {
            deploy_environment(r) for r in self.service.settings.repositories if repository in (None, r.name)
        }
        names |= {run.environment for run in self.views.store.latest_runs(repository)}
        return sorted(names)

    def runs(self, repository: str | None, environment: str | None, limit: int) -> Sequence[RunView]:
        records = self.views.store.list_runs(repository=repository, environment=environment, limit=limit)
        return [self.views.of(run, self.views.store.stages(run.id)) for run in records]

    def latest(self, repository: str | None, environment: str | None) -> Sequence[RunView]:
        newest = [r for r in self.views.store.latest_runs(repository) if environment in (None, r.environment)]
        return [self.views.of(run, self.views.store.stages(run.id)) for run in newest]

    def find_run(self, id_or_prefix: str) -> RunView | None:
        store = self.views.store
        run = store.get(id_or_prefix)
        if run is None and len(id_or_prefix) >= 4:
            matches = store.runs_by_id_prefix(id_or_prefix)
            run = matches[0] if len(matches) == 1 else None
        return None if run is None else self.views.of(run, store.stages(run.id))

    def log_lines(self, run_id: str, limit: int) -> Sequence[tuple[str, str]]:
        lines = self.views.store.log_tail(run_id, limit)
        return [(line.stage, self.views.mask(line.line)) for line in lines]

    def plan_rerun(self, repository: str, branch_or_env: str | None) -> RerunPlan:
        settings = self._settings(repository)
        if branch_or_env is None:
            branch = next((b for b in settings.deploy_branches if not any(c in b for c in "*?[")), None)
            if branch is None:
                raise OperationError(f"Name the branch to run: {repository}'s deploy branches are patterns.")
            branch_or_env = branch
        latest = self.views.store.list_runs(repository=settings.name, environment=branch_or_env, limit=1)
        if latest:  # an environment: run its latest ref again
            return RerunPlan(settings.name, branch_or_env, latest[0].ref)
        ref, target = manual_target(settings, branch_or_env)
        if isinstance(target, str):
            raise OperationError(
                f"`{branch_or_env}` is neither an environment nor a branch that deploys: {target}."
            )
        return RerunPlan(settings.name, target.environment, ref)

    async def rerun(self, plan: RerunPlan, requested_by: str) -> RunView:
        settings = self._settings(plan.repository)
        _, target = manual_target(settings, plan.ref)
        if isinstance(target, str):
            raise OperationError(f"`{plan.ref}` does not deploy any more: {target}.")
        assert self.service.mirrors is not None
        try:
            commit = await self.service.mirrors.resolve(settings, plan.ref)
        except Exception as error:
            raise OperationError(f"Could not fetch {settings.name}: {self.views.mask(str(error))}") from None
        if commit is None:
            raise OperationError(f"`{plan.ref}` does not exist in {settings.name}.")
        decision = await self.service.trigger(settings, plan.ref, commit, target, None, trigger=requested_by)
        if decision.run is None:
            raise OperationError(f"Not run: {decision.reason}")
        return self.views.of(decision.run)

    async def cancel(self, run_id: str) -> RunView:
        run = self.service.cancel(run_id)
        if run is None:
            raise OperationError(f"No run `{run_id}`.")
        return self.views.of(run)

    async def services(self, repository: str | None, environment: str | None) -> Sequence[ServiceView]:
        live = await self._live_services()
        found: dict[tuple[str, str], ServiceView] = {}
        store = self.views.store
        for run in store.latest_deploys(repository, environment):  # what each environment runs
            namespace = run.namespace or run.environment
            where = self._backend_namespace(namespace)
            for stage in store.stages(run.id):
                if stage.kind == "service" and (live is None or (where, stage.stage) in live):
                    url = self.service.reporter.target_url(run.id)
                    found[(run.environment, stage.stage)] = ServiceView(
                        stage.stage, run.repository_name, run.environment, run.id, url, namespace
                    )
        return sorted(found.values(), key=lambda s: (s.repository, s.environment, s.name))

    async def delete_service(self, service: ServiceView) -> str:
        """Through the backend's service inventory (locally the process; on Kubernetes its Deployment,
        Service and Ingress, as ``bodywork services delete`` does)."""
        backend = self.service.backend
        if not isinstance(backend, ServiceInventory):
            raise OperationError("This backend cannot delete services.")
        namespace = backend.namespace_for(service.namespace or service.environment)
        try:
            removed = await backend.remove_service(namespace, service.name)
        except Exception as error:  # not ours, or the API refused: say so, masked
            raise OperationError(
                f"Could not delete `{service.name}`: {self.views.mask(str(error))}"
            ) from None
        if removed is None:
            where = "" if namespace == service.environment else f" (namespace `{namespace}`)"
            raise OperationError(
                f"`{service.name}` is not running in `{service.environment}`{where} any more."
            )
        objects = f" ({', '.join(sorted(removed.objects))} in {removed.namespace})" if removed.objects else ""
        return f"Deleted service {service.name} in {service.environment}{objects}."

    def _backend_namespace(self, namespace: str) -> str:
        """Where the backend puts a run's namespace (Kubernetes may map every one to one namespace)."""
        backend = self.service.backend
        return backend.namespace_for(namespace) if isinstance(backend, ServiceInventory) else namespace

    async def _live_services(self) -> set[tuple[str, str]] | None:
        """(namespace, name) of the services the backend runs now; None when it cannot say (no
        inventory, or the API unreachable): then ``services`` lists what the runs deployed."""
        backend = self.service.backend
        if not isinstance(backend, ServiceInventory):
            return None
        try:
            return await backend.list_services()
        except Exception as error:
            log.warning(
                "the backend could not list its services (%s); answering with what the runs deployed",
                self.views.mask(str(error)),
            )
            return None

    # Schedules.

    def _schedule_service(self) -> ScheduleService:
        if self.service.schedules is None:
            raise OperationError("This service keeps no schedules (it has not started them).")
        return self.service.schedules

    def _run_url(self, run_id: str | None) -> str:
        return self.service.reporter.target_url(run_id) if run_id else ""

    def schedules(self) -> Sequence[ScheduleView]:
        if self.service.schedules is None:
            return []
        return [self._schedule_view(described) for described in self.service.schedules.listing()]

    def _schedule_view(self, described: Mapping[str, Any]) -> ScheduleView:
        declared = described["schedule"]
        run_id = described.get("last_run_id")
        return ScheduleView(
            id=str(described["id"]),
            repository=str(described["repository"]),
            ref=str(described["ref"]),
            source=str(described["source"]),
            cron=str(declared["cron"]),
            timezone=str(declared["timezone"]),
            concurrency_policy=str(declared["concurrency_policy"]),
            suspended=bool(declared["suspend"]),
            next_fire=_epoch(described.get("next_fire")),
            last_fire=_epoch(described.get("last_fire")),
            last_outcome=described.get("last_outcome"),
            last_run_id=run_id,
            last_run_url=self._run_url(run_id),
            last_detail=self.views.mask(str(described.get("last_detail") or "")),
        )

    def _fire_view(self, entry: HistoryEntry) -> FireView:
        return FireView(
            entry.schedule_id,
            entry.scheduled_for,
            entry.outcome.value,
            entry.run_id,
            self._run_url(entry.run_id),
            self.views.mask(entry.detail),
        )

    def schedule_history(self, schedule_id: str, limit: int) -> Sequence[FireView]:
        if self.service.schedules is None:
            return []
        return [self._fire_view(entry) for entry in self.service.schedules.history(schedule_id, limit)]

    async def run_schedule(self, schedule_id: str, requested_by: str) -> FireView:
        entry = await self._schedule_service().run_now(schedule_id, f"run by {requested_by}")
        if entry is None:
            raise OperationError(f"No schedule `{schedule_id}` any more.")
        return self._fire_view(entry)


def _epoch(iso: object) -> float | None:
    """An instant of the schedules' API (ISO 8601, UTC) as epoch seconds."""
    return datetime.fromisoformat(iso).timestamp() if isinstance(iso, str) else None
