"""The store's reads that chat replies are made of."""

from __future__ import annotations

from pathlib import Path

from gitops.status import RunStatus
from gitops.store import NewRun, Store


def test_the_tail_of_a_long_log_is_its_last_lines_of_the_run_or_of_one_stage(tmp_path: Path) -> None:
    """What `/bodywork logs` and a stage's thread reply show: the end, however long the log is (they
    showed the end of the first 10,000 lines)."""
    store = Store(tmp_path / "store.sqlite3")
    try:
        new = NewRun("github:acme/app", "github", "refs/heads/main", "a" * 40, "production", None, False,
                     "deploy", "webhook")
        run = store.accept(new, []).run
        lines = [("train" if n % 3 else "serve", f"line {n}", float(n)) for n in range(12_000)]
        store.add_logs(run.id, lines)
        assert [r.line for r in store.log_tail(run.id, 3)] == ["line 11997", "line 11998", "line 11999"]
        serve = [r.line for r in store.log_tail(run.id, 2, stage="serve")]
        assert serve == ["line 11994", "line 11997"]
        assert len(store.log_tail(run.id, 10_000, stage="train")) == 8_000
        assert (store.count_logs(run.id), store.count_logs(run.id, "serve")) == (12_000, 4_000)
    finally:
        store.close()


def test_what_each_environment_last_deployed_is_found_however_many_runs_came_after(
    tmp_path: Path,
) -> None:
    """What `/bodywork services` lists: production deployed once, then a thousand runs of another
    environment (it looked at the last 500 runs, and lost production's services)."""
    store = Store(tmp_path / "store.sqlite3", fsync_commits=False)  # 3,000 writes

    def run(environment: str, state: RunStatus, action: str = "deploy", repository: str = "app") -> str:
        new = NewRun(f"github:acme/{repository}", "github", "refs/heads/main", "a" * 40, environment,
                     None, False, action, "webhook")
        run_id = store.accept(new, [], coalesce=False).run.id
        store.mark_running(run_id)
        store.finish(run_id, state, "")
        return run_id

    try:
        production = run("production", RunStatus.SUCCEEDED)
        run("production", RunStatus.FAILED)  # a later deploy that failed leaves the last good one
        staging = [run("staging", RunStatus.SUCCEEDED) for _ in range(1000)][-1]
        run("staging", RunStatus.SUCCEEDED, action="teardown")
        other = run("production", RunStatus.SUCCEEDED, repository="other")
        assert [r.id for r in store.latest_deploys()] == [other, staging, production]
        assert [r.id for r in store.latest_deploys("acme/app")] == [staging, production]
        assert [r.id for r in store.latest_deploys("acme/app", "production")] == [production]
        assert store.latest_deploys(environment="nope") == []
    finally:
        store.close()
