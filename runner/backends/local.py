"""The local backend, the embedded default: stages as processes on this machine.

Batch stages run in a copy of the commit's files (the run's workspace), in their module's folder, with
the interpreter of a cached virtual environment built for the pipeline's Python version. Services run
as processes (see local_services.py) and keep running between runs until :meth:`LocalBackend.close`;
stages reach them by stage name through the environment's name proxy (name_proxy.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.backends import notebooks
from runner.backends.base import (
    ARTIFACTS_DIR_VARIABLE,
    RemovedService,
    RunContext,
    StageError,
    StageJob,
    StageResult,
)
from runner.backends.env_cache import Limits
from runner.backends.interpreters import install_hint, interpreter_for
from runner.backends.isolation import Isolation
from runner.backends.local_services import LocalServices, RestartPolicy, RunningService
from runner.backends.name_proxy import NameProxy
from runner.backends.processes import StageProcess, stage_environment
from runner.backends.venvs import VenvCache
from runner.events import StageState
from runner.model import Pipeline, Stage
from runner.python_version import choose_python
from runner.secrets_file import missing_secrets_message

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bodywork-gitops"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "bodywork-gitops"


@dataclass(frozen=True)
class _RunPython:
    """The base interpreter of a run's stages, and a note when it is not the one the pipeline asks for."""

    path: str
    version: str
    note: str = ""


def port_conflicts(pipeline: Pipeline) -> str | None:
    """Two service stages with one port: fine on Kubernetes (a pod each), impossible on one machine."""
    by_port: dict[int, list[str]] = {}
    for stage in pipeline.service_stages():
        assert stage.service is not None
        by_port.setdefault(stage.service.port, []).append(stage.name)
    clashes = [(port, names) for port, names in by_port.items() if len(names) > 1]
    if not clashes:
        return None
    described = "; ".join(
        f"stages {' and '.join(names)} {'both' if len(names) == 2 else 'all'} declare port {port}"
        for port, names in clashes
    )
    return (
        f"{described}: on Kubernetes each service has an address of its own, but locally they share "
        f"this machine's, so give each a port of its own (stages.{clashes[0][1][-1]}.service.port); "
        "other stages still reach them by stage name"
    )


