"""The store's status outbox: what a restart finds of the commit statuses not yet delivered."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from gitops.statuses.model import CommitStatus, StatusState
from gitops.store import Store
from gitops.store.outbox import StatusOutbox

TOKEN = "ghp_outbox_test_token"


def _status(sha: str, state: StatusState, description: str) -> CommitStatus:
    return CommitStatus(
        provider="github", api_base="https://api.github.com", repository="acme/app", token=TOKEN,
        sha=sha, ref="refs/heads/main", context="bodywork/production", state=state,
        description=description, target_url=f"http://bodywork.example.invalid/runs/{sha[:6]}",
    )


def _pending(outbox: StatusOutbox) -> list[tuple[str, str, str]]:
    return sorted((s.sha[:1], s.state.value, s.description) for s in outbox.pending())


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[StatusOutbox]:
    store = Store(tmp_path / "store.sqlite3")
    yield StatusOutbox(store, lambda provider, api_base, repository: TOKEN)
    store.close()


def test_statuses_recorded_before_a_commit_share_one_write_and_the_newest_wins(
    outbox: StatusOutbox,
) -> None:
    async def burst() -> None:
        outbox.record(_status("a" * 40, StatusState.PENDING, "Queued"))
        outbox.record(_status("b" * 40, StatusState.PENDING, "Queued"))
        outbox.record(_status("a" * 40, StatusState.CANCELED, "Superseded"))
        await outbox.store.write(lambda: None)  # after the outbox's write, in the same group commit

    asyncio.run(burst())
    assert _pending(outbox) == [("a", "canceled", "Superseded"), ("b", "pending", "Queued")]


def _failing_transaction(store: Store) -> Callable[[], AbstractContextManager[sqlite3.Connection]]:
    real = store.transaction

    @contextmanager
    def once() -> Iterator[sqlite3.Connection]:
        store.transaction = real  # type: ignore[method-assign]
        raise sqlite3.OperationalError("database is locked")
        yield  # pragma: no cover

    return once


def test_a_status_whose_write_failed_is_written_with_the_next(
    outbox: StatusOutbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher still holds a status whose write failed (the store locked too long by another
    process, a disk error), but only the store survives a kill: the status must reach it with the
    next write."""
    monkeypatch.setattr(outbox.store, "transaction", _failing_transaction(outbox.store))
    outbox.record(_status("a" * 40, StatusState.SUCCESS, "Deployed production"))
    assert _pending(outbox) == []  # not written: the transaction failed
    outbox.record(_status("b" * 40, StatusState.PENDING, "Queued"))
    assert _pending(outbox) == [("a", "success", "Deployed production"), ("b", "pending", "Queued")]
