"""The store's writer thread survives a waiter that gave up on its write."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from gitops.store import NewRun, Store
from gitops.store.writer import _RESTART_BATCHES, WAL_SIZE_LIMIT


def test_a_write_whose_waiter_gave_up_does_not_stop_the_writer(tmp_path: Path) -> None:
    """The notifier's task can be cancelled while it awaits a write (the service stopping)."""
    store = Store(tmp_path / "store.sqlite3")

    async def give_up() -> None:
        waiting = asyncio.ensure_future(
            asyncio.wrap_future(store.submit(store.put_message, "run-1", "slack", "C1", "1.0"))
        )
        await asyncio.sleep(0)
        waiting.cancel()  # cancels the store's future too, before the writer sets its result

    for _ in range(20):
        asyncio.run(give_up())
    store.submit(store.put_message, "run-2", "slack", "C1", "2.0").result(timeout=5)
    assert store.message("run-2", "slack") is not None and store.message("run-1", "slack") is not None
    store.close()


def test_a_cancelled_waiter_neither_undoes_the_write_nor_stops_the_writer(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3")
    try:
        run = store.accept(NewRun("github:a/b", "github", "refs/heads/main", "a" * 40, "prod", None, False,
                                  "deploy", "webhook"), []).run
        gate = threading.Event()
        blocked = store.submit(gate.wait)  # holds the writer until the next write is queued
        given_up = store.submit(store.set_message, run.id, "written anyway")
        assert given_up.cancel()  # as asyncio.wrap_future does when the awaiting task is cancelled
        gate.set()
        blocked.result(timeout=10)
        later = store.submit(store.set_stage_url, run.id, "serve", "http://127.0.0.1:5000")
        later.result(timeout=10)  # the writer is still there
        record = store.get(run.id)
        assert record is not None and record.message == "written anyway"
    finally:
        store.close()


def test_the_wal_starts_over_under_a_steady_stream_of_writes(tmp_path: Path) -> None:
    """Webhooks arriving without a pause: the WAL file (and the index of it mapped into the service's
    memory) stays bounded instead of growing with every delivery the service has ever accepted."""
    path = tmp_path / "store.sqlite3"
    store = Store(path)
    wal = Path(f"{path}-wal")
    pushes = 20 * _RESTART_BATCHES  # each its own batch: a webhook waits for its commit
    for number in range(pushes):
        new = NewRun("github:acme/app", "github", "refs/heads/main", f"{number:040x}", "production",
                     None, False, "deploy", "webhook", f"delivery-{number}")
        accepted = store.submit(store.accept, new, [f"github:delivery:{number}"]).result(timeout=10)
        assert not accepted.duplicate
    size = wal.stat().st_size
    assert size <= WAL_SIZE_LIMIT, f"the WAL is {size / 2**20:.1f} MB after {pushes} pushes"
    assert len(store.query("SELECT id FROM runs", ())) == pushes  # nothing lost by starting over
    store.close()
