"""The schedules' tables: each registered schedule with how far its fires are decided, and the history
of every fire (queued, skipped, missed, failed). Tables made by migration 2 (:mod:`.schema`).

:meth:`ScheduleTables.record_fire` writes a decision, the schedule's new ``since`` and the queued run
in one transaction: that is what makes a restart neither lose nor double a fire.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gitops.schedules.model import HistoryEntry, Registration, ScheduleRecord
from gitops.schedules.policy import Outcome
from gitops.status import RunStatus
from gitops.store.records import Accepted, NewRun
from gitops.store.writer import Writer
from runner.schedule import ConcurrencyPolicy, Schedule

# Per schedule, the history keeps this many entries (the newest).
HISTORY_KEPT = 500

TABLES = (
    """CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        ref TEXT NOT NULL,
        namespace TEXT,
        preview INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        concurrency_policy TEXT NOT NULL,
        starting_deadline_seconds INTEGER,
        suspend INTEGER NOT NULL DEFAULT 0,
        since REAL NOT NULL,
        last_fire REAL,
        last_outcome TEXT,
        last_run_id TEXT,
        last_detail TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE schedule_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule_id TEXT NOT NULL,
        scheduled_for REAL NOT NULL,
        decided_at REAL NOT NULL,
        outcome TEXT NOT NULL,
        run_id TEXT,
        detail TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX schedule_history_by_schedule ON schedule_history (schedule_id, id)",
    "CREATE INDEX schedule_history_by_run ON schedule_history (run_id)",
    # Queueing a run coalesces the older queued runs of its environment and ref, oldest first: without
    # this index SQLite walks every queued run for each new one (a thousand fires at 03:00: a million).
    "CREATE INDEX runs_environment ON runs (environment, state, repository, ref, created_at)",
)

_COLUMNS = (
    "id, repository, ref, namespace, preview, source, cron, timezone, concurrency_policy, "
    "starting_deadline_seconds, suspend, since, last_fire, last_outcome, last_run_id, last_detail"
)
_HISTORY_COLUMNS = "schedule_id, scheduled_for, decided_at, outcome, run_id, detail"

Accept = Callable[[NewRun, Iterable[str]], Accepted]
Decision = tuple[str, float | None, Sequence[HistoryEntry], NewRun | None]
"""A schedule's id, its new ``since``, the history entries and the run to queue."""


def create_tables(db: sqlite3.Connection) -> None:
    for statement in TABLES:
        db.execute(statement)


def _record(row: Sequence[Any]) -> ScheduleRecord:
    schedule = Schedule(
        cron=row[6],
        timezone=row[7],
        concurrency_policy=ConcurrencyPolicy(row[8]),
        starting_deadline_seconds=row[9],
        suspend=bool(row[10]),
    )
    registration = Registration(
        environment=row[0],
        repository=row[1],
        ref=row[2],
        namespace=row[3],
        preview=bool(row[4]),
        source=row[5],
        schedule=schedule,
    )
    outcome = Outcome(row[13]) if row[13] else None
    return ScheduleRecord(registration, row[11], row[12], outcome, row[14], row[15])


def _entry(row: Sequence[Any]) -> HistoryEntry:
    return HistoryEntry(row[0], row[1], row[2], Outcome(row[3]), row[4], row[5])


