"""The store's reads of runs, their stages and logs: filtered lists for the pages and the API, the
newest run of each environment, distinct values for the filters.

A mixin of :class:`~gitops.store.database.Store`, whose read connection (its own, so that a reader never
waits for a writer's fsync) and lock it uses. Statuses are bound as SQL parameters.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from gitops.status import RunStatus
from gitops.store.records import RUN_COLUMNS, LogRecord, RunRecord, StageRecord, run_from_row


class RunReads:
    _read: sqlite3.Connection
    _read_lock: threading.Lock

    def query(self, sql: str, parameters: Sequence[object]) -> list[tuple[Any, ...]]:
        """Rows of a read on the read connection (also for the store's other modules); fetchall, not
        fetchone: a statement left unfinished would keep an old snapshot open."""
        with self._read_lock:
            return self._read.execute(sql, tuple(parameters)).fetchall()

    def get(self, run_id: str) -> RunRecord | None:
        rows = self.query(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return run_from_row(rows[0]) if rows else None

    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        environment: str | None = None,
        state: RunStatus | None = None,
        repository: str | None = None,
        ref: str | None = None,
        trigger: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Newest first; `ref` matches the full ref or the branch or tag name (``main``)."""
        clauses: list[str] = []
        values: list[str] = []
        for column, value in (
            ("pipeline", pipeline), ("environment", environment), ("state", state.value if state else None),
            ("trigger", trigger),
        ):
            if value:
                clauses.append(f"{column} = ?")
                values.append(value)
        if repository:
            clauses.append("repository LIKE ?")
            values.append(f"%:{repository.lower()}")
        if ref:
            clauses.append("ref IN (?, ?, ?)")
            values += [ref, f"refs/heads/{ref}", f"refs/tags/{ref}"]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {RUN_COLUMNS} FROM runs {where} "
                "ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (*values, limit, offset),
            ).fetchall()
        return [run_from_row(row) for row in rows]

    def runs_by_id_prefix(self, prefix: str, limit: int = 2) -> list[RunRecord]:
        """Runs whose id starts with `prefix` (letters, digits and '-' only; anything else finds none)."""
        if not prefix or not all(c.isalnum() or c == "-" for c in prefix):
            return []
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE ? LIMIT ?", (f"{prefix.lower()}%", limit)
            ).fetchall()
        return [run_from_row(row) for row in rows]

    def latest_runs(self, repository: str | None = None) -> list[RunRecord]:
        """The newest run of each (repository, environment), found in SQL: no row parsed for the rest."""
        return self._newest_of_each_environment([], [], repository)

    def latest_deploys(
        self, repository: str | None = None, environment: str | None = None
    ) -> list[RunRecord]:
        """The newest succeeded deploy of each (repository, environment), newest first: what each
        environment was last deployed with, however many runs came after it elsewhere."""
        clauses, values = ["state = ?", "action = ?"], [RunStatus.SUCCEEDED.value, "deploy"]
        if environment:
            clauses.append("environment = ?")
            values.append(environment)
        return self._newest_of_each_environment(clauses, values, repository)

    def _newest_of_each_environment(
        self, clauses: list[str], values: list[str], repository: str | None
    ) -> list[RunRecord]:
        """Of the runs matching `clauses`, the newest of each (repository, environment), newest first."""
        if repository:
            clauses, values = [*clauses, "repository LIKE ?"], [*values, f"%:{repository.lower()}"]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.query(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE rowid IN (SELECT MAX(rowid) FROM runs {where} "
            "GROUP BY repository, environment) ORDER BY created_at DESC, rowid DESC",
            values,
        )
        return [run_from_row(row) for row in rows]

    def distinct(self, column: str) -> list[str]:
        """The values of `column` (environment, trigger, repository, ref) found in runs, sorted."""
        if column not in ("environment", "trigger", "repository", "ref"):
            raise ValueError(f"no distinct values of {column!r}")
        with self._read_lock:
            rows = self._read.execute(f"SELECT DISTINCT {column} FROM runs ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    def queued(self) -> list[RunRecord]:
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE state = ? ORDER BY created_at, rowid",
                (RunStatus.QUEUED.value,),
            ).fetchall()
        return [run_from_row(row) for row in rows]

    def count_deliveries(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM deliveries", ())[0][0])

    def stages(self, run_id: str) -> list[StageRecord]:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT stage, kind, state, attempts, started_at, finished_at, reason, url FROM stages "
                "WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        return [StageRecord(*row) for row in rows]

    def log_tail(self, run_id: str, limit: int, stage: str | None = None) -> list[LogRecord]:
        """The last `limit` lines of a run's log, or of one of its stages, oldest first."""
        where, values = _of_run(run_id, stage)
        rows = self.query(f"SELECT id, stage, line, at FROM logs WHERE {where} ORDER BY id DESC LIMIT ?",
                          (*values, limit))
        return [LogRecord(*row) for row in reversed(rows)]

    def count_logs(self, run_id: str, stage: str | None = None) -> int:
        """How many lines a run's log, or one of its stages', holds."""
        where, values = _of_run(run_id, stage)
        return int(self.query(f"SELECT COUNT(*) FROM logs WHERE {where}", values)[0][0])

    def logs(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[LogRecord]:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT id, stage, line, at FROM logs WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                (run_id, after, limit),
            ).fetchall()
        return [LogRecord(*row) for row in rows]


def _of_run(run_id: str, stage: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition on `logs` for a run's lines, or one of its stages'."""
    return ("run_id = ?", (run_id,)) if stage is None else ("run_id = ? AND stage = ?", (run_id, stage))
