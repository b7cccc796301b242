"""The store's writes: group commit on the event loop, answered once on disk, a WAL that stays bounded."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from gitops.store import NewRun, Store
from gitops.store import syncer as store_syncer
from gitops.store.writer import WAL_SIZE_LIMIT, Writer


def _push(number: int) -> NewRun:
    return NewRun("github:acme/app", "github", "refs/heads/main", f"{number:040x}", "production",
                  None, False, "deploy", "webhook", f"delivery-{number}")


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
        run = store.accept(_push(1), []).run

        async def cancel_then_write() -> None:
            given_up = store.submit(store.set_message, run.id, "written anyway")
            assert given_up.cancel()  # as asyncio.wrap_future does when the awaiting task is cancelled
            later = store.submit(store.set_stage_url, run.id, "serve", "http://127.0.0.1:5000")
            await asyncio.wait_for(asyncio.wrap_future(later), 10)  # the writer is still there

        asyncio.run(cancel_then_write())
        record = store.get(run.id)
        assert record is not None and record.message == "written anyway"
    finally:
        store.close()


def test_an_awaited_write_whose_task_is_cancelled_is_still_written(tmp_path: Path) -> None:
    """A webhook's client can hang up while its accept is in flight: the run is recorded anyway (the
    retry finds it), and the writes after it go on."""
    store = Store(tmp_path / "store.sqlite3")
    try:
        run = store.accept(_push(1), []).run

        async def cancel_then_write() -> None:
            given_up = asyncio.ensure_future(store.write(store.set_message, run.id, "written anyway"))
            await asyncio.sleep(0)  # queued; the flush is due
            given_up.cancel()
            url = "http://127.0.0.1:5000"
            await asyncio.wait_for(store.write(store.set_stage_url, run.id, "serve", url), 10)

        asyncio.run(cancel_then_write())
        record = store.get(run.id)
        assert record is not None and record.message == "written anyway"
    finally:
        store.close()


def test_a_write_queued_on_the_loop_and_committed_by_a_thread_is_answered_on_the_loop(
    tmp_path: Path,
) -> None:
    """A worker thread's write commits whatever the loop queued before it; the loop's waiter must
    still be woken (its future belongs to the loop, and is answered through it)."""
    store = Store(tmp_path / "store.sqlite3")
    try:
        run = store.accept(_push(1), []).run

        def worker_writes_first(queued: threading.Event, done: threading.Event) -> None:
            with store._writer.lock:  # the loop's flush finds the lock taken and tries again later
                queued.wait(5)
                store.submit(store.set_stage_url, run.id, "serve", "http://127.0.0.1:5000").result(5)
            done.set()

        async def loop_writes() -> float:
            queued, done = threading.Event(), threading.Event()
            worker = threading.Thread(target=worker_writes_first, args=(queued, done))
            worker.start()
            await asyncio.sleep(0.05)  # the worker holds the lock
            started = asyncio.get_running_loop().time()
            write = asyncio.ensure_future(store.write(store.set_message, run.id, "queued on the loop"))
            await asyncio.sleep(0)
            queued.set()
            await asyncio.wait_for(write, 10)
            await asyncio.get_running_loop().run_in_executor(None, worker.join)
            assert done.is_set()
            return asyncio.get_running_loop().time() - started

        waited = asyncio.run(loop_writes())
        assert waited < 2, f"the loop's waiter was woken only after {waited:.1f} s"
        record = store.get(run.id)
        assert record is not None and record.message == "queued on the loop"
    finally:
        store.close()


def test_a_lazy_write_joins_the_next_write_s_commit_or_commits_alone_when_none_comes(
    tmp_path: Path,
) -> None:
    """The status journal's writes are lazy: under load each would otherwise be a commit and an fsync
    of its own after every webhook's accept."""
    commits: list[float] = []
    store = Store(tmp_path / "store.sqlite3", on_commit=commits.append)
    try:
        run = store.accept(_push(1), []).run
        commits.clear()

        async def writes() -> None:
            lazy = store.submit(store.set_message, run.id, "lazy", lazy=True)
            await asyncio.sleep(0)  # a turn of the loop: a write submitted now would be committed
            assert not lazy.done()
            await store.write(store.set_stage_url, run.id, "serve", "http://127.0.0.1:5000")
            assert lazy.done() and len(commits) == 1  # one commit for both
            alone = store.submit(store.set_message, run.id, "alone", lazy=True)
            await asyncio.wait_for(asyncio.wrap_future(alone), 5)  # nothing else comes: it commits
            assert len(commits) == 2

        asyncio.run(writes())
        reread = store.get(run.id)
        assert reread is not None and reread.message == "alone"
    finally:
        store.close()


