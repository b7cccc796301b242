"""The store's queries and writes: runs, their stages and logs, and delivery ids for idempotency.

Statuses are bound as SQL parameters, never spelled in SQL text. Reads use a connection of their own,
so a reader never waits for a writer's fsync. Each write of a run tells :attr:`Store.changes` what it
changed, once committed (:mod:`gitops.store.changes`).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from gitops.status import ACTIVE, FailureKind, RunStatus
from gitops.store.changes import Change, Changes
from gitops.store.reads import RunReads
from gitops.store.records import (
    RUN_COLUMNS,
    Accepted,
    AuditRecord,
    MessageRecord,
    NewRun,
    Recovered,
    RunRecord,
    run_from_row,
)
from gitops.store.schedules import ScheduleTables
from gitops.store.schema import migrate
from gitops.store.writer import Writer
from runner.events import StageState

T = TypeVar("T")
PAGE_SIZE = 1024
"""The page size of a new store (see ``Store.__init__``)."""
_ACTIVE = tuple(status.value for status in ACTIVE)


class Store(RunReads):
    """The store: its reads are :class:`~gitops.store.reads.RunReads`'s; its writes are here."""

    def __init__(
        self,
        path: Path,
        on_commit: Callable[[float], None] | None = None,
        fsync_commits: bool = True,
        fsync_helper: bool = True,
    ) -> None:
        """`on_commit` is told how long each batch's commit took (seconds, before its fsync);
        `fsync_helper` False fsyncs the event loop's commits in a thread instead of a helper process."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # A new store's pages are 1 KB, not SQLite's 4 KB: a webhook's accept changes a row or an index
        # entry on each of a dozen pages, and the WAL takes (and the fsync writes) each page whole:
        # 17 KB per webhook instead of 48 KB, and less of the commit's time on the event loop. A
        # store made with 4 KB pages keeps them (WAL mode cannot change it); both work the same.
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # the writer's syncer makes a commit durable, off the loop
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the writer's checkpoint thread does it
        migrate(db)
        self._db = db
        self._writer = Writer(db, path, on_commit, fsync_commits, fsync_helper)
        self.changes = Changes()
        """Told of each committed change of a run (its logs, its row, its stages) by the writes below."""
        self._read_lock = threading.Lock()
        self._read = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._read.execute("PRAGMA busy_timeout=5000")
        self.schedules = ScheduleTables(self._writer, self._read, self._read_lock, self.accept)

    def close(self) -> None:
        self.changes.stop()
        self._writer.close()
        with self._read_lock:
            self._read.close()

    def ping(self) -> bool:
        return self.query("SELECT 1", ()) == [(1,)]

    def submit(
        self, method: Callable[..., T], *args: Any, lazy: bool = False
    ) -> concurrent.futures.Future[T]:
        """Queues the write `method(*args)` (one of this class's) for the next group commit; the
        future is resolved once it is committed and on disk. Writes run in the order submitted. A
        `lazy` write (nothing awaits it) waits a few milliseconds for another write to batch with."""
        return self._writer.submit(method, *args, lazy=lazy)

    async def write(self, method: Callable[..., T], *args: Any) -> T:
        """On the event loop: the write `method(*args)`, committed and on disk when this returns, in
        the next group commit (the cheaper way to await one; see :meth:`Writer.write`)."""
        return await self._writer.write(method, *args)

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (a savepoint in the writer's batch); also for the store's other modules."""
        return self._writer.transaction()

    def _changed(self, run_id: str, what: Change) -> None:
        """Inside a write: the followers of `run_id` are told of `what` once it is committed."""
        self._writer.after_commit(self.changes.changed, run_id, what)

    # -- accepting -----------------------------------------------------------------------------

    def accept(self, new: NewRun, keys: Iterable[str], coalesce: bool = True) -> Accepted:
        """Records `new` as queued unless one of `keys` was seen before (then returns that run).

        With `coalesce`, older queued runs of the same repository, ref and environment are marked
        superseded by the new one, in the same transaction.
        """
        keys = list(dict.fromkeys(k for k in keys if k))
        now = time.time()
        # Few statements on purpose: this runs on the event loop while a webhook waits for its answer.
        with self.transaction() as db:
            if keys:
                marks = ", ".join("?" * len(keys))
                seen = db.execute(
                    f"SELECT run_id FROM deliveries WHERE key IN ({marks}) LIMIT 1", keys
                ).fetchone()
                if seen is not None and (existing := self._get(seen[0])) is not None:
                    return Accepted(existing, duplicate=True)
            created = new.queued(os.urandom(6).hex(), now)  # built, not read back: one statement less
            db.execute(
                "INSERT INTO runs (id, repository, provider, ref, commit_sha, environment, namespace, "
                "preview, action, trigger, delivery_id, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    created.id, new.repository, new.provider, new.ref, new.commit, new.environment,
                    new.namespace, int(new.preview), new.action, new.trigger, new.delivery_id,
                    created.state.value, now,
                ),
            )
            if keys:
                db.execute(
                    "INSERT INTO deliveries VALUES " + ", ".join("(?, ?, ?)" for _ in keys),
                    [value for key in keys for value in (key, created.id, now)],
                )
            superseded: list[RunRecord] = []
            if coalesce:
                rows = db.execute(
                    "UPDATE runs SET state = ?, superseded_by = ?, finished_at = ?, reason = ? "
                    "WHERE repository = ? AND ref = ? AND environment = ? AND state = ? AND id != ? "
                    f"RETURNING {RUN_COLUMNS}",
                    (
                        RunStatus.SUPERSEDED.value, created.id, now,
                        f"superseded by {new.commit[:10]} (run {created.id})",
                        new.repository, new.ref, new.environment, RunStatus.QUEUED.value, created.id,
                    ),
                ).fetchall()
                superseded = sorted(map(run_from_row, rows), key=lambda run: run.created_at)
            for run in superseded:
                self._changed(run.id, Change.RUN)
        return Accepted(created, duplicate=False, superseded=superseded)

    # -- reading -------------------------------------------------------------------------------

    def _get(self, run_id: str) -> RunRecord | None:
        rows = self._db.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchall()
        return run_from_row(rows[0]) if rows else None

    # -- writing -------------------------------------------------------------------------------

    def mark_running(self, run_id: str) -> bool:
        """queued -> running; False when the run is no longer queued (cancelled, superseded)."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET state = ?, started_at = ? WHERE id = ? AND state = ?",
                (RunStatus.RUNNING.value, time.time(), run_id, RunStatus.QUEUED.value),
            )
            if cursor.rowcount != 1:
                return False
            self._changed(run_id, Change.RUN)
            return True

    def set_pipeline(
        self, run_id: str, pipeline: str, steps: Sequence[Sequence[str]], namespace: str
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET pipeline = ?, steps = ?, namespace = ? WHERE id = ?",
                (pipeline, json.dumps([list(s) for s in steps]), namespace, run_id),
            )
            for step in steps:
                for stage in step:
                    db.execute(
                        "INSERT OR IGNORE INTO stages (run_id, stage, state) VALUES (?, ?, ?)",
                        (run_id, stage, StageState.PENDING.value),
                    )
            self._changed(run_id, Change.RUN | Change.STAGES)

    def finish(
        self,
        run_id: str,
        status: RunStatus,
        reason: str = "",
        problems: Sequence[str] = (),
        at: float | None = None,
        failure: FailureKind | None = None,
    ) -> RunRecord | None:
        """Sets the final status of a queued or running run (ended `at`, default now) and, for a failed
        one, its kind of failure; returns it, or None if it was already final."""
        at = time.time() if at is None else at
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET state = ?, reason = ?, problems = ?, finished_at = ?, failure = ? "
                "WHERE id = ? AND state IN (?, ?)",
                (status.value, reason, json.dumps(list(problems)), at, failure.value if failure else None,
                 run_id, *_ACTIVE),
            )
            if cursor.rowcount != 1:
                return None
            cancelled = db.execute(
                "UPDATE stages SET state = ?, finished_at = ? WHERE run_id = ? AND state = ?",
                (StageState.CANCELLED.value, time.time(), run_id, StageState.RUNNING.value),
            ).rowcount
            self._changed(run_id, (Change.RUN | Change.STAGES) if cancelled else Change.RUN)
            return self._get(run_id)

    def stage_started(self, run_id: str, stage: str, kind: str, attempt: int, at: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO stages (run_id, stage, kind, state, attempts, started_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, stage) DO UPDATE SET "
                "kind = excluded.kind, state = excluded.state, attempts = excluded.attempts, "
                "started_at = COALESCE(stages.started_at, excluded.started_at)",
                (run_id, stage, kind, StageState.RUNNING.value, attempt, at),
            )
            self._changed(run_id, Change.STAGES)

    def stage_finished(
        self, run_id: str, stage: str, state: str, attempts: int, started_at: float, at: float, reason: str
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO stages (run_id, stage, state, attempts, started_at, finished_at, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, stage) DO UPDATE SET "
                "state = excluded.state, attempts = excluded.attempts, "
                "started_at = COALESCE(stages.started_at, excluded.started_at), "
                "finished_at = excluded.finished_at, reason = excluded.reason",
                (run_id, stage, state, attempts, started_at, at, reason),
            )
            self._changed(run_id, Change.STAGES)

    def set_message(self, run_id: str, message: str) -> None:
        """The message of the run's commit (at most 4000 characters are kept)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET message = ? WHERE id = ?", (message[:4000], run_id))
            self._changed(run_id, Change.RUN)

    def set_stage_url(self, run_id: str, stage: str, url: str) -> None:
        """Where a deployed service stage answers (in the cluster, or on this machine)."""
        with self.transaction() as db:
            db.execute("UPDATE stages SET url = ? WHERE run_id = ? AND stage = ?", (url, run_id, stage))
            self._changed(run_id, Change.STAGES)

    def add_logs(self, run_id: str, lines: Iterable[tuple[str, str, float]]) -> None:
        """Appends (stage, line, at) records."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO logs (run_id, stage, line, at) VALUES (?, ?, ?, ?)",
                [(run_id, stage, line, at) for stage, line, at in lines],
            )
            self._changed(run_id, Change.LOGS)

    # -- chat messages of runs, and the audit log ----------------------------------------------

    def message(self, run_id: str, sink: str) -> MessageRecord | None:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT channel, ts, parts FROM run_messages WHERE run_id = ? AND sink = ?", (run_id, sink)
            ).fetchall()
        return MessageRecord(rows[0][0], rows[0][1], frozenset(json.loads(rows[0][2]))) if rows else None

    def put_message(self, run_id: str, sink: str, channel: str, ts: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO run_messages (run_id, sink, channel, ts) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, sink) DO UPDATE SET channel = excluded.channel, ts = excluded.ts",
                (run_id, sink, channel, ts),
            )

    def add_message_part(self, run_id: str, sink: str, part: str) -> None:
        with self.transaction() as db:
            rows = db.execute(
                "SELECT parts FROM run_messages WHERE run_id = ? AND sink = ?", (run_id, sink)
            ).fetchall()
            if rows:
                parts = sorted({*json.loads(rows[0][0]), part})
                db.execute(
                    "UPDATE run_messages SET parts = ? WHERE run_id = ? AND sink = ?",
                    (json.dumps(parts), run_id, sink),
                )

    def add_audit(self, at: float, actor: str, action: str, outcome: str, entry: dict[str, Any]) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO audit (at, actor, action, outcome, entry) VALUES (?, ?, ?, ?, ?)",
                (at, actor, action, outcome, json.dumps(entry)),
            )
            return int(cursor.lastrowid or 0)

    def audit(self, limit: int = 100, before: int | None = None) -> list[AuditRecord]:
        """Newest first; `before` (an id) pages back."""
        with self._read_lock:
            rows = self._read.execute(
                "SELECT id, at, entry FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before if before is not None else 2**62, limit),
            ).fetchall()
        return [AuditRecord(row[0], row[1], json.loads(row[2])) for row in rows]

    def prune_deliveries(self, older_than: float) -> int:
        """Forgets delivery ids received before `older_than` (epoch seconds); returns how many."""
        with self.transaction() as db:
            return db.execute("DELETE FROM deliveries WHERE received_at < ?", (older_than,)).rowcount

    def recover(self, max_reruns: int) -> Recovered:
        """After a restart: each run left 'running' is queued again, or failed after `max_reruns`."""
        requeued, failed = [], []
        now = time.time()
        with self.transaction() as db:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE state = ? ORDER BY created_at",
                (RunStatus.RUNNING.value,),
            ).fetchall()
            for row in rows:
                run = run_from_row(row)
                if run.interruptions < max_reruns:
                    db.execute(
                        "UPDATE runs SET state = ?, started_at = NULL, "
                        "interruptions = interruptions + 1 WHERE id = ?",
                        (RunStatus.QUEUED.value, run.id),
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
                        "UPDATE runs SET state = ?, failure = ?, reason = ?, "
                        "interruptions = interruptions + 1, finished_at = ? WHERE id = ?",
                        (RunStatus.FAILED.value, FailureKind.INTERRUPTED.value, reason, now, run.id),
                    )
                    db.execute(
                        "UPDATE stages SET state = ?, finished_at = ?, reason = 'interrupted' "
                        "WHERE run_id = ? AND state IN (?, ?)",
                        (StageState.FAILED.value, now, run.id, StageState.RUNNING.value,
                         StageState.PENDING.value),
                    )
                    note = reason
                    failed.append(run)
                db.execute(
                    "INSERT INTO logs (run_id, stage, line, at) VALUES (?, '', ?, ?)", (run.id, note, now)
                )
                self._changed(run.id, Change.ALL)
        return Recovered(
            [r for r in (self._get(x.id) for x in requeued) if r],
            [r for r in (self._get(x.id) for x in failed) if r],
        )
