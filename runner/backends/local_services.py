"""Service stages on the local backend: start, readiness, rollback, and restarts as Kubernetes does them.

A service is ready once a process of its own listens on its port (checked in /proc, so a port another
program holds never counts). A new version replaces the running one; if it is not ready in time the
previous version is started again from its own workspace. A service that exits after it was ready is
reported with its exit code and last lines, and restarted after a back-off that doubles up to a cap,
like a pod with ``restartPolicy: Always``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.backends import notebooks, ports
from runner.backends.base import StageError, StageJob, StageResult
from runner.backends.isolation import Isolation
from runner.backends.processes import StageProcess
from runner.events import StageState
from runner.model import Stage, dns_label

log = logging.getLogger(__name__)

_READINESS_PROBE_INTERVAL = 0.05
LAST_LINES = 10
_CLUSTER_SUFFIXES = (".svc.cluster.local", ".svc")


@dataclass(frozen=True)
class RestartPolicy:
    """Kubernetes' CrashLoopBackOff: 10 s doubling to 5 min, back to 10 s after 10 min of running."""

    initial_seconds: float = 10.0
    max_seconds: float = 300.0
    reset_after_seconds: float = 600.0

    def delay(self, failures_in_a_row: int) -> float:
        return float(min(self.initial_seconds * 2 ** max(failures_in_a_row - 1, 0), self.max_seconds))


@dataclass
class RunningService:
    stage: Stage
    environment: str
    commit: str
    run_id: str
    workspace: Path
    python: Path
    env: Mapping[str, str]
    job: StageJob
    process: StageProcess | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=LAST_LINES))
    watcher: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self.stage.service is not None
        return self.stage.service.port

    @property
    def startup_seconds(self) -> int:
        assert self.stage.service is not None
        return self.stage.service.max_startup_time_seconds


def names_of(stage: Stage) -> set[str]:
    """The host names that reach a service: its stage name, and that name as a Kubernetes Service."""
    label = dns_label(stage.name)
    return {stage.name.lower(), label, label if label[0].isalpha() else f"s-{label}"}