def test_a_webhook_is_answered_only_once_its_commit_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit runs on the event loop, its fsync in a thread; the 202 waits for the fsync."""
    disk = threading.Event()
    synced: list[int] = []

    def slow_disk(fd: int) -> None:
        disk.wait(10)
        synced.append(fd)

    monkeypatch.setattr(store_syncer, "_sync_data", slow_disk)
    store = Store(tmp_path / "store.sqlite3", fsync_helper=False)  # the thread: its disk can be held
    try:

        async def accept_while_the_disk_is_slow() -> None:
            accepted = asyncio.ensure_future(store.write(store.accept, _push(1), ["github:delivery:1"]))
            await asyncio.sleep(0.3)
            assert not accepted.done(), "answered before its commit reached the disk"
            assert len(store.query("SELECT id FROM runs", ())) == 1  # committed: readers see it
            disk.set()
            assert not (await asyncio.wait_for(accepted, 10)).duplicate
            assert synced

        asyncio.run(accept_while_the_disk_is_slow())
    finally:
        disk.set()
        store.close()


def _helper_of(store: Store) -> subprocess.Popen[bytes]:
    syncer = store._writer._syncer
    assert syncer is not None and syncer._helper is not None
    return syncer._helper._process


def test_the_loop_s_commits_are_answered_only_once_the_helper_has_synced_them(tmp_path: Path) -> None:
    """The event loop's commits are fsync'ed by a helper process: while it is stopped, nothing is
    answered; once it runs again, everything is."""
    store = Store(tmp_path / "store.sqlite3")
    helper = _helper_of(store)
    try:

        async def accept_while_the_helper_is_stopped() -> None:
            await store.write(store.accept, _push(0), ["github:delivery:0"])  # the helper is up
            os.kill(helper.pid, signal.SIGSTOP)
            accepted = asyncio.ensure_future(store.write(store.accept, _push(1), ["github:delivery:1"]))
            await asyncio.sleep(0.3)
            assert not accepted.done(), "answered before the helper synced its commit"
            os.kill(helper.pid, signal.SIGCONT)
            assert not (await asyncio.wait_for(accepted, 10)).duplicate

        asyncio.run(accept_while_the_helper_is_stopped())
    finally:
        os.kill(helper.pid, signal.SIGCONT)
        store.close()
    assert helper.wait(10) == 0  # it ends when the store closes


def test_writes_are_answered_when_the_helper_dies(tmp_path: Path) -> None:
    """A killed helper: what it had not answered is synced by the thread, and so is what follows."""
    store = Store(tmp_path / "store.sqlite3")
    helper = _helper_of(store)
    try:

        async def kill_the_helper_mid_write() -> int:
            await store.write(store.accept, _push(0), ["github:delivery:0"])
            os.kill(helper.pid, signal.SIGSTOP)
            in_flight = asyncio.ensure_future(store.write(store.accept, _push(1), ["github:delivery:1"]))
            await asyncio.sleep(0.1)
            helper.kill()
            await asyncio.wait_for(in_flight, 10)
            for number in range(2, 20):
                await asyncio.wait_for(store.write(store.accept, _push(number), [f"d:{number}"]), 10)
            return len(store.query("SELECT id FROM runs", ()))

        assert asyncio.run(kill_the_helper_mid_write()) == 20
    finally:
        store.close()


def test_a_failed_fsync_fails_the_write_it_covered_and_not_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk error: the webhook is not told its delivery is safe (it gets an error and is sent
    again; the delivery id then finds the run already recorded)."""
    failures = [OSError(errno.EIO, "Input/output error")]
    real_sync = store_syncer._sync_data

    def failing_once(fd: int) -> None:
        if failures:
            raise failures.pop()
        real_sync(fd)

    monkeypatch.setattr(store_syncer, "_sync_data", failing_once)
    store = Store(tmp_path / "store.sqlite3", fsync_helper=False)
    try:

        async def two_writes() -> None:
            with pytest.raises(OSError, match="Input/output error"):
                await store.write(store.accept, _push(1), ["github:delivery:1"])
            again = await store.write(store.accept, _push(1), ["github:delivery:1"])
            assert again.duplicate  # the retried delivery finds its run

        asyncio.run(two_writes())
    finally:
        store.close()


