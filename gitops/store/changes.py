"""Which runs changed: the store tells, once a write is committed, whoever follows a run.

The store's writes of a run (its log lines, its row, its stages) call :meth:`Changes.changed` after
their transaction is committed, from whatever thread committed it (the event loop's, or a worker's:
see :mod:`gitops.store.writer`). Two kinds of listener:

* a :class:`Follower` of one run (:meth:`Changes.follow`, the run page's live stream) collects what
  changed since it last looked and wakes the coroutine waiting for it, on the loop it was made on;
* a watcher (:meth:`Changes.watch`, the Slack notifier) is called on its loop with each run that had
  a change of the kinds it asked for.

Nothing is kept for a run nobody follows: a change of it costs a dictionary lookup. A follower is
forgotten when its ``with`` block ends (a closed stream), and the run's entry with its last follower.
Only this process's writes are told: a follower reads the store now and then anyway (its caller's
fallback timer) for what another process wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


class Change(enum.Flag):
    """What of a run changed."""

    NONE = 0
    LOGS = enum.auto()
    """New log lines."""
    RUN = enum.auto()
    """Its row: state, reason, times, pipeline, commit message."""
    STAGES = enum.auto()
    """One of its stages' rows: state, attempts, times, reason, URL."""
    ALL = LOGS | RUN | STAGES


class _OnLoop:
    """Calls from any thread made on one event loop's thread: directly there, else through the loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()

    def call(self, callback: Callable[..., None], *args: object) -> None:
        if threading.get_ident() == self.thread:
            callback(*args)
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(callback, *args)


class Follower(_OnLoop):
    """What changed of one run since the follower last looked; made by :meth:`Changes.follow`."""

    def __init__(self, feed: Changes, run_id: str) -> None:
        super().__init__()
        self.feed = feed
        self.run_id = run_id
        self._pending = Change.NONE
        self._woken = asyncio.Event()

    def post(self, what: Change) -> None:
        """From any thread: `what` changed (or, with NONE, the feed stopped)."""
        self.call(self._note, what)

    def _note(self, what: Change) -> None:
        self._pending |= what
        self._woken.set()

    async def wait(self, timeout: float) -> Change:
        """What changed since the last call, at once if anything did; else waits up to `timeout`
        seconds for a change. NONE when nothing changed (the time is up, or the feed stopped)."""
        if not self._pending and not self.feed.stopped and timeout > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._woken.wait()
        what, self._pending = self._pending, Change.NONE
        self._woken.clear()
        return what


class _Watcher(_OnLoop):
    def __init__(self, callback: Callable[[str], None], what: Change) -> None:
        super().__init__()
        self.callback = callback
        self.what = what

    def post(self, run_id: str) -> None:
        self.call(self._call, run_id)

    def _call(self, run_id: str) -> None:
        try:
            self.callback(run_id)
        except Exception:  # a watcher never fails a write
            log.exception("a watcher of run changes failed on run %s", run_id)


class Changes:
    """The store's change feed; see the module's docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._followers: dict[str, set[Follower]] = {}
        self._watchers: tuple[_Watcher, ...] = ()
        self.stopped = False
        """Set by :meth:`stop`: followers do not wait any more."""

    def changed(self, run_id: str, what: Change) -> None:
        """From any thread, once the change is committed: tells the run's followers and the watchers
        of `what`."""
        with self._lock:
            followers = tuple(self._followers.get(run_id, ()))
            watchers = self._watchers
        for follower in followers:
            follower.post(what)
        for watcher in watchers:
            if watcher.what & what:
                watcher.post(run_id)

    @contextlib.contextmanager
    def follow(self, run_id: str) -> Iterator[Follower]:
        """On an event loop: a follower of `run_id`, told of every change from now until the block
        ends. Read the store after entering it, then wait: nothing committed meanwhile is missed."""
        follower = Follower(self, run_id)
        with self._lock:
            self._followers.setdefault(run_id, set()).add(follower)
        try:
            yield follower
        finally:
            with self._lock:
                followers = self._followers.get(run_id, set())
                followers.discard(follower)
                if not followers:
                    self._followers.pop(run_id, None)

    def watch(self, callback: Callable[[str], None], what: Change) -> Callable[[], None]:
        """On an event loop: `callback(run_id)` is called there after each change of `what` to any run,
        until the returned function is called. It must not block (queue the work)."""
        watcher = _Watcher(callback, what)
        with self._lock:
            self._watchers = (*self._watchers, watcher)

        def unwatch() -> None:
            with self._lock:
                self._watchers = tuple(w for w in self._watchers if w is not watcher)

        return unwatch

    def followed(self) -> dict[str, int]:
        """How many followers each followed run has (metrics, tests)."""
        with self._lock:
            return {run_id: len(followers) for run_id, followers in self._followers.items()}

    def stop(self) -> None:
        """The service is shutting down: every follower's wait returns now, and from now on at once."""
        with self._lock:
            self.stopped = True
            followers = [f for group in self._followers.values() for f in group]
        for follower in followers:
            follower.post(Change.NONE)
