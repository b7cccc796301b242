"""The store's change feed: who is told what, when (after the commit), from which thread, and what is kept."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from gitops.status import RunStatus
from gitops.store import NewRun, Store
from gitops.store.changes import Change

pytestmark = pytest.mark.timeout(30)


def _push(number: int) -> NewRun:
    return NewRun("github:acme/app", "github", "refs/heads/main", f"{number:040x}", "production",
                  None, False, "deploy", "webhook", f"delivery-{number}")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.sqlite3")


def test_a_follower_is_told_what_changed_once_committed_on_the_loop_or_in_a_worker_thread(
    store: Store,
) -> None:
    run_id = store.accept(_push(1), []).run.id
    seen_by_watcher: list[tuple[str, int, str]] = []

    def watcher(changed: str) -> None:  # called as soon as told: the write must be readable by then
        seen_by_watcher.append((changed, len(store.logs(changed, 0)), threading.current_thread().name))

    async def go() -> list[Change]:
        told = []
        unwatch = store.changes.watch(watcher, Change.LOGS)
        with store.changes.follow(run_id) as changes:
            assert await changes.wait(0.05) == Change.NONE
            await store.write(store.add_logs, run_id, [("train", "on the loop", 1.0)])
            told.append(await changes.wait(5))
            await asyncio.to_thread(store.add_logs, run_id, [("train", "in a thread", 2.0)])
            told.append(await changes.wait(5))
            await asyncio.to_thread(store.mark_running, run_id)
            await store.write(store.stage_started, run_id, "train", "batch", 1, 3.0)
            told.append(await changes.wait(5))
            await store.write(store.finish, run_id, RunStatus.CANCELLED)  # its running stage too
            told.append(await changes.wait(5))
        unwatch()
        await asyncio.to_thread(store.add_logs, run_id, [("", "after", 4.0)])
        return told

    try:
        told = asyncio.run(go())
    finally:
        store.close()
    assert told == [Change.LOGS, Change.LOGS, Change.RUN | Change.STAGES, Change.RUN | Change.STAGES]
    loop_thread = threading.main_thread().name
    assert seen_by_watcher == [(run_id, 1, loop_thread), (run_id, 2, loop_thread)]


def test_a_write_rolled_back_tells_nothing(store: Store) -> None:
    """A write whose savepoint is rolled back (the batch commits without it) tells no follower."""
    older = store.accept(_push(1), []).run.id

    def supersede_then_fail() -> None:
        with store.transaction():
            store.accept(_push(2), [])  # supersedes `older`, then the whole write is rolled back
            raise RuntimeError("the write fails after superseding")

    async def go() -> tuple[Change, Change]:
        with store.changes.follow(older) as changes:
            with pytest.raises(RuntimeError):
                await store.write(supersede_then_fail)
            with pytest.raises(RuntimeError):  # committed in a worker thread, without a loop
                await asyncio.to_thread(lambda: store.submit(supersede_then_fail).result())
            rolled_back = await changes.wait(0.2)
            await store.write(store.accept, _push(3), [])
            return rolled_back, await changes.wait(5)

    try:
        rolled_back, superseded = asyncio.run(go())
        assert store.get(older) is not None
        assert store.get(older).state is RunStatus.SUPERSEDED  # type: ignore[union-attr]
    finally:
        store.close()
    assert (rolled_back, superseded) == (Change.NONE, Change.RUN)


def test_nothing_is_kept_for_a_run_nobody_follows_nor_for_a_follower_that_left(store: Store) -> None:
    run_id = store.accept(_push(1), []).run.id

    async def go() -> list[dict[str, int]]:
        seen = []
        for number in range(100):  # changes of runs nobody follows
            store.add_logs(f"run-{number}", [("", "line", 1.0)])
        seen.append(store.changes.followed())
        with store.changes.follow(run_id), store.changes.follow(run_id):
            seen.append(store.changes.followed())
        seen.append(store.changes.followed())

        async def wait_forever() -> None:
            with store.changes.follow(run_id) as changes:
                await changes.wait(3600)

        waiting = asyncio.create_task(wait_forever())
        await asyncio.sleep(0.05)
        seen.append(store.changes.followed())
        waiting.cancel()  # a stream whose client went away
        await asyncio.gather(waiting, return_exceptions=True)
        seen.append(store.changes.followed())
        return seen

    try:
        seen = asyncio.run(go())
    finally:
        store.close()
    assert seen == [{}, {run_id: 2}, {}, {run_id: 1}, {}]


def test_stopping_the_feed_wakes_every_follower_at_once(store: Store) -> None:
    run_id = store.accept(_push(1), []).run.id

    async def go() -> tuple[list[Change], float, Change]:
        loop = asyncio.get_running_loop()
        with store.changes.follow(run_id) as first, store.changes.follow(run_id) as second:
            started = loop.time()
            waits = asyncio.gather(first.wait(3600), second.wait(3600))
            await asyncio.sleep(0.05)
            threading.Thread(target=store.changes.stop).start()  # from another thread, as a signal
            woken = await waits
            took = loop.time() - started
            return list(woken), took, await first.wait(3600)  # and from now on at once

    try:
        woken, took, later = asyncio.run(asyncio.wait_for(go(), 10))
    finally:
        store.close()
    assert woken == [Change.NONE, Change.NONE] and took < 5 and later == Change.NONE