def test_the_wal_starts_over_under_a_steady_stream_of_writes(tmp_path: Path) -> None:
    """Webhooks arriving without a pause, each awaiting its own commit: the WAL file (and the index
    of it mapped into the service's memory) stays bounded instead of growing with every delivery the
    service has ever accepted (about 12 KB of WAL each: 100 MB for these, without a restart)."""
    path = tmp_path / "store.sqlite3"
    store = Store(path)
    wal = Path(f"{path}-wal")
    pushes = 8000
    largest = 0

    async def stream() -> None:
        nonlocal largest
        for number in range(pushes):
            write = store.submit(store.accept, _push(number), [f"github:delivery:{number}"])
            assert not (await asyncio.wrap_future(write)).duplicate
            if number % 100 == 0:
                largest = max(largest, wal.stat().st_size)

    asyncio.run(stream())
    # It starts over once it holds half the limit; what lands while the checkpoint copies comes on top.
    assert largest <= WAL_SIZE_LIMIT, f"the WAL reached {largest / 2**20:.1f} MB in {pushes} pushes"
    assert len(store.query("SELECT id FROM runs", ())) == pushes  # nothing lost by starting over
    store.close()



def test_a_write_made_of_writes_commits_outside_a_batch_and_a_failing_part_fails_alone(
    tmp_path: Path,
) -> None:
    """Without a loop (the CLI, a worker thread) a write commits at once in its own transaction; one
    that calls other writes (the schedules' record_fires calls record_fire) nests them as savepoints.
    It used to begin a second transaction inside the first, which SQLite refuses."""
    store = Store(tmp_path / "store.sqlite3")
    with store.transaction():
        store.put_message("run-1", "slack", "C1", "1.0")
        with pytest.raises(RuntimeError), store.transaction():
            store.put_message("run-2", "slack", "C1", "2.0")
            raise RuntimeError("this part fails")
        store.put_message("run-3", "slack", "C1", "3.0")
    assert store.message("run-1", "slack") is not None and store.message("run-3", "slack") is not None
    assert store.message("run-2", "slack") is None
    store.close()


def test_a_commit_that_fails_leaves_no_transaction_for_the_next_write_to_nest_in(tmp_path: Path) -> None:
    """A deferred constraint fails at COMMIT and leaves the transaction open; the next write must still
    commit on its own, not become a savepoint of a transaction nobody commits."""
    path = tmp_path / "store.sqlite3"
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    writer = Writer(db, path, fsync_commits=False)
    with pytest.raises(sqlite3.IntegrityError), writer.transaction() as failing:
        failing.execute("INSERT INTO child VALUES (1)")  # refused only at COMMIT
    with writer.transaction() as next_write:
        next_write.execute("INSERT INTO parent VALUES (7)")
    with sqlite3.connect(str(path)) as reader:
        assert reader.execute("SELECT id FROM parent").fetchall() == [(7,)]
        assert reader.execute("SELECT COUNT(*) FROM child").fetchone() == (0,)
    writer.close()
