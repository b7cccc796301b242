"""The service's store: runs, their stages and logs, and delivery ids for idempotency.

The only module that uses sqlite3, in WAL mode with ``synchronous=FULL``: an accepted delivery is on
disk before the webhook is answered. Writes go through one connection; reads use a second one, so a
reader never waits for a writer's fsync. :meth:`Store.submit` hands a write to a writer thread that
commits whatever has queued up in one transaction (group commit: one fsync for a burst of webhooks),
each write in its own savepoint so that one failing write fails alone.
"""

from __future__ import annotations

import concurrent.futures
import json
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from runner.events import RunState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    provider TEXT NOT NULL,
    ref TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    environment TEXT NOT NULL,
    namespace TEXT,
    preview INTEGER NOT NULL DEFAULT 0,
    action TEXT NOT NULL DEFAULT 'deploy',
    trigger TEXT NOT NULL,
    delivery_id TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    problems TEXT NOT NULL DEFAULT '[]',
    pipeline TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL DEFAULT '[]',
    superseded_by TEXT,
    interruptions INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state, created_at);
CREATE INDEX IF NOT EXISTS runs_ref ON runs (repository, ref, state);
CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, stage)
);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    line TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_run ON logs (run_id, id);
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class NewRun:
    repository: str
    """The repository's settings key, ``provider:name``."""
    provider: str
    ref: str
    commit: str
    environment: str
    namespace: str | None
    preview: bool
    action: str
    trigger: str
    delivery_id: str = ""


@dataclass(frozen=True)
class RunRecord:
    id: str
    repository: str
    provider: str
    ref: str
    commit: str
    environment: str
    namespace: str | None
    preview: bool
    action: str
    trigger: str
    delivery_id: str
    state: RunState
    reason: str
    problems: list[str]
    pipeline: str
    steps: list[list[str]]
    superseded_by: str | None
    interruptions: int
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def repository_name(self) -> str:
        return self.repository.split(":", 1)[1]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["repository"] = self.repository_name
        return data


@dataclass(frozen=True)
class StageRecord:
    stage: str
    kind: str
    state: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        ended = self.finished_at
        data["duration"] = (ended - self.started_at) if ended and self.started_at else None
        return data


@dataclass(frozen=True)
class LogRecord:
    id: int
    stage: str
    line: str
    at: float