class ScheduleTables:
    """Reads on the store's read connection; writes through ``store.submit`` (group commit)."""

    def __init__(
        self, writer: Writer, read: sqlite3.Connection, read_lock: threading.Lock, accept: Accept
    ) -> None:
        self._writer = writer
        self._read = read
        self._read_lock = read_lock
        self._accept = accept

    def _select(self, sql: str, values: tuple[Any, ...] = ()) -> list[Any]:
        with self._read_lock:
            return self._read.execute(sql, values).fetchall()

    # -- reading -------------------------------------------------------------------------------

    def all(self) -> list[ScheduleRecord]:
        return [_record(row) for row in self._select(f"SELECT {_COLUMNS} FROM schedules ORDER BY id")]

    def get(self, schedule_id: str) -> ScheduleRecord | None:
        rows = self._select(f"SELECT {_COLUMNS} FROM schedules WHERE id = ?", (schedule_id,))
        return _record(rows[0]) if rows else None

    def activity(self, environments: Iterable[str]) -> dict[str, tuple[list[str], list[str]]]:
        """For each of `environments`, the ids of its running and its queued runs, oldest first."""
        found: dict[str, tuple[list[str], list[str]]] = {name: ([], []) for name in environments}
        rows = self._select(
            "SELECT environment, id, state FROM runs WHERE state IN (?, ?) ORDER BY created_at",
            (RunStatus.RUNNING.value, RunStatus.QUEUED.value),
        )
        for environment, run_id, state in rows:
            if environment in found:
                found[environment][0 if state == RunStatus.RUNNING.value else 1].append(run_id)
        return found

    def history(self, schedule_id: str, limit: int = 50) -> list[HistoryEntry]:
        """The newest `limit` entries of `schedule_id`, newest first (kept after it is removed)."""
        rows = self._select(
            f"SELECT {_HISTORY_COLUMNS} FROM schedule_history WHERE schedule_id = ? ORDER BY id DESC LIMIT ?",
            (schedule_id, limit),
        )
        return [_entry(row) for row in rows]

    def fire_of(self, run_id: str) -> HistoryEntry | None:
        """The fire that queued the run `run_id` (None for a run a schedule did not queue)."""
        rows = self._select(
            f"SELECT {_HISTORY_COLUMNS} FROM schedule_history WHERE run_id = ? ORDER BY id LIMIT 1", (run_id,)
        )
        return _entry(rows[0]) if rows else None

    # -- writing (in a group commit) ------------------------------------------------------------

    def save(self, record: ScheduleRecord) -> None:
        registration, schedule = record.registration, record.registration.schedule
        with self._writer.transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO schedules ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    registration.id,
                    registration.repository,
                    registration.ref,
                    registration.namespace,
                    int(registration.preview),
                    registration.source,
                    schedule.cron,
                    schedule.timezone,
                    schedule.concurrency_policy.value,
                    schedule.starting_deadline_seconds,
                    int(schedule.suspend),
                    record.since,
                    record.last_fire,
                    record.last_outcome.value if record.last_outcome else None,
                    record.last_run_id,
                    record.last_detail,
                ),
            )

    def delete(self, schedule_id: str) -> bool:
        with self._writer.transaction() as db:
            return db.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount == 1

    def record_fires(self, decisions: Sequence[Decision]) -> list[Accepted | None]:
        """:meth:`record_fire` for each of `decisions`, in one transaction."""
        with self._writer.transaction():
            return [self.record_fire(*decision) for decision in decisions]

    def record_fire(
        self,
        schedule_id: str,
        since: float | None,
        entries: Sequence[HistoryEntry],
        run: NewRun | None,
    ) -> Accepted | None:
        """Queues `run` (as a push would be queued, coalescing older queued runs of its branch),
        appends `entries` (the ``queued`` one gets the run's id), and moves the schedule's ``since``
        and last fire on, all in one transaction. Returns what :meth:`Store.accept` returned."""
        with self._writer.transaction() as db:
            accepted = self._accept(run, ()) if run is not None else None
            run_id = accepted.run.id if accepted is not None else None
            for entry in entries:
                db.execute(
                    f"INSERT INTO schedule_history ({_HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        schedule_id,
                        entry.scheduled_for,
                        entry.decided_at,
                        entry.outcome.value,
                        run_id if entry.outcome is Outcome.QUEUED else entry.run_id,
                        entry.detail,
                    ),
                )
            if entries:
                last = entries[-1]
                db.execute(
                    "UPDATE schedules SET since = COALESCE(?, since), last_fire = ?, last_outcome = ?, "
                    "last_run_id = ?, last_detail = ? WHERE id = ?",
                    (
                        since,
                        last.scheduled_for,
                        last.outcome.value,
                        run_id if last.outcome is Outcome.QUEUED else last.run_id,
                        last.detail,
                        schedule_id,
                    ),
                )
            db.execute(
                "DELETE FROM schedule_history WHERE schedule_id = ? AND id <= (SELECT id FROM "
                "schedule_history WHERE schedule_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (schedule_id, schedule_id, HISTORY_KEPT),
            )
        return accepted
