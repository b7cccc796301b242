"""The deployment queue: which queued runs start now, and the dispatcher that starts them.

Rules (the pure part is :func:`pick`):
* runs of one environment never overlap;
* at most ``max_concurrent_runs`` runs execute at once;
* otherwise first come, first served.
Coalescing (a newer push to the same ref supersedes older queued runs) happens when a run is accepted,
in the same store transaction (:meth:`gitops.store.Store.accept`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gitops.store import RunRecord, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    id: str
    environment: str


def pick(queued: Sequence[Candidate], busy_environments: set[str], free_slots: int) -> list[str]:
    """The ids of the queued runs (oldest first in `queued`) that may start now."""
    chosen: list[str] = []
    taken = set(busy_environments)
    for run in queued:
        if len(chosen) >= free_slots:
            break
        if run.environment in taken:
            continue
        taken.add(run.environment)
        chosen.append(run.id)
    return chosen


Executor = Callable[[RunRecord], Awaitable[None]]


class Dispatcher:
    """Starts queued runs as background tasks, within the rules above."""

    def __init__(self, store: Store, execute: Executor, max_concurrent: int) -> None:
        self.store = store
        self.execute = execute
        self.max_concurrent = max_concurrent
        self.stopping = False
        self._wake = asyncio.Event()
        self._running: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def running_ids(self) -> list[str]:
        return list(self._running)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="bodywork-dispatcher")
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, run_id: str) -> bool:
        """Cancels a running run's task; False when it is not running here."""
        entry = self._running.get(run_id)
        if entry is None:
            return False
        entry[1].cancel()
        return True

    async def stop(self) -> None:
        """Stops dispatching and interrupts running runs; they stay 'running' in the store, so the
        next start re-runs them (see Store.recover)."""
        self.stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._dispatch()
            except Exception:
                log.exception("the dispatcher failed to start queued runs; retrying")
                await asyncio.sleep(1)
                self._wake.set()

    def _dispatch(self) -> None:
        free = self.max_concurrent - len(self._running)
        if free <= 0:
            return
        queued = self.store.queued()
        busy = {environment for environment, _ in self._running.values()}
        by_id = {run.id: run for run in queued}
        for run_id in pick([Candidate(r.id, r.environment) for r in queued], busy, free):
            if not self.store.mark_running(run_id):
                continue
            run = self.store.get(run_id) or by_id[run_id]
            task = asyncio.create_task(self._execute(run), name=f"bodywork-run-{run_id}")
            self._running[run_id] = (run.environment, task)

    async def _execute(self, run: RunRecord) -> None:
        try:
            await self.execute(run)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("run %s failed unexpectedly", run.id)
        finally:
            self._running.pop(run.id, None)
            if not self.stopping:
                self.wake()
