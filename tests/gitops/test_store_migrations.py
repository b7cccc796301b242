"""Numbered store migrations: a database written by the release before them upgrades with nothing lost."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from gitops.status import FailureKind, RunStatus
from gitops.store import Store
from gitops.store.database import PAGE_SIZE
from gitops.store.records import NewRun
from gitops.store.schema import MIGRATIONS, Migration, migrate, version

FIXTURE = Path(__file__).parent / "fixtures" / "store_v0.sqlite3"


def _new_run(commit: str) -> NewRun:
    return NewRun("github:acme/pipelines", "github", "refs/heads/main", commit, "prod", None, False,
                  "deploy", "webhook")



@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite3"
    shutil.copyfile(FIXTURE, path)
    return path


def test_a_store_of_the_previous_release_is_upgraded_with_nothing_lost(old_store: Path) -> None:
    with sqlite3.connect(old_store) as db:
        assert version(db) == 0
        old_logs = db.execute("SELECT id, run_id, stage, line, at FROM logs ORDER BY id").fetchall()
        old_stages = db.execute("SELECT * FROM stages ORDER BY run_id, stage").fetchall()
        old_deliveries = db.execute("SELECT * FROM deliveries ORDER BY key").fetchall()
        old_delivery_keys = [key for key, *_ in old_deliveries]
    db.close()

    store = Store(old_store)
    runs = {run.commit[0]: run for run in store.list_runs(limit=1000)}
    assert len(runs) == 8
    assert {k: r.state for k, r in runs.items()} == {
        "a": RunStatus.SUCCEEDED, "b": RunStatus.FAILED, "c": RunStatus.FAILED, "d": RunStatus.FAILED,
        "e": RunStatus.SUPERSEDED, "f": RunStatus.QUEUED, "1": RunStatus.CANCELLED, "2": RunStatus.RUNNING,
    }
    # The "git:" prefix became a kind; the other failures got theirs from what their reason says.
    assert runs["b"].failure is FailureKind.GIT
    assert runs["b"].reason == "commit bbbbbbbbbb is not in the repository"
    assert runs["c"].failure is FailureKind.CONFIG and len(runs["c"].problems) == 2
    assert runs["d"].failure is FailureKind.PIPELINE and runs["d"].reason == "stage train failed: exit code 1"
    assert all(runs[k].failure is None for k in "aef12")
    assert runs["e"].superseded_by == runs["f"].id
    assert runs["a"].steps == [["prepare"], ["train", "serve"]] and runs["a"].namespace == "demo-ns"
    assert [(s.stage, s.state, s.attempts) for s in store.stages(runs["a"].id)] == [
        ("prepare", "succeeded", 1), ("train", "succeeded", 2), ("serve", "succeeded", 1),
    ]
    assert [line.line for line in store.logs(runs["a"].id)] == ["preparing", "epoch 1", "done"]
    assert [r.id for r in store.queued()] == [runs["f"].id]
    # Migration 6 rebuilt the deliveries table: a delivery seen before the upgrade is still one.
    redelivered = store.accept(_new_run(runs["a"].commit), [old_delivery_keys[0]])
    assert redelivered.duplicate
    # What the service does with an upgraded store still works: the interrupted run is re-queued.
    assert [r.id for r in store.recover(max_reruns=1).requeued] == [runs["2"].id]
    store.close()

    with sqlite3.connect(old_store) as db:
        assert version(db) == MIGRATIONS[-1].version
        assert db.execute("SELECT id, run_id, stage, line, at FROM logs WHERE id <= ? ORDER BY id",
                          (old_logs[-1][0],)).fetchall() == old_logs
        assert db.execute("SELECT * FROM deliveries ORDER BY key").fetchall() == old_deliveries
        assert len(old_deliveries) == 5
        without_rowid = db.execute("SELECT sql FROM sqlite_schema WHERE name = 'deliveries'").fetchone()[0]
        assert "WITHOUT ROWID" in without_rowid
        assert db.execute("SELECT name FROM sqlite_schema WHERE name = 'runs_ref'").fetchall() == []
        assert db.execute("PRAGMA page_size").fetchone()[0] == 4096  # as it was made: WAL cannot change it
        stages = db.execute(
            "SELECT run_id, stage, kind, state, attempts, started_at, finished_at, reason FROM stages "
            "ORDER BY run_id, stage"
        ).fetchall()
        # Migration 5: stages deployed before it have no recorded URL, runs no commit message.
        assert {url for (url,) in db.execute("SELECT url FROM stages")} == {""}
        assert {message for (message,) in db.execute("SELECT message FROM runs")} == {""}
        assert [s for s in old_stages if s[0] != runs["2"].id] == [s for s in stages if s[0] != runs["2"].id]
    db.close()


def test_migrations_run_once(old_store: Path) -> None:
    Store(old_store).close()
    calls: list[int] = []
    extra = Migration(MIGRATIONS[-1].version + 1, "counts", lambda db: calls.append(1))
    db = sqlite3.connect(old_store, isolation_level=None)
    assert migrate(db, (*MIGRATIONS, extra)) == MIGRATIONS[-1].version
    assert migrate(db, (*MIGRATIONS, extra)) == extra.version
    assert calls == [1]
    db.close()


def test_a_failing_migration_leaves_the_database_as_it_was(old_store: Path) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("UPDATE runs SET reason = 'half-done'")
        raise sqlite3.OperationalError("boom")

    db = sqlite3.connect(old_store, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="boom"):
        migrate(db, (*MIGRATIONS, Migration(MIGRATIONS[-1].version + 1, "broken", broken)))
    assert version(db) == 0
    columns = [row[1] for row in db.execute("PRAGMA table_info(runs)").fetchall()]
    assert "failure" not in columns
    assert db.execute("SELECT reason FROM runs WHERE reason LIKE 'git:%'").fetchall() != []
    db.close()


def test_a_store_newer_than_the_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    Store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA user_version = {MIGRATIONS[-1].version + 1}")
    with pytest.raises(RuntimeError, match="newer than this release knows"):
        migrate(db)
    db.close()


def test_a_new_store_starts_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    Store(path).close()
    db = sqlite3.connect(path)
    assert version(db) == MIGRATIONS[-1].version
    # Small pages: a webhook's accept touches a dozen of them, and the WAL takes each one whole.
    assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 1024
    db.close()
