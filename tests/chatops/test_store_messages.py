"""Migration 3: where each run's Slack message is, which logs were posted, and the audit log."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from gitops.store import Store
from gitops.store.schema import MIGRATIONS, version

FIXTURE = Path(__file__).parent.parent / "gitops" / "fixtures" / "store_v0.sqlite3"


def test_an_old_store_gains_the_tables_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    shutil.copyfile(FIXTURE, path)
    store = Store(path)
    runs = store.list_runs(limit=100)
    assert len(runs) == 8
    run_id = runs[0].id
    assert store.message(run_id, "slack") is None
    store.submit(store.put_message, run_id, "slack", "C0DEPLOYS", "1800000001.000100").result()
    store.submit(store.add_message_part, run_id, "slack", "0:log:train").result()
    store.submit(store.add_message_part, run_id, "slack", "0:log:train").result()
    first = store.submit(
        store.add_audit, 10.0, "U1", "rerun", "done", {"user_id": "U1", "detail": "x"}
    ).result()
    second = store.submit(store.add_audit, 11.0, "U2", "delete", "denied", {"user_id": "U2"}).result()
    store.close()

    reopened = Store(path)  # a restart finds all of it
    found = reopened.message(run_id, "slack")
    assert found is not None and (found.channel, found.ts, found.parts) == (
        "C0DEPLOYS",
        "1800000001.000100",
        frozenset({"0:log:train"}),
    )
    assert [a.id for a in reopened.audit()] == [second, first]
    assert [a.to_json() for a in reopened.audit(limit=1, before=second)] == [
        {"id": first, "at": 10.0, "user_id": "U1", "detail": "x"}
    ]
    reopened.close()
    with sqlite3.connect(path) as db:
        assert version(db) == MIGRATIONS[-1].version >= 3  # the chat tables are migration 3
    db.close()


def test_the_newest_run_of_each_environment_and_runs_by_id_prefix(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    shutil.copyfile(FIXTURE, path)
    store = Store(path)
    every = store.list_runs(limit=100)
    newest: dict[tuple[str, str], str] = {}
    for run in every:  # newest first
        newest.setdefault((run.repository, run.environment), run.id)
    latest = store.latest_runs()
    assert sorted(r.id for r in latest) == sorted(newest.values())
    one = every[3]
    assert [r.id for r in store.runs_by_id_prefix(one.id[:12])] == [one.id]
    assert store.runs_by_id_prefix("%") == [] and store.runs_by_id_prefix("") == []
    assert {r.repository for r in store.latest_runs(one.repository_name)} == {one.repository}
    store.close()
