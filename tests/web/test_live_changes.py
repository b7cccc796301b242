"""The run page's event stream wakes on the store's changes: over HTTP, with the service under uvicorn.

Each test makes a run in progress straight in the service's store (the dispatcher never picks it up:
it is running already) and follows it as run.js does. The fallback timer is set long where only the
store's change feed may deliver a line, and short where the test counts its reads.
"""

from __future__ import annotations

import asyncio
import json
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from gitops.service import Service
from gitops.status import RunStatus
from gitops.store import NewRun, Store
from gitops.web import live
from tests.gitops.conftest import ServiceFactory
from tests.gitops.helpers import RunningService, wait_until

pytestmark = pytest.mark.timeout(90)

PATIENCE = 10.0
"""Upper bound of every wait for an event (never a timing assertion)."""


def service_object(running: RunningService) -> Service:
    app: Any = running.server.config.app
    service: Service = app.state.service
    return service


def running_run(store: Store) -> str:
    """A run in progress, its stage running and one line written; written from this (non-loop) thread."""
    new = NewRun("github:acme/pipelines", "github", "refs/heads/main", "a" * 40, "pipelines", None, False,
                 "deploy", "webhook")
    run_id = store.accept(new, []).run.id
    store.mark_running(run_id)
    store.set_pipeline(run_id, "demo", [["train"]], "pipelines")
    store.stage_started(run_id, "train", "batch", 1, time.time())
    store.add_logs(run_id, [("train", "first", time.time())])
    return run_id


class Listener:
    """Follows a run's event stream in a thread of its own: each event, with when it arrived."""

    def __init__(self, base_url: str, run_id: str, after: int = 0) -> None:
        self.url = f"{base_url}/runs/{run_id}/events?after={after}"
        self.events: queue.Queue[tuple[float, str, Any]] = queue.Queue()
        self.ended = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._task = self._loop.create_task(self._listen())
        try:
            self._loop.run_until_complete(asyncio.gather(self._task, return_exceptions=True))
        finally:
            self._loop.close()
            self.ended.set()

    async def _listen(self) -> None:
        kind = ""
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5, read=120)) as client,
            client.stream("GET", self.url) as answer,
        ):
            async for line in answer.aiter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.put((time.monotonic(), kind, json.loads(line.removeprefix("data: "))))

    def next(self, kind: str, timeout: float = PATIENCE) -> tuple[float, Any]:
        """The next event of `kind` (others are skipped): when it arrived, and its data."""
        deadline = time.monotonic() + timeout
        while True:
            arrived, found, data = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if found == kind:
                return arrived, data

    def close(self) -> None:
        """Goes away, as a browser closing the page does (the connection is closed)."""
        if not self.ended.is_set() and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(PATIENCE)


@contextmanager
def listening(base_url: str, run_id: str, count: int = 1) -> Iterator[list[Listener]]:
    listeners = [Listener(base_url, run_id) for _ in range(count)]
    try:
        for listener in listeners:  # its first events: the stream follows the run from here on
            listener.next("logs")
            listener.next("run")
        yield listeners
    finally:
        for listener in listeners:
            listener.close()


def counting_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the reads a stream makes (the run, its stages, its lines), wrapping the store's methods."""
    reads: list[str] = []
    for name in ("get", "stages", "logs"):
        method: Callable[..., Any] = getattr(store, name)

        def counted(*args: Any, _method: Callable[..., Any] = method, _name: str = name) -> Any:
            reads.append(_name)
            return _method(*args)

        monkeypatch.setattr(store, name, counted)
    return reads


def test_a_line_arrives_as_soon_as_it_is_committed_not_at_the_fallback(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "FALLBACK_SECONDS", 60.0)  # only the change feed can deliver in time
    running = make_service()
    service = service_object(running)
    store, loop = service.require_store(), service._loop
    assert loop is not None
    run_id = running_run(store)

    async def on_the_loop(text: str) -> float:
        """A line written as the engine writes them (a group commit on the service's loop)."""
        started = loop.time()  # the same clock as time.monotonic()
        await store.write(store.add_logs, run_id, [("train", text, time.time())])
        return started

    def from_a_thread(text: str) -> float:
        """A line committed in this thread (a worker thread: no loop)."""
        started = time.monotonic()
        store.submit(store.add_logs, run_id, [("train", text, time.time())]).result(PATIENCE)
        return started

    latencies = []
    with listening(running.base_url, run_id) as [listener]:
        for number in range(6):
            text = f"line {number}"
            if number % 2:
                written = from_a_thread(text)
            else:
                written = asyncio.run_coroutine_threadsafe(on_the_loop(text), loop).result(PATIENCE)
            arrived, lines = listener.next("logs")  # within PATIENCE, long before the 60 s fallback
            assert [x["line"] for x in lines] == [text]
            latencies.append(arrived - written)
    assert statistics.median(latencies) < 0.1, latencies


def test_an_idle_stream_reads_the_store_only_at_the_fallback_and_sees_what_another_process_wrote(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "FALLBACK_SECONDS", 1.0)
    running = make_service()
    store = service_object(running).require_store()
    run_id = running_run(store)
    with listening(running.base_url, run_id) as [listener]:
        reads = counting_reads(store, monkeypatch)
        time.sleep(3.0)
        idle_reads = len(reads)
        # Written by another Store on the same file, as `bodywork` commands in another process do:
        # this process's feed is not told, the fallback read finds it.
        other = Store(running.settings.store_path)
        try:
            other.add_logs(run_id, [("train", "from elsewhere", time.time())])
        finally:
            other.close()
        _, lines = listener.next("logs", timeout=5.0)
    # Three reads (the run, its stages, its lines) per fallback, about three fallbacks in 3 s: polling
    # every 0.25 s made 36.
    assert 3 <= idle_reads <= 12, reads
    assert [x["line"] for x in lines] == ["from elsewhere"]


def test_many_followers_all_get_the_line_and_leave_nothing_behind(make_service: ServiceFactory) -> None:
    running = make_service()
    store = service_object(running).require_store()
    run_id, other_run = running_run(store), running_run(store)
    with listening(running.base_url, run_id, count=12) as listeners:
        assert store.changes.followed() == {run_id: 12}
        store.add_logs(run_id, [("train", "for everyone", time.time())])
        for listener in listeners:
            assert [x["line"] for x in listener.next("logs")[1]] == ["for everyone"]
    # The clients went away: the service forgets the run as it notices each disconnect.
    wait_until(lambda: store.changes.followed() == {}, timeout=PATIENCE, what="the followers to go")

    with listening(running.base_url, other_run, count=3) as listeners:
        store.add_logs(other_run, [("", "last", time.time())])
        store.finish(other_run, RunStatus.SUCCEEDED, "")
        for listener in listeners:
            assert listener.next("end")[1] == {"state": "succeeded"}
            assert listener.ended.wait(PATIENCE)  # the stream ended itself
    assert store.changes.followed() == {}
