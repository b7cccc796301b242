"""The deployment queue: which queued runs start now, and the dispatcher that starts them.

Rules (the pure part is :func:`pick`):
* runs of one environment never overlap;
* at most ``max_concurrent_runs`` runs execute at once;
* a run starts only after a quiet period (``quiet_period_seconds``) since it was queued, so that a
  burst of pushes to one branch coalesces into one run of its newest commit;
* otherwise first come, first served.
Coalescing (a newer push to the same ref supersedes older queued runs) happens when a run is accepted,
in the same store transaction (:meth:`gitops.store.Store.accept`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gitops.store import RunRecord, Store

log = logging.getLogger(__name__)

_GATHER_WAKES_SECONDS = 0.01
"""How long the dispatcher waits after a wake before it reads the queue (pushes come in bursts)."""


@dataclass(frozen=True)
class Candidate:
    id: str
    environment: str
    queued_at: float = 0.0


@dataclass(frozen=True)
class Picked:
    ids: list[str]
    """The runs to start now."""
    next_due: float | None = None
    """When a run still in its quiet period becomes eligible (None: none is waiting)."""


def pick(
    queued: Sequence[Candidate],
    busy_environments: set[str],
    free_slots: int,
    now: float = 0.0,
    quiet_period: float = 0.0,
) -> Picked:
    """Which queued runs (oldest first in `queued`) start now."""
    chosen: list[str] = []
    taken = set(busy_environments)
    next_due: float | None = None
    for run in queued:
        if len(chosen) >= free_slots:
            break
        if run.environment in taken:
            continue
        due = run.queued_at + quiet_period
        if due > now:
            next_due = due if next_due is None else min(next_due, due)
            continue
        taken.add(run.environment)
        chosen.append(run.id)
    return Picked(chosen, next_due)


Executor = Callable[[RunRecord], Awaitable[None]]


class Dispatcher:
    """Starts queued runs as background tasks, within the rules above."""

    def __init__(
        self, store: Store, execute: Executor, max_concurrent: int, quiet_period: float = 0.0
    ) -> None:
        self.store = store
        self.execute = execute
        self.max_concurrent = max_concurrent
        self.quiet_period = quiet_period
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
        next_due: float | None = None
        while True:
            timeout = None if next_due is None else max(0.0, next_due - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            # A burst of pushes wakes the dispatcher once per push; one look at the queue serves them all.
            await asyncio.sleep(_GATHER_WAKES_SECONDS)
            self._wake.clear()
            try:
                next_due = await self._dispatch()
            except Exception:
                log.exception("the dispatcher failed to start queued runs; retrying")
                next_due = time.time() + 1

    async def _dispatch(self) -> float | None:
        free = self.max_concurrent - len(self._running)
        if free <= 0:
            return None
        busy = {environment for environment, _ in self._running.values()}
        # The store's reads and the mark-running write (a commit and its fsync, in this thread) run
        # off the event loop: a burst of queued runs must not stall webhooks and timers.
        runs, next_due = await asyncio.to_thread(self._claim, busy, free)
        for run in runs:
            task = asyncio.create_task(self._execute(run), name=f"bodywork-run-{run.id}")
            self._running[run.id] = (run.environment, task)
        return next_due

    def _claim(self, busy: set[str], free: int) -> tuple[list[RunRecord], float | None]:
        """The queued runs to start now, each marked running in the store (in a worker thread)."""
        queued = self.store.queued()
        by_id = {run.id: run for run in queued}
        candidates = [Candidate(r.id, r.environment, r.created_at) for r in queued]
        picked = pick(candidates, busy, free, time.time(), self.quiet_period)
        claimed = []
        for run_id in picked.ids:
            if self.store.mark_running(run_id):
                claimed.append(self.store.get(run_id) or by_id[run_id])
        return claimed, picked.next_due

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