@dataclass(frozen=True)
class Accepted:
    run: RunRecord
    duplicate: bool
    superseded: list[RunRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Recovered:
    requeued: list[RunRecord]
    failed: list[RunRecord]


T = TypeVar("T")
_BATCH_LIMIT = 512
_CHECKPOINT_SECONDS = 1.0

_RUN_COLUMNS = (
    "id, repository, provider, ref, commit_sha, environment, namespace, preview, action, trigger, "
    "delivery_id, state, reason, problems, pipeline, steps, superseded_by, interruptions, created_at, "
    "started_at, finished_at"
)


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0], repository=row[1], provider=row[2], ref=row[3], commit=row[4], environment=row[5],
        namespace=row[6], preview=bool(row[7]), action=row[8], trigger=row[9], delivery_id=row[10],
        state=RunState(row[11]), reason=row[12], problems=json.loads(row[13]), pipeline=row[14],
        steps=json.loads(row[15]), superseded_by=row[16], interruptions=row[17], created_at=row[18],
        started_at=row[19], finished_at=row[20],
    )


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # Checkpoints (copying the WAL into the database, with an fsync of it) happen in a thread of
        # their own, so a commit never waits for one.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA)
        self._read_lock = threading.Lock()
        self._read = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._read.execute("PRAGMA busy_timeout=5000")
        self._batching = False
        self._queue: queue.SimpleQueue[
            tuple[Callable[..., Any], tuple[Any, ...], concurrent.futures.Future[Any]] | None
        ] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_batches, name="store-writer", daemon=True)
        self._writer.start()
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint, args=(path,), name="store-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint(self, path: Path) -> None:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            while not self._closing.wait(_CHECKPOINT_SECONDS):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=30)
        self._closing.set()
        self._checkpointer.join(timeout=30)
        with self._lock:
            self._db.close()
        with self._read_lock:
            self._read.close()

    def ping(self) -> bool:
        with self._read_lock:
            return bool(self._read.execute("SELECT 1").fetchall() == [(1,)])

    # -- writing through the writer thread --------------------------------------------------------

    def submit(self, method: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Runs the write `method(*args)` (one of this class's) in the writer thread; the future is
        resolved once its transaction is committed. Writes run in the order they are submitted."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((method, args, future))
        return future

    def _write_batches(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < _BATCH_LIMIT:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            outcomes: list[tuple[concurrent.futures.Future[Any], Any, BaseException | None]] = []
            with self._lock:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._batching = True
                    for method, args, future in batch:
                        try:
                            outcomes.append((future, method(*args), None))
                        except Exception as problem:
                            outcomes.append((future, None, problem))
                    self._batching = False
                    self._db.execute("COMMIT")
                except Exception as failure:  # the commit itself failed: every write in it failed
                    self._batching = False
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    outcomes = [(future, None, failure) for _, _, future in batch]
            for future, result, exception in outcomes:
                if exception is not None:
                    future.set_exception(exception)
                else:
                    future.set_result(result)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._batching:  # inside the writer thread's batch: a savepoint
                self._db.execute("SAVEPOINT write")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK TO write")
                    self._db.execute("RELEASE write")
                    raise
                self._db.execute("RELEASE write")
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- accepting -----------------------------------------------------------------------------

    def accept(self, new: NewRun, keys: Iterable[str], coalesce: bool = True) -> Accepted:
        """Records `new` as queued unless one of `keys` was seen before (then returns that run).

        With `coalesce`, older queued runs of the same repository, ref and environment are marked
        superseded by the new one, in the same transaction.
        """
        keys = [k for k in keys if k]
        now = time.time()
        with self._transaction() as db:
            for key in keys:
                rows = db.execute("SELECT run_id FROM deliveries WHERE key = ?", (key,)).fetchall()
                if rows:
                    existing = self._get(rows[0][0])
                    if existing is not None:
                        return Accepted(existing, duplicate=True)
            run_id = uuid.uuid4().hex[:12]
            db.execute(
                "INSERT INTO runs (id, repository, provider, ref, commit_sha, environment, namespace, "
                "preview, action, trigger, delivery_id, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id, new.repository, new.provider, new.ref, new.commit, new.environment,
                    new.namespace, int(new.preview), new.action, new.trigger, new.delivery_id,
                    RunState.QUEUED.value, now,
                ),
            )
            for key in keys:
                db.execute("INSERT INTO deliveries VALUES (?, ?, ?)", (key, run_id, now))
            superseded: list[RunRecord] = []
            if coalesce:
                rows = db.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs WHERE repository = ? AND ref = ? AND "
                    "environment = ? AND state = 'queued' AND id != ? ORDER BY created_at",
                    (new.repository, new.ref, new.environment, run_id),
                ).fetchall()
                for row in rows:
                    db.execute(
                        "UPDATE runs SET state = 'superseded', superseded_by = ?, finished_at = ?, "
                        "reason = ? WHERE id = ?",
                        (run_id, now, f"superseded by {new.commit[:10]} (run {run_id})", row[0]),
                    )
                    superseded.append(self._get(row[0]) or _run(row))
            created = self._get(run_id)
        assert created is not None
        return Accepted(created, duplicate=False, superseded=superseded)

    # -- reading -------------------------------------------------------------------------------

    def _get(self, run_id: str) -> RunRecord | None:
        rows = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchall()
        return _run(rows[0]) if rows else None

    def get(self, run_id: str) -> RunRecord | None:
        with self._read_lock:
            # fetchall, not fetchone: a statement left unfinished would keep an old snapshot open.
            rows = self._read.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchall()
        return _run(rows[0]) if rows else None

    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        environment: str | None = None,
        state: str | None = None,
        repository: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        clauses, values = [], []
        for column, value in (
            ("pipeline", pipeline), ("environment", environment), ("state", state),
        ):
            if value:
                clauses.append(f"{column} = ?")
                values.append(value)
        if repository:
            clauses.append("repository LIKE ?")
            values.append(f"%:{repository.lower()}")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (*values, limit),
            ).fetchall()
        return [_run(row) for row in rows]

    def queued(self) -> list[RunRecord]:
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE state = 'queued' ORDER BY created_at, rowid"
            ).fetchall()
        return [_run(row) for row in rows]

    def count_deliveries(self) -> int:
        with self._read_lock:
            return int(self._read.execute("SELECT COUNT(*) FROM deliveries").fetchall()[0][0])

    def stages(self, run_id: str) -> list[StageRecord]:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT stage, kind, state, attempts, started_at, finished_at, reason FROM stages "
                "WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        return [StageRecord(*row) for row in rows]

    def logs(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[LogRecord]:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT id, stage, line, at FROM logs WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                (run_id, after, limit),
            ).fetchall()
        return [LogRecord(*row) for row in rows]

    # -- writing -------------------------------------------------------------------------------

    def mark_running(self, run_id: str) -> bool:
        """queued -> running; False when the run is no longer queued (cancelled, superseded)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET state = 'running', started_at = ? WHERE id = ? AND state = 'queued'",
                (time.time(), run_id),
            )
            return cursor.rowcount == 1

    def set_pipeline(
        self, run_id: str, pipeline: str, steps: Sequence[Sequence[str]], namespace: str
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET pipeline = ?, steps = ?, namespace = ? WHERE id = ?",
                (pipeline, json.dumps([list(s) for s in steps]), namespace, run_id),
            )
            for step in steps:
                for stage in step:
                    db.execute(
                        "INSERT OR IGNORE INTO stages (run_id, stage, state) VALUES (?, ?, 'pending')",
                        (run_id, stage),
                    )

    def finish(
        self,
        run_id: str,
        state: RunState,
        reason: str = "",
        problems: Sequence[str] = (),
        at: float | None = None,
    ) -> RunRecord | None:
        """Sets the final state of a queued or running run (ended `at`, default now); returns it, or
        None if it was already final."""
        at = time.time() if at is None else at
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET state = ?, reason = ?, problems = ?, finished_at = ? "
                "WHERE id = ? AND state IN ('queued', 'running')",
                (state.value, reason, json.dumps(list(problems)), at, run_id),
            )
            if cursor.rowcount != 1:
                return None
            db.execute(
                "UPDATE stages SET state = 'cancelled', finished_at = ? WHERE run_id = ? AND "
                "state = 'running'",
                (time.time(), run_id),
            )
            return self._get(run_id)

    def stage_started(self, run_id: str, stage: str, kind: str, attempt: int, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO stages (run_id, stage, kind, state, attempts, started_at) "
                "VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT (run_id, stage) DO UPDATE SET "
                "kind = excluded.kind, state = 'running', attempts = excluded.attempts, "
                "started_at = COALESCE(stages.started_at, excluded.started_at)",
                (run_id, stage, kind, attempt, at),
            )

    def stage_finished(
        self, run_id: str, stage: str, state: str, attempts: int, started_at: float, at: float, reason: str
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO stages (run_id, stage, state, attempts, started_at, finished_at, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, stage) DO UPDATE SET "
                "state = excluded.state, attempts = excluded.attempts, "
                "started_at = COALESCE(stages.started_at, excluded.started_at), "
                "finished_at = excluded.finished_at, reason = excluded.reason",
                (run_id, stage, state, attempts, started_at, at, reason),
            )

    def add_logs(self, run_id: str, lines: Iterable[tuple[str, str, float]]) -> None:
        """Appends (stage, line, at) records."""
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO logs (run_id, stage, line, at) VALUES (?, ?, ?, ?)",
                [(run_id, stage, line, at) for stage, line, at in lines],
            )

    def prune_deliveries(self, older_than: float) -> int:
        """Forgets delivery ids received before `older_than` (epoch seconds); returns how many."""
        with self._transaction() as db:
            return db.execute("DELETE FROM deliveries WHERE received_at < ?", (older_than,)).rowcount

    def recover(self, max_reruns: int) -> Recovered:
        """After a restart: each run left 'running' is queued again, or failed after `max_reruns`."""
        requeued, failed = [], []
        now = time.time()
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE state = 'running' ORDER BY created_at"
            ).fetchall()
            for row in rows:
                run = _run(row)
                if run.interruptions < max_reruns:
                    db.execute(
                        "UPDATE runs SET state = 'queued', started_at = NULL, "
                        "interruptions = interruptions + 1 WHERE id = ?",
                        (run.id,),
                    )
                    db.execute("DELETE FROM stages WHERE run_id = ?", (run.id,))
                    note = "the service restarted while this run was running; it is run again"
                    requeued.append(run)
                else:
                    reason = (
                        f"interrupted by a restart of the service ({run.interruptions + 1} times); "
                        "not run again: trigger it manually with POST /api/runs"
                    )
                    db.execute(
                        "UPDATE runs SET state = 'failed', reason = ?, interruptions = interruptions + 1, "
                        "finished_at = ? WHERE id = ?",
                        (reason, now, run.id),
                    )
                    db.execute(
                        "UPDATE stages SET state = 'failed', finished_at = ?, reason = 'interrupted' "
                        "WHERE run_id = ? AND state IN ('running', 'pending')",
                        (now, run.id),
                    )
                    note = reason
                    failed.append(run)
                db.execute(
                    "INSERT INTO logs (run_id, stage, line, at) VALUES (?, '', ?, ?)", (run.id, note, now)
                )
        return Recovered(
            [r for r in (self._get(x.id) for x in requeued) if r],
            [r for r in (self._get(x.id) for x in failed) if r],
        )
