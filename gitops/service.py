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
from gitops.statuses import StatusPublisher, StatusState, create_publisher
from gitops.store import Accepted, NewRun, RunRecord, Store
from gitops.store.outbox import StatusOutbox
from gitops.webhooks import PushEvent
from runner.backends import create_backend
from runner.backends.base import Backend
from runner.backends.isolation import Isolation, make_undumpable

log = logging.getLogger(__name__)

_FINAL_STATUS_LOOKBACK_SECONDS = 24 * 3600.0
_STARTUP_STATUS_SECONDS = 1.0
_FINAL_STATES = {s.value for s in StatusState if s.is_final}


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
        self._draining = False
        self.metrics = Metrics(queue_depth=self._queue_depth)
        """The service's Prometheus metrics (``GET /metrics``); extensions count their calls here."""

    @property
    def draining(self) -> bool:
        """Set when the server begins to shut down: long-lived responses (live streams) end."""
        return self._draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self._draining = value
        if value and self.store is not None:
            self.store.changes.stop()  # the live streams waiting for a change look up now, and end

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        _keep_private(settings)
        self.store = Store(
            settings.store_path, on_commit=self.metrics.store_write, fsync_commits=settings.fsync_commits
        )
        self.mirrors = Mirrors(settings.mirrors_dir, settings.repositories)
        outbox = StatusOutbox(self.store, self._token_for)
        if self._publisher is None:
            self._publisher = create_publisher(
                min_interval_seconds=settings.status_min_interval_seconds, journal=outbox
            )
        self._publisher.on_call = self.metrics.status_call
        await self._publisher.start()
        self.reporter = StatusReporter(settings, self._publisher, self._observe)
        if self._backend is None:
            options: dict[str, Any] = dict(settings.backend_options)
            if settings.backend == "local":
                options["cache_dir"] = Path(options.get("cache_dir", settings.data_dir / "local-cache"))
                options["state_dir"] = Path(options.get("state_dir", settings.data_dir / "local-state"))
                options.setdefault("isolate_stages", True)
                # Pipelines get the CPU the service leaves: webhooks are answered while they run.
                options.setdefault("stage_niceness", 10)
                make_undumpable()  # its /proc entries (environ) out of reach of same-user processes
            elif options.get("source_url"):  # stage pods download their code from this service
                options["source_dir"] = Path(options.get("source_dir", settings.data_dir / "sources"))
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
        self._republish_final_statuses(outbox)
        # What a restart left to say ("Queued again", statuses still undelivered) goes out before the
        # runs resume and replace it, when the API answers within a second.
        await self._publisher.flush(_STARTUP_STATUS_SECONDS)
        self.dispatcher = Dispatcher(
            self.store, self.executor.execute, settings.max_concurrent_runs, settings.quiet_period_seconds
        )
        self.schedules = ScheduleService(self, self.store)
        self.executor.lifecycle = self.schedules
        self.dispatcher.start()
        await self.schedules.start()
        for extension in self.extensions:
            await extension.start(self)

    def _token_for(self, provider: str, api_base: str, name: str) -> str | None:
        repository = self.settings.repository(provider, name)
        if repository is None or repository.api_token is None:
            return None
        return repository.api_token.reveal() if repository.api_base.rstrip("/") == api_base else None

    def _republish_final_statuses(self, outbox: StatusOutbox) -> None:
        """A run that finished just before the process died may have had its final status recorded
        but not yet journaled: those are published again (a day back at most)."""
        since = time.time() - _FINAL_STATUS_LOOKBACK_SECONDS
        outbox.prune(since - 6 * _FINAL_STATUS_LOOKBACK_SECONDS)
        for run in outbox.finished_since(since):
            status = self.reporter.final_status(run)
            if status is not None and outbox.state_of(status) not in _FINAL_STATES:
                self.reporter.report(run, status.state, status.description)

    def _observe(self, run: RunRecord) -> None:
        """Tells the extensions of a change, on the event loop even when the change was recorded in
        another thread (the store's fsync thread answers a run's final status)."""
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
        if event.body_digest:  # a signed body replayed under a new delivery id starts no second run
            keys.append(f"{event.provider}:body:{repository.key}:{event.body_digest}")
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

    @property
    def untrusted_code_refused(self) -> str | None:
        """Why preview branches (code from any pusher) are not run here, or None when they are."""
        isolation = getattr(self._backend, "isolation", None)
        if self.settings.trust_preview_branches or not isinstance(isolation, Isolation):
            return None
        if isolation.isolated:
            return None
        return (
            "preview branches are not run: on the local backend their stages would run as the "
            "service's own user and could read its secrets. Run the service as root (stages then run "
            "as an unprivileged user), use the kubernetes backend, or set "
            "service.trust_preview_branches: true if everyone who can push is trusted"
        )

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
        if target.preview and target.action != "teardown" and (refused := self.untrusted_code_refused):
            return Decision(None, reason=refused)
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
        accepted = await store.write(store.accept, new, keys)
        if accepted.duplicate:
            return Decision(accepted.run, duplicate=True)
        self.announce(accepted)
        return Decision(accepted.run)

    def announce(self, accepted: Accepted) -> None:
        """A run was queued (by a push, the API or a schedule): wake the dispatcher, report statuses."""
        if self.dispatcher is not None:
            self.dispatcher.wake()
        # The superseded first: a run of the same commit (a re-run asked twice) shares its commit's
        # status, and the newest status of a commit and context is the one it shows.
        for old in accepted.superseded:
            self.reporter.superseded(old, accepted.run)
        self.reporter.queued(accepted.run)

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



def _keep_private(settings: Settings) -> None:
    """The data folder, the store and the mirrors are the service's alone: a stage running as
    another user may pass through the folder to its workspace, never read the store (0600)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    for folder in (settings.mirrors_dir, settings.work_dir):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    for name in ("", "-wal", "-shm"):
        path = Path(f"{settings.store_path}{name}")
        if name == "" and not path.exists():
            path.touch(mode=0o600)
        if path.exists():
            path.chmod(0o600)
