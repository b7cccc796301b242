"""The schedules inside the service: the firing core wired to the store, the run queue, the mirrors and
the runs' life cycle, and the API that ``gitops.web`` and extensions (ChatOps) use.

* A deploy run that loads its bodywork.yaml registers, updates or removes its environment's schedule
  (:meth:`ScheduleService.loaded`); the service config's schedule for the branch wins over the file's.
* A teardown (a deleted preview branch) removes it (:meth:`ScheduleService.torn_down`).
* A fire queues a run of the head of the deployed branch exactly as a push would (same commit statuses,
  extensions notified, same history), with ``trigger: schedule``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops.environments import target_for
from gitops.schedules.config import ScheduleSettings, configured_schedule
from gitops.schedules.firing import Activity, Fired, HeadError, Scheduler
from gitops.schedules.leader import Lock, lead_alone, lead_while_holding
from gitops.schedules.model import (
    SOURCE_CONFIG,
    SOURCE_PIPELINE,
    HistoryEntry,
    Registration,
    ScheduleRecord,
)
from gitops.store import RunRecord, Store
from runner.model import Pipeline

if TYPE_CHECKING:  # the service imports this module
    from gitops.service import Service

log = logging.getLogger(__name__)

# A fire reuses a branch head resolved this recently (schedules of one branch firing together fetch once).
HEAD_REUSE_SECONDS = 5.0
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class _StoreBook:
    def __init__(self, store: Store) -> None:
        self.store = store

    def schedules(self) -> list[ScheduleRecord]:
        return self.store.schedules.all()

    def schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return self.store.schedules.get(schedule_id)

    async def save(self, record: ScheduleRecord) -> None:
        await self.store.write(self.store.schedules.save, record)

    async def delete(self, schedule_id: str) -> bool:
        return await self.store.write(self.store.schedules.delete, schedule_id)


class _ServiceRuns:
    """The run queue as a push uses it."""

    def __init__(self, service: Service, store: Store, clock: Callable[[], float]) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self._heads: dict[tuple[str, str], tuple[float, asyncio.Future[str]]] = {}

    def activity(self, environments: Sequence[str]) -> dict[str, Activity]:
        found = self.store.schedules.activity(environments)
        return {name: Activity(tuple(running), tuple(queued)) for name, (running, queued) in found.items()}

    async def head(self, repository: str, ref: str) -> str:
        now = self.clock()
        cached = self._heads.get((repository, ref))
        if cached is None or now - cached[0] > HEAD_REUSE_SECONDS:
            future = asyncio.ensure_future(self._resolve(repository, ref))
            self._heads[(repository, ref)] = (now, future)
            cached = (now, future)
        try:
            return await asyncio.shield(cached[1])
        except HeadError:
            self._heads.pop((repository, ref), None)
            raise

    async def _resolve(self, repository: str, ref: str) -> str:
        provider, name = repository.split(":", 1)
        settings = self.service.settings.repository(provider, name)
        mirrors = self.service.mirrors
        if settings is None or mirrors is None:
            raise HeadError(f"repository {name} is no longer configured")
        try:
            commit = await mirrors.resolve(settings, ref)
        except Exception as error:  # a fetch failure of any kind is this fire's outcome
            raise HeadError(f"could not fetch {name}: {error}") from error
        if commit is None:
            raise HeadError(f"{ref} no longer exists in {name}")
        return commit

    async def fire(self, decisions: Sequence[Fired]) -> list[str | None]:
        rows = [(fired.schedule_id, fired.since, fired.entries, fired.run) for fired in decisions]
        accepted = await self.store.write(self.store.schedules.record_fires, rows)
        for queued in accepted:
            if queued is not None:
                self.service.announce(queued)
        return [None if queued is None else queued.run.id for queued in accepted]

    async def cancel(self, run_id: str, reason: str) -> None:
        self.service.cancel(run_id, reason)


class ScheduleService:
    def __init__(self, service: Service, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.store = store
        self.scheduler = Scheduler(_StoreBook(store), _ServiceRuns(service, store, clock), clock)
        self._leading: asyncio.Task[None] | None = None

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self, fire: bool = True) -> None:
        """Registers the service config's schedules; with `fire`, starts leading (or trying to)."""
        await self._register_configured()
        if fire:
            self._leading = asyncio.create_task(self._lead(), name="bodywork-schedules")

    async def stop(self) -> None:
        if self._leading is not None:
            self._leading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leading
        await self.scheduler.close()

    async def _lead(self) -> None:
        settings = self.service.settings
        lock = _lease(settings.schedules, settings.backend, settings.backend_options)
        if lock is None:
            await lead_alone(self.scheduler)
        else:
            await lead_while_holding(lock, self.scheduler, settings.schedules.lease_seconds / 3)

    async def _register_configured(self) -> None:
        """The service config's schedules (branch names, not patterns, as no deploy names them yet);
        those removed from the config since the last start are removed."""
        declared: set[str] = set()
        for repository in self.service.settings.repositories:
            for branch, schedule in repository.schedules:
                if any(char in branch for char in "*?["):
                    continue  # a pattern: registered when a matching branch deploys
                target = target_for(repository, f"refs/heads/{branch}", False)
                if isinstance(target, str):
                    log.warning("service config schedule for %s %s: %s", repository.name, branch, target)
                    continue
                registration = Registration(
                    target.environment,
                    repository.key,
                    f"refs/heads/{branch}",
                    target.namespace,
                    target.preview,
                    SOURCE_CONFIG,
                    schedule,
                )
                await self.scheduler.register(registration)
                declared.add(registration.id)
        for record in self.scheduler.book.schedules():
            if record.registration.source == SOURCE_CONFIG and record.id not in declared:
                await self.scheduler.unregister(record.id)

    # -- the runs' life cycle (called by the run executor) ----------------------------------------

    async def loaded(self, run: RunRecord, pipeline: Pipeline) -> None:
        """A deploy run loaded `pipeline`: its environment's schedule follows the declaration."""
        repository = self.service.settings.repository(run.provider, run.repository_name)
        configured = None if repository is None else configured_schedule(repository.schedules, run.ref)
        declared = configured or pipeline.pipeline.schedule
        if declared is None:
            if await self.scheduler.unregister(run.environment):
                log.info("schedule of %s removed: run %s declares none", run.environment, run.id)
            return
        source = SOURCE_CONFIG if configured is not None else SOURCE_PIPELINE
        registration = Registration(
            run.environment, run.repository, run.ref, run.namespace, run.preview, source, declared
        )
        await self.scheduler.register(registration)

    async def torn_down(self, run: RunRecord) -> None:
        await self.scheduler.unregister(run.environment)

    # -- what users see (the API, the CLI and ChatOps) ------------------------------------------

    def listing(self) -> list[dict[str, Any]]:
        """Every schedule with its source, next and last fire and last outcome."""
        return [self.scheduler.describe(record) for record in self.scheduler.book.schedules()]

    def get(self, schedule_id: str) -> dict[str, Any] | None:
        record = self.scheduler.book.schedule(schedule_id)
        return None if record is None else self.scheduler.describe(record)

    def history(self, schedule_id: str, limit: int = 50) -> list[HistoryEntry]:
        return self.store.schedules.history(schedule_id, limit)

    async def run_now(self, schedule_id: str, why: str = "run through the API") -> HistoryEntry | None:
        """A fire now; `why` begins its history entry's detail (who asked, and how)."""
        return await self.scheduler.run_now(schedule_id, why)

    @property
    def firing(self) -> bool:
        """Whether this replica fires the schedules (holds the lease, or runs alone)."""
        return self.scheduler.timer is not None


def _lease(settings: ScheduleSettings, backend: str, options: Mapping[str, Any]) -> Lock | None:
    """The Lease lock when the config asks for one: ``true``, or ``auto`` with the Kubernetes backend
    using in-cluster credentials (the service runs in the cluster)."""
    in_cluster = bool(options.get("in_cluster"))
    auto = settings.lease == "auto" and backend == "kubernetes" and in_cluster
    if settings.lease != "true" and not auto:
        return None
    from runner.backends.kubernetes.lease import lease_lock  # loads the Kubernetes client only here

    return lease_lock(
        settings.lease_name,
        settings.lease_namespace or _own_namespace(),
        _identity(),
        kubeconfig=options.get("kubeconfig"),
        context=options.get("context"),
        in_cluster=in_cluster,
        duration=settings.lease_seconds,
    )


def _identity() -> str:
    """Who holds the Lease: unique per lock, not only per host and process. A pod on the host's
    network has the node's hostname and, as its container's first process, pid 1: two replicas on one
    node would otherwise share an identity, each renew the other's hold, and both fire."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _own_namespace() -> str:
    try:
        return _NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"
