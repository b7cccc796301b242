"""Executes one queued run: fetch, check out, load bodywork.yaml, run the engine, record, report.

Also the one place that decides WHEN and WHAT commit status to publish for a run (through the
:class:`~gitops.statuses.StatusPublisher`, which never blocks and never raises).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from gitops.logs import run_context
from gitops.metrics import Metrics
from gitops.mirrors import CommitNotFound, MirrorError, Mirrors
from gitops.recording import Recorder
from gitops.refs import ZERO_SHA, is_full_sha
from gitops.settings import RepositorySettings, Settings
from gitops.status import FailureKind, RunStatus
from gitops.statuses import CommitStatus, StatusPublisher, StatusState
from gitops.store import RunRecord, Store
from runner.backends.base import Backend, StageError
from runner.config import ConfigError, load_pipeline
from runner.engine import Engine, RunRequest
from runner.events import (
    EventBus,
)
from runner.model import Pipeline

log = logging.getLogger(__name__)

# How many configuration problems the commit status names (the run page lists all of them).
_PROBLEMS_IN_STATUS = 2


def short(sha: str) -> str:
    return sha[:10]


class StatusReporter:
    """Builds commit statuses for runs and hands them to the publisher; tells `observer` (the
    extensions) of every change of a run's status."""

    def __init__(
        self,
        settings: Settings,
        publisher: StatusPublisher | None,
        observer: Callable[[RunRecord], None] | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.observer = observer

    def _changed(self, run: RunRecord) -> None:
        if self.observer is not None:
            self.observer(run)

    def target_url(self, run_id: str) -> str:
        return f"{self.settings.public_url}/runs/{run_id}"

    def report(self, run: RunRecord, state: StatusState, description: str) -> None:
        if self.publisher is None:
            return
        try:
            status = self.status_for(run, state, description)
            if status is not None:
                self.publisher.publish(status)
        except Exception:  # reporting never fails a run
            log.exception("could not publish a status for run %s", run.id)

    def final_status(self, run: RunRecord) -> CommitStatus | None:
        """The status a finished run shows on its commit (None: it shows none)."""
        return self.status_for(run, *_final_status(run))

    def status_for(self, run: RunRecord, state: StatusState, description: str) -> CommitStatus | None:
        repository = self.settings.repository(run.provider, run.repository_name)
        if repository is None or repository.api_token is None:
            return None
        if not is_full_sha(run.commit) or run.commit == ZERO_SHA:
            return None
        return CommitStatus(
            provider=repository.provider,
            api_base=repository.api_base,
            repository=repository.name,
            token=repository.api_token.reveal(),
            sha=run.commit,
            ref=run.ref,
            context=f"bodywork/{run.environment}",
            state=state,
            description=description,
            target_url=self.target_url(run.id),
        )

    def queued(self, run: RunRecord) -> None:
        what = "teardown" if run.action == "teardown" else "run"
        self.report(run, StatusState.PENDING, f"Queued: {what} of {run.environment} waits for its turn")
        self._changed(run)

    def requeued(self, run: RunRecord) -> None:
        self.report(
            run, StatusState.PENDING, "Queued again: the service restarted while this run was running"
        )
        self._changed(run)

    def started(self, run: RunRecord) -> None:
        self.report(run, StatusState.RUNNING, f"Running: fetching {short(run.commit)}")
        self._changed(run)

    def superseded(self, run: RunRecord, by: RunRecord) -> None:
        self.report(run, StatusState.CANCELED, f"Superseded by {short(by.commit)}; not run")
        self._changed(run)

    def final(self, run: RunRecord) -> None:
        state, description = _final_status(run)
        self.report(run, state, description)
        self._changed(run)


def _final_status(run: RunRecord) -> tuple[StatusState, str]:
    elapsed = ""
    if run.started_at and run.finished_at:
        elapsed = f" in {run.finished_at - run.started_at:.0f}s"
    if run.state is RunStatus.SUCCEEDED:
        done = "Torn down" if run.action == "teardown" else "Deployed"
        return StatusState.SUCCESS, f"{done} {run.environment}{elapsed}"
    if run.state is RunStatus.SUPERSEDED:
        return StatusState.CANCELED, f"Superseded; not run ({run.reason})"
    if run.state is RunStatus.CANCELLED:
        return StatusState.CANCELED, f"Cancelled: {run.reason}" if run.reason else "Cancelled"
    if run.problems:
        first = "; ".join(run.problems[:_PROBLEMS_IN_STATUS])
        more = len(run.problems) - _PROBLEMS_IN_STATUS
        suffix = f" (+{more} more on the run page)" if more > 0 else ""
        return StatusState.FAILURE, f"Invalid bodywork.yaml: {first}{suffix}"
    if run.failure is FailureKind.GIT:
        return StatusState.ERROR, f"Could not get the commit: {run.reason}"
    return StatusState.FAILURE, f"Failed{elapsed}: {run.reason}"


class Lifecycle(Protocol):
    """What else happens when a deploy loads its pipeline, and when an environment is torn down."""

    async def loaded(self, run: RunRecord, pipeline: Pipeline) -> None: ...

    async def torn_down(self, run: RunRecord) -> None: ...


class RunExecutor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        mirrors: Mirrors,
        backend: Backend,
        reporter: StatusReporter,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.mirrors = mirrors
        self.backend = backend
        self.reporter = reporter
        self.metrics = metrics
        self.shutting_down = False
        self.cancel_reasons: dict[str, str] = {}
        """Why a running run is being cancelled (by id), for its final state."""
        self.lifecycle: Lifecycle | None = None
        """Told when a deploy loads its pipeline and when a teardown succeeds (the schedules)."""

    def note(self, run_id: str, line: str) -> None:
        self.store.submit(self.store.add_logs, run_id, [("", line, time.time())])

    def _finish(
        self,
        run: RunRecord,
        status: RunStatus,
        reason: str,
        problems: list[str] | None = None,
        failure: FailureKind | None = None,
    ) -> None:
        """Records the end of the run after every write queued before it; then its final status.

        Not awaited, so that it also works while the run's task is being cancelled."""
        future = self.store.submit(
            self.store.finish, run.id, status, reason, problems or [], time.time(), failure
        )

        def done(result: concurrent.futures.Future[RunRecord | None]) -> None:
            if result.exception() is None and (record := result.result()) is not None:
                context = {"run_id": record.id, "environment": record.environment}
                log.info("run %s %s: %s", record.id, record.state.value, record.reason or "-", extra=context)
                self.reporter.final(record)

        future.add_done_callback(done)

    async def execute(self, run: RunRecord) -> None:
        """Runs `run` (already marked running) to its end, or until cancelled."""
        checkout = self.settings.work_dir / run.id
        with run_context(run_id=run.id, environment=run.environment):
            log.info("run %s of %s at %s started", run.id, run.ref, short(run.commit))
            await self._execute_guarded(run, checkout)

    async def _execute_guarded(self, run: RunRecord, checkout: Path) -> None:
        try:
            await self._execute(run, checkout)
        except asyncio.CancelledError:
            reason = self.cancel_reasons.pop(run.id, "cancelled through the API")
            if not self.shutting_down:
                self._finish(run, RunStatus.CANCELLED, reason)
            # When the service shuts down the run stays 'running': the next start re-runs it.
            raise
        except Exception as error:
            log.exception("run %s failed in the service", run.id)
            self._finish(
                run, RunStatus.FAILED, f"internal error: {type(error).__name__}: {error}", None,
                FailureKind.INTERNAL,
            )
        finally:
            shutil.rmtree(checkout, ignore_errors=True)

    async def _execute(self, run: RunRecord, checkout: Path) -> None:
        repository = self.settings.repository(run.provider, run.repository_name)
        if repository is None:
            self._finish(
                run, RunStatus.FAILED, f"repository {run.repository_name} is no longer configured", None,
                FailureKind.UNCONFIGURED,
            )
            return
        if run.action == "teardown":
            await self._teardown(run)
            return
        self.reporter.started(run)
        try:
            fetched = await self.mirrors.ensure_commit(
                repository, run.commit, self.settings.fetch_attempts, self.settings.fetch_retry_seconds
            )
            if run.trigger == "webhook" and (
                stale := await self._no_longer_the_tip(run, repository, fetch=not fetched)
            ):
                self.note(run.id, stale)
                self._finish(run, RunStatus.CANCELLED, stale)
                return
            await self.mirrors.checkout(repository, run.commit, checkout)
            message = await self.mirrors.message(repository, run.commit)
            self.store.submit(self.store.set_message, run.id, message)
        except (CommitNotFound, MirrorError) as error:
            self.note(run.id, str(error))
            self._finish(run, RunStatus.FAILED, str(error), None, FailureKind.GIT)
            return
        pipeline = await self._load(run, repository, checkout)
        if pipeline is None:
            return
        if self.lifecycle is not None:
            await self.lifecycle.loaded(run, pipeline)
        await self._run_engine(run, pipeline, checkout / repository.pipeline_path)

    async def _no_longer_the_tip(
        self, run: RunRecord, repository: RepositorySettings, fetch: bool
    ) -> str | None:
        """Why a pushed commit must not be deployed because its ref has moved on since (a newer push,
        or a captured webhook replayed to roll an environment back), or None. Fetches first unless
        `fetch` is False (the commit's own fetch was just made: one fetch per run, not two).

        A fetch that fails here is left to the fetch of the commit, which retries and reports it."""
        try:
            tip = await self.mirrors.resolve(repository, run.ref, fetch)
        except MirrorError:
            return None
        if tip == run.commit:
            return None
        now = f"now points at {short(tip)}" if tip else "no longer exists"
        return (
            f"not deployed: {run.ref} {now}, not at {short(run.commit)}; a push that is no longer "
            "the tip of its ref never deploys over a newer one"
        )

    async def _load(self, run: RunRecord, repository: RepositorySettings, checkout: Path) -> Pipeline | None:
        folder = checkout / repository.pipeline_path
        try:
            return await asyncio.to_thread(load_pipeline, folder)
        except ConfigError as error:
            problems = list(error.problems) or [str(error)]
            for problem in problems:
                self.note(run.id, f"bodywork.yaml: {problem}")
            plural = "s" if len(problems) > 1 else ""
            reason = f"bodywork.yaml is invalid ({len(problems)} problem{plural})"
            self._finish(run, RunStatus.FAILED, reason, problems, FailureKind.CONFIG)
            return None

    async def _run_engine(self, run: RunRecord, pipeline: Pipeline, source: Path) -> None:
        namespace = run.namespace or pipeline.default_namespace
        await asyncio.wrap_future(
            self.store.submit(self.store.set_pipeline, run.id, pipeline.name, pipeline.steps, namespace)
        )
        run = self.store.get(run.id) or run
        recorder = Recorder(
            self.store, self.reporter, run, pipeline, self.metrics, self.backend.name,
            str(self.settings.backend_options.get("host", "127.0.0.1")),
        )
        flusher = asyncio.create_task(recorder.flush_periodically())
        engine = Engine(self.backend, EventBus(recorder))
        try:
            outcome = await engine.run(RunRequest(pipeline, source, run.commit, namespace, run.id))
        finally:
            flusher.cancel()
            recorder.flush()
        status = RunStatus.of_outcome(outcome.state)
        failure = FailureKind.PIPELINE if status is RunStatus.FAILED else None
        self._finish(run, status, outcome.reason, None, failure)

    async def _teardown(self, run: RunRecord) -> None:
        environment = run.namespace or run.environment
        try:
            await self.backend.teardown(environment)
        except StageError as error:
            self._finish(run, RunStatus.FAILED, str(error), None, FailureKind.PIPELINE)
            return
        self.note(run.id, f"environment {environment} torn down: its services are stopped")
        if self.lifecycle is not None:
            await self.lifecycle.torn_down(run)
        self._finish(run, RunStatus.SUCCEEDED, "")
