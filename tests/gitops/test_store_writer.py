"""The store's writer thread survives a waiter that gave up on its write."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gitops.store import Store


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
