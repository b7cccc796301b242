"""The store's reads that chat replies are made of."""

from __future__ import annotations

from pathlib import Path

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
