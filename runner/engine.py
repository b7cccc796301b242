"""The workflow engine: steps in order, the stages of a step concurrently, then ``run_on_failure``.

It drives a :class:`~runner.backends.base.Backend` and publishes what happens on an
:class:`~runner.events.EventBus`. It knows nothing of where the run came from or who listens.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.backends.base import Backend, RunContext, StageError, StageJob, StageResult
from runner.events import (
    EventBus,
    LogLine,
    RunFinished,
    RunStarted,
    RunState,
    ServiceExited,
    ServiceRestarted,
    StageAttemptFailed,
    StageFinished,
    StageStarted,
    StageState,
    StepStarted,
)
from runner.model import Pipeline, Stage
from runner.redaction import Redactor
from runner.sources import module_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    pipeline: Pipeline
    source_dir: Path
    commit: str
    environment: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: RunState
    reason: str
    stages: Mapping[str, StageResult]

    @property
    def succeeded(self) -> bool:
        return self.state is RunState.SUCCEEDED


class Engine:
    def __init__(self, backend: Backend, bus: EventBus | None = None) -> None:
        self.backend = backend
        self.bus = bus or EventBus()

    async def run(self, request: RunRequest) -> RunOutcome:
        """Runs the whole pipeline. Cancelling the awaiting task cancels the run cleanly."""
        pipeline = request.pipeline
        context = RunContext(
            run_id=request.run_id,
            pipeline=pipeline,
            source_dir=request.source_dir,
            commit=request.commit,
            environment=request.environment or pipeline.default_namespace,
        )
        redactor = Redactor()
        results: dict[str, StageResult] = {}
        self.bus.publish(
            RunStarted(context.run_id, pipeline.name, context.environment, context.commit, pipeline.steps)
        )
        state, reason = RunState.FAILED, ""
        try:
            state, reason = await self._run_steps(context, redactor, results)
        except asyncio.CancelledError:
            state, reason = RunState.CANCELLED, "the run was cancelled"
            raise
        finally:
            await self._finish(context, state, reason, results)
        return RunOutcome(context.run_id, state, reason, dict(results))

    async def _run_steps(
        self, context: RunContext, redactor: Redactor, results: dict[str, StageResult]
    ) -> tuple[RunState, str]:
        stages = context.pipeline.stages_in_dag()
        problems = [p for s in stages if (p := module_problem(context.source_dir, s))]
        if problems:
            return await self._fail(context, redactor, results, "; ".join(problems))
        try:
            await self.backend.start_run(context)
        except StageError as error:
            return await self._fail(context, redactor, results, f"could not prepare the environment: {error}")

        for index, step in enumerate(context.pipeline.steps):
            self.bus.publish(StepStarted(context.run_id, index, step))
            stages = [context.pipeline.stage(name) for name in step]
            outcomes = await asyncio.gather(
                *(self._run_stage(context, redactor, stage, {}) for stage in stages)
            )
            results.update(zip(step, outcomes, strict=True))
            failed = [(name, r) for name, r in zip(step, outcomes, strict=True) if not r.succeeded]
            if failed:
                message = "; ".join(f"stage {name} {r.state.value}: {r.reason}" for name, r in failed)
                return await self._fail(context, redactor, results, message)
        return RunState.SUCCEEDED, ""

    async def _fail(
        self, context: RunContext, redactor: Redactor, results: dict[str, StageResult], reason: str
    ) -> tuple[RunState, str]:
        handler = context.pipeline.pipeline.run_on_failure
        if handler and handler in context.pipeline.stages:
            stage = context.pipeline.stage(handler)
            results[handler] = await self._run_stage(
                context, redactor, stage, {"EXCEPTION_MESSAGE": redactor.mask(reason)}
            )
        return RunState.FAILED, reason

    async def _run_stage(
        self, context: RunContext, redactor: Redactor, stage: Stage, extra_env: Mapping[str, str]
    ) -> StageResult:
        run_id, name = context.run_id, stage.name
        started_at = time.time()
        attempts = 0

        def attempt_started(attempt: int) -> None:
            nonlocal attempts
            attempts = attempt
            self.bus.publish(StageStarted(run_id, name, stage.kind.value, attempt))

        def attempt_failed(attempt: int, reason: str) -> None:
            self.bus.publish(StageAttemptFailed(run_id, name, attempt, redactor.mask(reason)))

        job = StageJob(
            run=context,
            stage=stage,
            env={"GIT_COMMIT_HASH": context.commit, **extra_env},
            log=lambda line: self.bus.publish(LogLine(run_id, name, redactor.mask(line))),
            attempt_started=attempt_started,
            attempt_failed=attempt_failed,
            service_exited=lambda code, lines, delay, restarts: self.bus.publish(
                ServiceExited(run_id, name, code, restarts, delay, tuple(redactor.mask(x) for x in lines))
            ),
            service_restarted=lambda restarts, ready, reason: self.bus.publish(
                ServiceRestarted(run_id, name, restarts, ready, redactor.mask(reason))
            ),
        )
        redactor.track(job.secret_values)
        try:
            if stage.service is not None:
                result = await self.backend.deploy_service(job)
            else:
                result = await self.backend.run_batch(job)
        except asyncio.CancelledError:
            self.bus.publish(
                StageFinished(run_id, name, StageState.CANCELLED, attempts, started_at, "cancelled")
            )
            raise
        except StageError as error:
            result = StageResult(StageState.FAILED, max(attempts, 1), str(error))
        except Exception as error:
            # A backend bug fails this stage only: raising would leave the step's other stages running
            # unsupervised (gather does not cancel them).
            log.exception("the %s backend failed on stage %s", self.backend.name, name)
            reason = f"internal error in the {self.backend.name} backend: {type(error).__name__}: {error}"
            result = StageResult(StageState.FAILED, max(attempts, 1), reason)
        result = StageResult(result.state, result.attempts, redactor.mask(result.reason))
        self.bus.publish(
            StageFinished(run_id, name, result.state, result.attempts, started_at, result.reason)
        )
        return result

    async def _finish(
        self, context: RunContext, state: RunState, reason: str, results: Mapping[str, StageResult]
    ) -> None:
        try:
            # Shielded so that a cancelled run still gets its clean-up.
            await asyncio.shield(self.backend.finish_run(context, state is RunState.SUCCEEDED))
        finally:
            self.bus.publish(RunFinished(context.run_id, state, reason))
