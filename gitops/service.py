"""The service's parts wired together: store, mirrors, backend, statuses, dispatcher.

No HTTP here: :mod:`gitops.web` turns requests into calls of :class:`Service`. The service starts,
stops and notifies the active extensions (:mod:`gitops.extensions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops import extensions as _extensions
from gitops.environments import Target, target_for
from gitops.extensions import Extension
from gitops.metrics import Metrics
from gitops.mirrors import Mirrors
from gitops.queue import Dispatcher
from gitops.runs import RunExecutor, StatusReporter
from gitops.schedules.service import ScheduleService
from gitops.settings import RepositorySettings, Settings
from gitops.status import RunStatus
from gitops.statuses import StatusPublisher, create_publisher
from gitops.store import Accepted, NewRun, RunRecord, Store
from gitops.webhooks import PushEvent
from runner.backends import create_backend
from runner.backends.base import Backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What became of a push: a run (new or the one a redelivery already started), or a reason."""

    run: RunRecord | None
    duplicate: bool = False
    reason: str = ""


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        publisher: StatusPublisher | None = None,
        backend: Backend | None = None,
        extensions: Sequence[Extension] | None = None,
    ) -> None:
        """`extensions`: the installed ones by default; only those configured in `settings` are used."""
        self.settings = settings
        installed = _extensions.discover() if extensions is None else extensions
        self.extensions = _extensions.active(installed, settings.extensions)
        self._publisher = publisher
        self._own_publisher = publisher is None
        self._backend = backend
        self._own_backend = backend is None
        self.store: Store | None = None
        self.dispatcher: Dispatcher | None = None
        self.executor: RunExecutor | None = None
        self.reporter = StatusReporter(settings, publisher, self._observe)
        self.mirrors: Mirrors | None = None
        self.schedules: ScheduleService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.draining = False
        """Set when the server begins to shut down: long-lived responses (live streams) end."""
        self.metrics = Metrics(queue_depth=self._queue_depth)
        """The service's Prometheus metrics (``GET /metrics``); extensions count their calls here."""

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.store_path, on_commit=self.metrics.store_write)
        self.mirrors = Mirrors(settings.mirrors_dir, settings.repositories)
        if self._publisher is None:
            self._publisher = create_publisher(
                min_interval_seconds=settings.status_min_interval_seconds
            )
        self._publisher.on_call = self.metrics.status_call
        await self._publisher.start()
        self.reporter = StatusReporter(settings, self._publisher, self._observe)
        if self._backend is None:
            options: dict[str, Any] = dict(settings.backend_options)
            if settings.backend == "local":
                options["cache_dir"] = Path(options.get("cache_dir", settings.data_dir / "local-cache"))
                options["state_dir"] = Path(options.get("state_dir", settings.data_dir / "local-state"))
            self._backend = create_backend(settings.backend, **options)
        self.executor = RunExecutor(
            settings, self.store, self.mirrors, self._backend, self.reporter, self.metrics
        )
        self.store.prune_deliveries(time.time() - settings.delivery_retention_days * 86400)
        recovered = self.store.recover(settings.restart_reruns)
        for run in recovered.requeued:
            self.reporter.requeued(run)
        for run in recovered.failed:
            self.reporter.final(run)
        for run in self.store.queued():
            if run not in recovered.requeued:
                self.reporter.queued(run)
        self.dispatcher = Dispatcher(
            self.store, self.executor.execute, settings.max_concurrent_runs, settings.quiet_period_seconds
        )
        self.schedules = ScheduleService(self, self.store)
        self.executor.lifecycle = self.schedules
        self.dispatcher.start()
        await self.schedules.start()
        for extension in self.extensions:
            await extension.start(self)

    def _observe(self, run: RunRecord) -> None:
        """Tells the extensions of a change, on the event loop even when the change was recorded in
        the store's writer thread (a run's final status is)."""
        self.metrics.run_changed(run)
        if not self.extensions:
            return
        loop = self._loop
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop or loop is None:
            _extensions.notify(self.extensions, run)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(_extensions.notify, self.extensions, run)

    async def stop(self) -> None:
        for extension in reversed(self.extensions):
            try:
                await extension.stop()
            except Exception:  # the service still stops
                log.exception("extension %r failed to stop", extension.section)
        if self.schedules is not None:
            await self.schedules.stop()
        if self.executor is not None:
            self.executor.shutting_down = True
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self._backend is not None and self._own_backend:
            await self._backend.close()
        if self._publisher is not None and self._own_publisher:
            await self._publisher.stop()
        if self.store is not None:
            self.store.close()

    def _queue_depth(self) -> int:
        return len(self.store.queued()) if self.store is not None else 0

    @property
    def ready(self) -> bool:
        return (
            self.store is not None
            and self.dispatcher is not None
            and self.dispatcher.running
            and self.store.ping()
        )

    @property
    def backend(self) -> Backend | None:
        """The runner backend (once started); extensions delete services through it."""
        return self._backend

    @property
    def publisher(self) -> StatusPublisher | None:
        return self._publisher

    def require_store(self) -> Store:
        if self.store is None:
            raise RuntimeError("the service is not started")
        return self.store

    # -- accepting runs -------------------------------------------------------------------------

    def matching_repositories(self, provider: str) -> list[RepositorySettings]:
        return [r for r in self.settings.repositories if r.provider == provider]

    async def accept_push(self, repository: RepositorySettings, event: PushEvent) -> Decision:
        """Records the run a verified push asks for (before the webhook is answered), or says why not."""
        target = target_for(repository, event.ref, event.deleted)
        if isinstance(target, str):
            return Decision(None, reason=target)
        commit = event.before if target.action == "teardown" else event.commit
        keys = [f"{event.provider}:delivery:{event.idempotency_key}"]
        if event.delivery_id and event.delivery_id != event.idempotency_key:
            keys.append(f"{event.provider}:delivery:{event.delivery_id}")
        return await self._enqueue(
            repository, event.ref, commit, target, "webhook", event.delivery_id, keys
        )

    async def trigger(
        self,
        repository: RepositorySettings,
        ref: str,
        commit: str,
        target: Target,
        key: str | None,
        trigger: str = "manual",
    ) -> Decision:
        """A run asked for by a person: through the API (``manual``) or chat (``slack:<user>``)."""
        keys = [f"manual:{key}"] if key else []
        return await self._enqueue(repository, ref, commit, target, trigger, "", keys)

    async def _enqueue(
        self,
        repository: RepositorySettings,
        ref: str,
        commit: str,
        target: Target,
        trigger: str,
        delivery_id: str,
        keys: list[str],
    ) -> Decision:
        new = NewRun(
            repository=repository.key,
            provider=repository.provider,
            ref=ref,
            commit=commit,
            environment=target.environment,
            namespace=target.namespace,
            preview=target.preview,
            action=target.action,
            trigger=trigger,
            delivery_id=delivery_id,
        )
        store = self.require_store()
        # Committed (fsync'ed) before this returns, in a batch with whatever else is being written.
        accepted = await asyncio.wrap_future(store.submit(store.accept, new, keys))
        if accepted.duplicate:
            return Decision(accepted.run, duplicate=True)
        self.announce(accepted)
        return Decision(accepted.run)

    def announce(self, accepted: Accepted) -> None:
        """A run was queued (by a push, the API or a schedule): wake the dispatcher, report statuses."""
        if self.dispatcher is not None:
            self.dispatcher.wake()
        self.reporter.queued(accepted.run)
        for old in accepted.superseded:
            self.reporter.superseded(old, accepted.run)

    def cancel(self, run_id: str, reason: str = "cancelled through the API") -> RunRecord | None:
        """Cancels a queued or running run; returns the run as it is now (None when unknown)."""
        store = self.require_store()
        run = store.get(run_id)
        if run is None or run.state.is_final:
            return run
        if run.state is RunStatus.QUEUED:
            done = store.finish(run_id, RunStatus.CANCELLED, f"{reason} before it started")
            if done is not None:
                self.reporter.final(done)
                return done
        elif self.dispatcher is not None and self.executor is not None:
            self.executor.cancel_reasons[run_id] = reason
            self.dispatcher.cancel(run_id)
        return store.get(run_id)

