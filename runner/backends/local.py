"""The local backend, the embedded default: stages as processes on this machine.

Batch stages run in a copy of the commit's files (the run's workspace), in their module's folder, with
the interpreter of a cached virtual environment. Services run as processes that are ready once their
port accepts connections; they keep running between runs until :meth:`LocalBackend.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.backends.base import ARTIFACTS_DIR_VARIABLE, RunContext, StageError, StageJob, StageResult
from runner.backends.processes import StageProcess, stage_environment
from runner.backends.venvs import VenvCache
from runner.events import StageState
from runner.model import Stage

log = logging.getLogger(__name__)

NOTEBOOK_EXECUTOR = Path(__file__).resolve().parent.parent / "_stage_support" / "notebook.py"
_READINESS_PROBE_INTERVAL = 0.05


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bodywork-gitops"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "bodywork-gitops"


@dataclass
class _RunningService:
    stage: Stage
    environment: str
    commit: str
    run_id: str
    workspace: Path
    python: Path
    env: Mapping[str, str]
    process: StageProcess

    @property
    def port(self) -> int:
        assert self.stage.service is not None
        return self.stage.service.port


class LocalBackend:
    name = "local"

    def __init__(
        self,
        cache_dir: Path | None = None,
        state_dir: Path | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.venvs = VenvCache((cache_dir or default_cache_dir()) / "venvs")
        self.state_dir = state_dir or default_state_dir()
        self.secrets = secrets or {}
        self.host = host
        self._services: dict[tuple[str, str], _RunningService] = {}
        self._service_locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Runs between start_run and finish_run: their workspaces are in use.
        self._active_runs: set[str] = set()

    # -- runs ---------------------------------------------------------------------------------------

    def workspace(self, run: RunContext) -> Path:
        return self.state_dir / "runs" / run.run_id

    def artifacts_dir(self, environment: str) -> Path:
        return self.state_dir / "environments" / environment / "artifacts"

    async def start_run(self, run: RunContext) -> None:
        self._active_runs.add(run.run_id)
        workspace = self.workspace(run)
        if workspace.exists():
            return
        workspace.parent.mkdir(parents=True, exist_ok=True)
        # A copy, so that a service can be restored from exactly its own commit later on and stages
        # never write into the repository they came from. Links are copied as links, never followed.
        ignore = shutil.ignore_patterns(".git")
        await asyncio.to_thread(shutil.copytree, run.source_dir, workspace, symlinks=True, ignore=ignore)
        self.artifacts_dir(run.environment).mkdir(parents=True, exist_ok=True)

    async def finish_run(self, run: RunContext, succeeded: bool) -> None:
        if succeeded:
            wanted = {s.name for s in run.pipeline.service_stages()}
            for key, service in list(self._services.items()):
                if service.environment == run.environment and service.stage.name not in wanted:
                    log.info("removing service %s: no longer in the pipeline", service.stage.name)
                    await service.process.stop()
                    del self._services[key]
        self._active_runs.discard(run.run_id)
        self._remove_unused_workspaces()

    def _remove_unused_workspaces(self) -> None:
        """Removes the workspaces of finished runs whose files no running service needs."""
        in_use = {service.workspace for service in self._services.values()}
        in_use |= {self.state_dir / "runs" / run_id for run_id in self._active_runs}
        runs = self.state_dir / "runs"
        for folder in runs.iterdir() if runs.exists() else ():
            if folder not in in_use:
                shutil.rmtree(folder, ignore_errors=True)

    async def teardown(self, environment: str) -> None:
        """Stops the environment's services and deletes its artifacts."""
        for key, service in list(self._services.items()):
            if service.environment == environment:
                await service.process.stop()
                del self._services[key]
        shutil.rmtree(self.artifacts_dir(environment).parent, ignore_errors=True)
        self._remove_unused_workspaces()

    async def close(self) -> None:
        """Stops every service this backend started."""
        await asyncio.gather(*(s.process.stop() for s in self._services.values()))
        self._services.clear()
        self._remove_unused_workspaces()

    def running_services(self) -> list[tuple[str, str, int, str]]:
        """(environment, stage, port, commit) of every service this backend keeps running."""
        return [
            (s.environment, s.stage.name, s.port, s.commit) for s in self._services.values()
        ]

    # -- what every stage needs ---------------------------------------------------------------------

    def _environment_for(self, job: StageJob) -> dict[str, str]:
        env = dict(job.env)
        env[ARTIFACTS_DIR_VARIABLE] = str(self.artifacts_dir(job.run.environment))
        group = job.run.pipeline.pipeline.secrets_group
        for variable, secret_name in job.stage.secrets:
            secret = self.secrets.get(secret_name)
            if secret is None or variable not in secret:
                where = f"secret {secret_name!r}" + (f" of group {group!r}" if group else "")
                raise StageError(
                    f"stage {job.stage.name} needs key {variable!r} of {where}, which the secrets "
                    "file does not hold; add it there and pass the file with --secrets-file"
                )
            env[variable] = secret[variable]
            job.secret_values.add(secret[variable])
        return stage_environment(env)

    def _command(self, python: Path, stage: Stage) -> list[str]:
        module = Path(stage.executable_module_path).name
        if stage.is_notebook:
            return [str(python), str(NOTEBOOK_EXECUTOR), module, *stage.args]
        return [str(python), module, *stage.args]

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
            python = await self.venvs.ensure(job.stage.requirements, job.log)
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
            self._command(python, job.stage),
            self._stage_folder(self.workspace(job.run), job.stage),
            env,
            job.log,
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
        assert job.stage.service is not None
        key = (job.run.environment, job.stage.name)
        async with self._service_locks.setdefault(key, asyncio.Lock()):
            return await self._deploy(job, key)

    async def _deploy(self, job: StageJob, key: tuple[str, str]) -> StageResult:
        settings = job.stage.service
        assert settings is not None
        if settings.replicas > 1:
            job.log(f"the local backend runs one process for {settings.replicas} replicas")
        env = self._environment_for(job)
        job.attempt_started(1)
        python = await self.venvs.ensure(job.stage.requirements, job.log)
        previous = self._services.pop(key, None)
        if previous is not None:
            await previous.process.stop()
        elif await self._port_answers(settings.port):
            raise StageError(
                f"port {settings.port} is already in use by another program; stop that program or "
                f"change stages.{job.stage.name}.service.port"
            )
        process = await StageProcess.start(
            self._command(python, job.stage),
            self._stage_folder(self.workspace(job.run), job.stage),
            env,
            job.log,
        )
        candidate = _RunningService(
            job.stage, job.run.environment, job.run.commit, job.run.run_id,
            self.workspace(job.run), python, env, process,
        )
        try:
            problem = await self._wait_until_ready(candidate, settings.max_startup_time_seconds)
        except asyncio.CancelledError:
            await process.stop()
            await self._restore(key, previous, job)
            raise
        if problem is None:
            self._services[key] = candidate
            return StageResult(StageState.SUCCEEDED)
        await process.stop()
        restored = await self._restore(key, previous, job)
        return StageResult(StageState.ROLLED_BACK, 1, f"{problem}; {restored}")

    async def _restore(
        self, key: tuple[str, str], previous: _RunningService | None, job: StageJob
    ) -> str:
        if previous is None:
            return "the new version was removed (there was no previous version)"
        process = await StageProcess.start(
            # The previous version's own module, args and files: the new version may have moved them.
            self._command(previous.python, previous.stage),
            self._stage_folder(previous.workspace, previous.stage),
            previous.env,
            job.log,
        )
        previous.process = process
        assert previous.stage.service is not None
        timeout = previous.stage.service.max_startup_time_seconds
        problem = await asyncio.shield(self._wait_until_ready(previous, timeout))
        if problem is not None:
            await process.stop()
            return f"restoring the previous version (commit {previous.commit[:12]}) failed too: {problem}"
        self._services[key] = previous
        return f"rolled back to the previous version (commit {previous.commit[:12]})"

    async def _wait_until_ready(self, service: _RunningService, timeout: int) -> str | None:
        """None once the service's port accepts connections, else why it never did."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if service.process.returncode is not None:
                return (
                    f"service exited with code {service.process.returncode} before it was ready "
                    f"on port {service.port}"
                )
            if await self._port_answers(service.port):
                return None
            if asyncio.get_running_loop().time() >= deadline:
                return (
                    f"service was not ready on port {service.port} within "
                    f"max_startup_time_seconds ({timeout}s)"
                )
            await asyncio.sleep(_READINESS_PROBE_INTERVAL)

    async def _port_answers(self, port: int) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.host, port), 1.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

