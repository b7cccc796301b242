"""The store's writer thread outlives a waiter that gives up."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gitops.store import NewRun, Store

pytestmark = pytest.mark.timeout(30)


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