class LocalBackend:
    name = "local"

    def __init__(
        self,
        cache_dir: Path | None = None,
        state_dir: Path | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        host: str = "127.0.0.1",
        secrets_file: Path | None = None,
        restart_policy: RestartPolicy | None = None,
        cache_limits: Limits | None = None,
        isolate_stages: bool = False,
        stage_user: str | None = None,
        stage_niceness: int = 0,
    ) -> None:
        """`isolate_stages`: when this process is root, run stages as `stage_user`, by default as a user
        of their environment's own (:mod:`runner.backends.isolation`); stages always die with this
        process, and what a killed predecessor left running is stopped here. `stage_niceness` (0-19)
        lowers the CPU priority of stages (and what they start), so that the process starting them
        stays responsive."""
        if not 0 <= stage_niceness <= 19:
            raise StageError(
                f"the backend option stage_niceness must be from 0 (as this process) to 19 (idle CPU "
                f"only), not {stage_niceness}"
            )
        self.venvs = VenvCache((cache_dir or default_cache_dir()) / "venvs", cache_limits)
        self.state_dir = state_dir or default_state_dir()
        self.isolation = Isolation.for_state_dir(
            self.state_dir, stage_user, isolate_stages, niceness=stage_niceness
        )
        self.isolation.reap()
        self.secrets = secrets or {}
        self.secrets_file = secrets_file
        self.services = LocalServices(host, restart_policy or RestartPolicy(), self.isolation)
        self.venvs.protected = lambda: {s.python.parent.parent.name for s in self.services.running.values()}
        self._proxies: dict[str, NameProxy] = {}
        self._pipelines: dict[str, Pipeline] = {}
        self._pythons: dict[str, _RunPython] = {}
        # Runs between start_run and finish_run: their workspaces are in use.
        self._active_runs: dict[str, str] = {}  # run id -> environment

    # -- runs ---------------------------------------------------------------------------------------

    def workspace(self, run: RunContext) -> Path:
        return self.state_dir / "runs" / run.run_id

    def artifacts_dir(self, environment: str) -> Path:
        return self.state_dir / "environments" / environment / "artifacts"

    async def start_run(self, run: RunContext) -> None:
        """Checks what would fail later (secrets, ports, the Python version), then copies the files."""
        self._active_runs[run.run_id] = run.environment
        problem = missing_secrets_message(run.pipeline, self.secrets, self.secrets_file)
        problem = problem or port_conflicts(run.pipeline)
        if problem:
            raise StageError(problem)
        self._pythons[run.run_id] = await self._python_for(run.pipeline)
        self._pipelines[run.environment] = run.pipeline
        await self._start_proxy(run.environment)
        workspace = self.workspace(run)
        if not workspace.exists():
            workspace.parent.mkdir(parents=True, exist_ok=True)
            # A copy, so that a service can be restored from exactly its own commit later on and
            # stages never write into the repository they came from. Links are copied as links.
            ignore = shutil.ignore_patterns(".git")
            await asyncio.to_thread(shutil.copytree, run.source_dir, workspace, symlinks=True, ignore=ignore)
        self.artifacts_dir(run.environment).mkdir(parents=True, exist_ok=True)

    async def _start_proxy(self, environment: str) -> None:
        proxy = self._proxies.get(environment)
        if proxy is not None and proxy.serving:
            return
        if proxy is not None:
            await proxy.close()
        upstream = os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY")  # the user's own proxy
        proxy = NameProxy(self._resolver(environment), upstream)
        await proxy.start()
        self._proxies[environment] = proxy

    @staticmethod
    async def _python_for(pipeline: Pipeline) -> _RunPython:
        choice = choose_python(pipeline.pipeline.python_version, pipeline.pipeline.docker_image)
        path, version = await asyncio.to_thread(interpreter_for, choice)
        note = ""
        if choice is not None and version != choice.version:
            note = (
                f"{choice.reason}, which is not installed here: the stages run on Python {version}; "
                f"{install_hint(choice.version)}"
            )
        return _RunPython(path, version, note)

    def _resolver(self, environment: str) -> Callable[[str], int | None]:
        def resolve(host: str) -> int | None:
            pipeline = self._pipelines.get(environment)
            declared = {s.name: s for s in pipeline.service_stages()} if pipeline else {}
            return self.services.port_for_host(environment, host, declared)

        return resolve

    async def finish_run(self, run: RunContext, succeeded: bool) -> None:
        if succeeded:
            wanted = {s.name for s in run.pipeline.service_stages()}
            await self.services.stop_where(run.environment, keep=wanted)
        self._active_runs.pop(run.run_id, None)
        self._pythons.pop(run.run_id, None)
        if run.environment not in self._active_runs.values() and not any(
            s.environment == run.environment for s in self.services.running.values()
        ):
            proxy = self._proxies.pop(run.environment, None)  # nothing left that could call a service
            if proxy is not None:
                await proxy.close()
        self._remove_unused_workspaces()

    def _remove_unused_workspaces(self) -> None:
        """Removes the workspaces of finished runs whose files no running service needs."""
        in_use = {service.workspace for service in self.services.running.values()}
        in_use |= {self.state_dir / "runs" / run_id for run_id in self._active_runs}
        runs = self.state_dir / "runs"
        for folder in runs.iterdir() if runs.exists() else ():
            if folder not in in_use:
                shutil.rmtree(folder, ignore_errors=True)

    async def teardown(self, environment: str) -> None:
        """Stops the environment's services and deletes its artifacts."""
        await self.services.stop_where(environment)
        proxy = self._proxies.pop(environment, None)
        if proxy is not None:
            await proxy.close()
        shutil.rmtree(self.artifacts_dir(environment).parent, ignore_errors=True)
        self._remove_unused_workspaces()

    async def close(self) -> None:
        """Stops every service this backend started, and the name proxies."""
        await self.services.stop_all()
        proxies, self._proxies = list(self._proxies.values()), {}
        await asyncio.gather(*(p.close() for p in proxies))
        self._remove_unused_workspaces()

    # -- the service inventory (runner.backends.base.ServiceInventory) ------------------------------

    def namespace_for(self, environment: str) -> str:
        """Services are kept apart by their run's environment, as it is named."""
        return environment

    async def list_services(self) -> set[tuple[str, str]]:
        """(environment, stage) of every service this backend keeps running."""
        return {(s.environment, s.stage.name) for s in self.services.running.values()}

    async def remove_service(self, namespace: str, name: str) -> RemovedService | None:
        """Stops the service stage `name` of environment `namespace`; None when it is not running."""
        service = self.services.running.pop((namespace, name), None)
        if service is None:
            return None
        await self.services.stop(service)  # supervision first: the exit is not taken for a crash
        self._remove_unused_workspaces()
        return RemovedService(namespace, name)

    def running_services(self) -> list[tuple[str, str, int, str]]:
        """(environment, stage, port, commit) of every service this backend keeps running."""
        return [(s.environment, s.stage.name, s.port, s.commit) for s in self.services.running.values()]

    # -- what every stage needs ---------------------------------------------------------------------

    def _environment_for(self, job: StageJob) -> dict[str, str]:
        env = dict(job.env)
        env[ARTIFACTS_DIR_VARIABLE] = str(self.artifacts_dir(job.run.environment))
        # As in Bodywork's image: modules at the repository's root import from any stage's folder.
        env["PYTHONPATH"] = str(self.workspace(job.run))
        proxy = self._proxies.get(job.run.environment)
        if proxy is not None:
            env.update(proxy.stage_variables(os.environ.get("no_proxy") or os.environ.get("NO_PROXY", "")))
        for variable, secret_name in job.stage.secrets:
            value = self.secrets.get(secret_name, {}).get(variable)
            if value is None:  # start_run checked every secret; this one went missing since
                raise StageError(f"stage {job.stage.name} needs key {variable!r} of secret {secret_name!r}")
            env[variable] = value
            job.secret_values.add(value)
        return stage_environment(env)

    async def _python(self, job: StageJob) -> Path:
        run_python = self._pythons.get(job.run.run_id) or await self._python_for(job.run.pipeline)
        if run_python.note:
            job.log(f"note: {run_python.note}")
        return await self.venvs.ensure(
            notebooks.environment_requirements(job.stage), job.log, run_python.path, run_python.version
        )

    @staticmethod
    def _stage_folder(workspace: Path, stage: Stage) -> Path:
        return (workspace / stage.executable_module_path).parent

    # -- batch stages ------------------------------------------------------------------------------

    async def run_batch(self, job: StageJob) -> StageResult:
        assert job.stage.batch is not None
        settings = job.stage.batch
        env = self._environment_for(job)
        attempts = 1 + settings.retries
        reason = ""
        for attempt in range(1, attempts + 1):
            job.attempt_started(attempt)
            python = await self._python(job)
            reason = await self._attempt(job, python, env, settings.max_completion_time_seconds)
            if not reason:
                return StageResult(StageState.SUCCEEDED, attempt)
            if attempt < attempts:
                job.attempt_failed(attempt, reason)
        return StageResult(StageState.FAILED, attempts, reason)

    async def _attempt(
        self, job: StageJob, python: Path, env: Mapping[str, str], time_limit: int
    ) -> str:
        """Runs one attempt; the reason it failed, or "" when it succeeded."""
        process = await StageProcess.start(
            notebooks.command(python, job.stage),
            self._stage_folder(self.workspace(job.run), job.stage),
            env,
            job.log,
            self.isolation,
        )
        try:
            code = await process.wait(timeout=time_limit or None)
        except TimeoutError:
            return (
                f"did not finish within max_completion_time_seconds ({time_limit}s) and was "
                "stopped with every process it started; raise the limit or make the stage faster"
            )
        finally:
            await process.stop()  # also on cancellation, and for children left behind
        return "" if code == 0 else f"exited with code {code}"

    # -- service stages -----------------------------------------------------------------------------

    async def deploy_service(self, job: StageJob) -> StageResult:
        settings = job.stage.service
        assert settings is not None
        if settings.replicas > 1:
            job.log(f"the local backend runs one process for {settings.replicas} replicas")
        env = self._environment_for(job)
        job.attempt_started(1)
        python = await self._python(job)
        candidate = RunningService(
            job.stage, job.run.environment, job.run.commit, job.run.run_id, self.workspace(job.run),
            python, env, job,
        )
        return await self.services.deploy(candidate)
