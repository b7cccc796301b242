"""The one small interface every backend implements, and the per-stage handle the engine gives it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from runner.errors import FatalError
from runner.events import StageState
from runner.model import Pipeline, Stage


@dataclass(frozen=True)
class RunContext:
    """What every stage of one run shares."""

    run_id: str
    pipeline: Pipeline
    # The checkout of exactly `commit`; module paths are relative to it.
    source_dir: Path
    commit: str
    # Where the run deploys: a Kubernetes namespace, or a name that keeps local services apart.
    environment: str


@dataclass
class StageJob:
    """One stage of one run, as handed to a backend. Backends report through its callbacks."""

    run: RunContext
    stage: Stage
    # Environment variables the engine sets: GIT_COMMIT_HASH, and EXCEPTION_MESSAGE for run_on_failure.
    env: Mapping[str, str]
    log: Callable[[str], None]
    attempt_started: Callable[[int], None]
    attempt_failed: Callable[[int, str], None]
    # Secret values the backend resolved; the engine masks them in every log line and reason.
    secret_values: set[str] = field(default_factory=set)
    # A running service exited (exit code, its last log lines, restart delay, restart count), and was
    # started again (restart count, ready, why not): for backends that supervise services themselves.
    service_exited: Callable[[int, Sequence[str], float, int], None] = lambda *_: None
    service_restarted: Callable[[int, bool, str], None] = lambda *_: None

    @property
    def module_path(self) -> Path:
        return self.run.source_dir / self.stage.executable_module_path


@dataclass(frozen=True)
class StageResult:
    state: StageState
    attempts: int = 1
    reason: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state is StageState.SUCCEEDED


class StageError(FatalError):
    """An expected failure of a stage, with a message that names the problem and the fix."""


# Every backend sets this variable in every stage: a folder shared by all stages of one environment that
# persists across runs, so that a training stage can hand its model to a service (bodywork-core #115).
# Locally a folder under the state directory; on Kubernetes a volume mounted into every stage pod.
ARTIFACTS_DIR_VARIABLE = "BODYWORK_ARTIFACTS_DIR"


class Backend(Protocol):
    name: str

    async def start_run(self, run: RunContext) -> None:
        """Prepares the environment (namespace, service account, ...). Raises StageError on failure."""

    async def run_batch(self, job: StageJob) -> StageResult:
        """Runs a batch stage to completion: every attempt (1 + retries), each within its time limit.

        Cancellation (asyncio.CancelledError) must stop whatever the stage started, then propagate.
        """

    async def deploy_service(self, job: StageJob) -> StageResult:
        """Deploys a service stage and waits until it is ready within max_startup_time_seconds.

        When it is not ready in time, the previous version is restored (or the new one removed when
        there was none) and the result is ROLLED_BACK with the reason. Cancellation rolls back too.
        """

    async def finish_run(self, run: RunContext, succeeded: bool) -> None:
        """Called once after the last stage; a successful run removes services no longer in the DAG."""

    async def teardown(self, environment: str) -> None:
        """Removes everything deployed in `environment` (a deleted preview branch's environment)."""

    async def close(self) -> None:
        """Releases what the backend holds (the local backend stops its services)."""


@dataclass(frozen=True)
class RemovedService:
    """What :meth:`ServiceInventory.remove_service` removed."""

    namespace: str
    """Where the service ran, as the backend names it (see :meth:`ServiceInventory.namespace_for`)."""
    name: str
    objects: tuple[str, ...] = ()
    """The backend's objects that went with it (Kubernetes: Deployment, Service, Ingress); empty where
    the service was one process and nothing more (the local backend)."""


@runtime_checkable
class ServiceInventory(Protocol):
    """A backend that can say which services it runs and remove one: both backends implement it, and
    callers (ChatOps' ``services`` and ``delete``) check for it with ``isinstance`` rather than by the
    backend's name. Namespaces here are the backend's own: :meth:`namespace_for` maps a run's."""

    def namespace_for(self, environment: str) -> str:
        """Where the services of a run deployed into `environment` (:attr:`RunContext.environment`)
        land: locally the same name; on Kubernetes its namespace, or the one fixed namespace when the
        backend maps every environment to one. Pure, no I/O."""

    async def list_services(self) -> set[tuple[str, str]]:
        """(namespace, name) of every service stage running now. Async like the rest of a backend: the
        local backend reads its own registry on the event loop, the Kubernetes backend asks the API in
        a thread. Raises when the backend cannot say now (the cluster unreachable, a refused list)."""

    async def remove_service(self, namespace: str, name: str) -> RemovedService | None:
        """Stops the service stage `name` in `namespace` and removes what runs it (a process; a
        Deployment with its Service and Ingress); None when nothing was there. Raises when the backend
        refuses (on Kubernetes: a Deployment that bodywork does not manage, an API error)."""


@runtime_checkable
class SourceServer(Protocol):
    """A backend whose stage pods download their run's code from the service that runs it (the
    Kubernetes backend inside the cluster); the service's HTTP layer answers their requests with it."""

    def source_archive(self, namespace: str, name: str, token: str) -> Path | None:
        """The archive `token` opens, or None when there is none (any more). Raises PermissionError when
        the token does not open it. Blocking (may ask the cluster)."""