class LocalServices:
    def __init__(self, host: str, policy: RestartPolicy, isolation: Isolation | None = None) -> None:
        self.host = host
        self.policy = policy
        self.isolation = isolation
        """How service processes are started and recorded (:mod:`runner.backends.isolation`)."""
        self.running: dict[tuple[str, str], RunningService] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    # -- finding services ---------------------------------------------------------------------------

    def holder_of(self, port: int, other_than: tuple[str, str]) -> RunningService | None:
        return next((s for k, s in self.running.items() if s.port == port and k != other_than), None)

    def port_for_host(self, environment: str, host: str, declared: Mapping[str, Stage]) -> int | None:
        """The port of the service `host` names (`stage`, `stage.env`, `stage.env.svc...`), seen
        from `environment`; None for a host that names no service stage. `declared`: the environment's
        service stages, so that a known but stopped service gets a clear error instead of a DNS one."""
        name = host.lower().rstrip(".")
        for suffix in _CLUSTER_SUFFIXES:
            name = name.removesuffix(suffix)
        target_environment = environment
        if "." in name:
            name, target_environment = name.split(".", 1)
        for service in self.running.values():
            if service.environment == target_environment and name in names_of(service.stage):
                return service.port
        if target_environment == environment and any(name in names_of(s) for s in declared.values()):
            raise LookupError(
                f"service stage {name} of environment {environment} is not running; a stage can call "
                "a service of an earlier step of the DAG, once that step has finished"
            )
        return None

    # -- deploying ----------------------------------------------------------------------------------

    async def deploy(self, candidate: RunningService) -> StageResult:
        key = (candidate.environment, candidate.stage.name)
        async with self._locks.setdefault(key, asyncio.Lock()):
            return await self._deploy(candidate, key)

    async def _deploy(self, candidate: RunningService, key: tuple[str, str]) -> StageResult:
        holder = self.holder_of(candidate.port, key)
        if holder is not None:
            raise StageError(
                f"port {candidate.port} is held by service stage {holder.stage.name} (environment "
                f"{holder.environment}, commit {holder.commit[:12]}), which this backend runs; locally "
                f"every service needs a port of its own: change stages.{candidate.stage.name}.service.port"
            )
        previous = self.running.pop(key, None)
        if previous is not None:
            await self.stop(previous)
        elif await self.port_answers(candidate.port):
            raise StageError(
                f"port {candidate.port} is already in use by another program; stop that program or "
                f"change stages.{candidate.stage.name}.service.port"
            )
        await self._start(candidate)
        try:
            problem = await self._wait_until_ready(candidate)
        except asyncio.CancelledError:
            await self._stop_process(candidate)
            await self._restore(key, previous)
            raise
        if problem is None:
            self._register(key, candidate)
            return StageResult(StageState.SUCCEEDED)
        await self._stop_process(candidate)
        restored = await self._restore(key, previous)
        return StageResult(StageState.ROLLED_BACK, 1, f"{problem}; {restored}")

    async def _restore(self, key: tuple[str, str], previous: RunningService | None) -> str:
        if previous is None:
            return "the new version was removed (there was no previous version)"
        # The previous version's own module, args and files: the new version may have moved them.
        await self._start(previous)
        problem = await asyncio.shield(self._wait_until_ready(previous))
        if problem is not None:
            await self._stop_process(previous)
            return f"restoring the previous version (commit {previous.commit[:12]}) failed too: {problem}"
        self._register(key, previous)
        return f"rolled back to the previous version (commit {previous.commit[:12]})"

    def _register(self, key: tuple[str, str], service: RunningService) -> None:
        self.running[key] = service
        service.watcher = asyncio.create_task(self._supervise(service))

    # -- processes ----------------------------------------------------------------------------------

    async def _start(self, service: RunningService) -> None:
        def on_line(line: str) -> None:
            service.recent.append(line)
            service.job.log(line)

        service.recent.clear()
        folder = (service.workspace / service.stage.executable_module_path).parent
        service.process = await StageProcess.start(
            notebooks.command(service.python, service.stage), folder, service.env, on_line, self.isolation
        )
        service.started_at = asyncio.get_running_loop().time()

    async def _stop_process(self, service: RunningService) -> None:
        if service.process is not None:
            await service.process.stop()

    async def stop(self, service: RunningService) -> None:
        """Stops a service for good: its supervision first, so that the exit is not taken for a crash."""
        if service.watcher is not None:
            service.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await service.watcher
            service.watcher = None
        await self._stop_process(service)

    async def stop_where(self, environment: str, keep: set[str] | None = None) -> None:
        for key, service in list(self.running.items()):
            if service.environment == environment and (keep is None or service.stage.name not in keep):
                log.info("stopping service %s of environment %s", service.stage.name, environment)
                del self.running[key]
                await self.stop(service)

    async def stop_all(self) -> None:
        services, self.running = list(self.running.values()), {}
        await asyncio.gather(*(self.stop(s) for s in services))

    # -- readiness and supervision ------------------------------------------------------------------

    async def _wait_until_ready(self, service: RunningService) -> str | None:
        """None once the service's own process listens on its port, else why it never did."""
        assert service.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + service.startup_seconds
        while True:
            if service.process.returncode is not None:
                return (
                    f"service exited with code {service.process.returncode} before it was ready "
                    f"on port {service.port}"
                )
            answers = await self.port_answers(service.port)
            if answers and ports.group_listens_on(service.process.pid, service.port) is not False:
                return None
            if loop.time() >= deadline:
                held = " (it answers, but from a process that is not this service)" if answers else ""
                return (
                    f"service was not ready on port {service.port}{held} within "
                    f"max_startup_time_seconds ({service.startup_seconds}s)"
                )
            await asyncio.sleep(_READINESS_PROBE_INTERVAL)

    async def _supervise(self, service: RunningService) -> None:
        """Restarts the service whenever it exits, with back-off, until it is stopped."""
        loop = asyncio.get_running_loop()
        while True:
            assert service.process is not None
            code = await service.process.wait()
            if loop.time() - service.started_at >= self.policy.reset_after_seconds:
                service.failures_in_a_row = 0
            service.failures_in_a_row += 1
            service.restarts += 1
            delay = self.policy.delay(service.failures_in_a_row)
            log.warning("service %s exited with code %s; restart in %.0fs", service.stage.name, code, delay)
            service.job.service_exited(code, tuple(service.recent), delay, service.restarts)
            await asyncio.sleep(delay)
            await service.process.stop()  # whatever the exited leader left behind in its group
            await self._start(service)
            problem = await self._wait_until_ready(service)
            service.job.service_restarted(service.restarts, problem is None, problem or "")

    async def port_answers(self, port: int) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.host, port), 1.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
