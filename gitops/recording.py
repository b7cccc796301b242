"""What a run's engine events become: stage records and log lines in the store, progress in the
commit status, stage durations in the metrics, and each deployed service's URL.

:class:`Recorder` subscribes to one run's :class:`~runner.events.EventBus`; the log lines are buffered
and written in the store's group commits, never awaited.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gitops.metrics import Metrics
from gitops.statuses import StatusState
from gitops.store import RunRecord, Store
from runner.events import Event, LogLine, StageAttemptFailed, StageFinished, StageStarted, StageState
from runner.model import Pipeline, Stage

log = logging.getLogger(__name__)

_LOG_FLUSH_SECONDS = 0.25


class Progress(Protocol):
    """Where a run's progress goes as a commit status (:class:`gitops.runs.StatusReporter`)."""

    def report(self, run: RunRecord, state: StatusState, description: str) -> None: ...


def service_url(backend: str, namespace: str, stage: Stage, local_host: str = "127.0.0.1") -> str:
    """Where a deployed service stage answers: its Kubernetes Service in the cluster, or the local
    backend's host (its ``host`` option)."""
    port = stage.service.port if stage.service is not None else 80
    if backend == "kubernetes":
        return f"http://{stage.name}.{namespace}.svc.cluster.local:{port}"
    return f"http://{local_host}:{port}"


class Recorder:
    """Subscribes to the engine's events: stages and logs into the store, progress into statuses,
    stage durations into the metrics."""

    def __init__(
        self,
        store: Store,
        reporter: Progress,
        run: RunRecord,
        pipeline: Pipeline,
        metrics: Metrics | None = None,
        backend: str = "local",
        local_host: str = "127.0.0.1",
    ) -> None:
        self.store = store
        self.reporter = reporter
        self.run = run
        self.pipeline = pipeline
        self.metrics = metrics
        self.backend = backend
        self.local_host = local_host
        self.steps = pipeline.steps
        self.total = len(pipeline.stages_in_dag())
        self.started: set[str] = set()
        self._buffer: list[tuple[str, str, float]] = []

    def __call__(self, event: Event) -> None:
        run_id = self.run.id
        if isinstance(event, LogLine):
            self._buffer.append((event.stage, event.line, event.at))
            return
        if isinstance(event, StageStarted):
            self.store.submit(
                self.store.stage_started, run_id, event.stage, event.kind, event.attempt, event.at
            )
            self.started.add(event.stage)
            step = next((i for i, s in enumerate(self.steps) if event.stage in s), -1) + 1
            attempt = f", attempt {event.attempt}" if event.attempt > 1 else ""
            self.reporter.report(
                self.run,
                StatusState.RUNNING,
                f"Running step {step}/{len(self.steps)}: stage {event.stage}{attempt} "
                f"({len(self.started)}/{self.total} stages started)",
            )
        elif isinstance(event, StageAttemptFailed):
            self._buffer.append((event.stage, f"attempt {event.attempt} failed: {event.reason}", event.at))
        elif isinstance(event, StageFinished):
            self.flush()
            self.store.submit(
                self.store.stage_finished, run_id, event.stage, event.state.value, event.attempts,
                event.started_at, event.at, event.reason,
            )
            self._stage_done(event)

    def _stage_done(self, event: StageFinished) -> None:
        context = {"stage": event.stage}
        log.info("stage %s %s in %.1fs", event.stage, event.state.value, event.duration, extra=context)
        if self.metrics is not None:
            self.metrics.stage_finished(event.stage, event.state.value, event.duration)
        stage = self.pipeline.stages.get(event.stage)
        if stage is not None and stage.service is not None and event.state is StageState.SUCCEEDED:
            namespace = self.run.namespace or self.pipeline.default_namespace
            url = service_url(self.backend, namespace, stage, self.local_host)
            self.store.submit(self.store.set_stage_url, self.run.id, event.stage, url)

    def flush(self) -> None:
        """Queues the buffered log lines for the store (written in order, never awaited)."""
        if self._buffer:
            lines, self._buffer = self._buffer, []
            self.store.submit(self.store.add_logs, self.run.id, lines)

    async def flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(_LOG_FLUSH_SECONDS)
            self.flush()
