"""The store's schema and its numbered migrations.

``PRAGMA user_version`` is the number of the last migration applied; 0 is the schema of the release
before migrations existed (:data:`BASELINE`, created as is in a new database). :func:`migrate` applies
the missing migrations in order, in one transaction, at start-up: a database is either fully upgraded
or untouched. A migration, once released, is never edited: a change is a new migration at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gitops.status import FailureKind, RunStatus
from gitops.store.schedules import create_tables as create_schedule_tables

BASELINE = (
    """CREATE TABLE IF NOT EXISTS runs (
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
    )""",
    "CREATE INDEX IF NOT EXISTS runs_state ON runs (state, created_at)",
    "CREATE INDEX IF NOT EXISTS runs_ref ON runs (repository, ref, state)",
    """CREATE TABLE IF NOT EXISTS stages (
        run_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        started_at REAL,
        finished_at REAL,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, stage)
    )""",
    """CREATE TABLE IF NOT EXISTS logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        line TEXT NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS logs_run ON logs (run_id, id)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        received_at REAL NOT NULL
    )""",
)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


def _failure_kinds(db: sqlite3.Connection) -> None:
    """A failed run's kind of failure moves from a ``git:`` prefix (and the wording of its reason)
    into its own column."""
    db.execute("ALTER TABLE runs ADD COLUMN failure TEXT")
    failed = RunStatus.FAILED.value
    db.execute(
        "UPDATE runs SET failure = ?, reason = trim(substr(reason, 5)) "
        "WHERE state = ? AND reason LIKE 'git:%'",
        (FailureKind.GIT.value, failed),
    )
    rules = (
        (FailureKind.CONFIG, "problems != '[]'"),
        (FailureKind.INTERRUPTED, "reason LIKE 'interrupted by a restart%'"),
        (FailureKind.INTERNAL, "reason LIKE 'internal error:%'"),
        (FailureKind.UNCONFIGURED, "reason LIKE 'repository % is no longer configured'"),
        (FailureKind.PIPELINE, "1"),
    )
    for kind, condition in rules:
        db.execute(
            f"UPDATE runs SET failure = ? WHERE state = ? AND failure IS NULL AND {condition}",
            (kind.value, failed),
        )


def _messages_and_audit(db: sqlite3.Connection) -> None:
    """Where a run's chat message is (so a restart edits the same one) and which of its parts (stage
    logs) were posted; and the audit log of what users did through chat."""
    db.execute(
        """CREATE TABLE run_messages (
            run_id TEXT NOT NULL,
            sink TEXT NOT NULL,
            channel TEXT NOT NULL,
            ts TEXT NOT NULL,
            parts TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (run_id, sink)
        )"""
    )
    db.execute(
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL,
            entry TEXT NOT NULL
        )"""
    )


def _status_outbox(db: sqlite3.Connection) -> None:
    """Commit statuses wait here until delivered, so that neither an API outage nor a restart loses
    one. One row per commit and context (the newest status replaces the older); the token is not
    stored (it comes from the settings when the status is sent)."""
    db.execute(
        """CREATE TABLE status_outbox (
            provider TEXT NOT NULL,
            api_base TEXT NOT NULL,
            repository TEXT NOT NULL,
            sha TEXT NOT NULL,
            context TEXT NOT NULL,
            ref TEXT NOT NULL,
            state TEXT NOT NULL,
            description TEXT NOT NULL,
            target_url TEXT NOT NULL,
            queued_at REAL NOT NULL,
            outcome TEXT NOT NULL DEFAULT 'pending',
            settled_at REAL,
            reason TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (provider, api_base, repository, sha, context)
        )"""
    )
    db.execute("CREATE INDEX status_outbox_pending ON status_outbox (outcome, queued_at)")


def _page_details(db: sqlite3.Connection) -> None:
    """What the pages show besides: the URL of each deployed service stage (environment page), the
    message of the run's commit (run page)."""
    db.execute("ALTER TABLE stages ADD COLUMN url TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN message TEXT NOT NULL DEFAULT ''")


def _fewer_pages_per_webhook(db: sqlite3.Connection) -> None:
    """A webhook's accept wrote 15 pages (60 KB) to the WAL, each fsync'ed before it is answered. The
    ``runs_ref`` index is read by no query since ``runs_environment`` (migration 2) serves the
    coalescing lookup, yet every new and superseded run moved its entries; and ``deliveries``, looked
    up only by key, kept its rows in a rowid table besides the key's index: WITHOUT ROWID, the key's
    index is the table."""
    db.execute("DROP INDEX IF EXISTS runs_ref")
    db.execute(
        """CREATE TABLE deliveries_by_key (
            key TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            received_at REAL NOT NULL
        ) WITHOUT ROWID"""
    )
    db.execute("INSERT INTO deliveries_by_key SELECT key, run_id, received_at FROM deliveries")
    db.execute("DROP TABLE deliveries")
    db.execute("ALTER TABLE deliveries_by_key RENAME TO deliveries")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "failure kinds in their own column", _failure_kinds),
    Migration(2, "schedules and the history of their fires", create_schedule_tables),
    Migration(3, "chat messages of runs and the audit log", _messages_and_audit),
    Migration(4, "durable commit statuses (status_outbox)", _status_outbox),
    Migration(5, "service URLs and commit messages for the pages", _page_details),
    Migration(6, "fewer pages written per webhook (runs_ref dropped, deliveries WITHOUT ROWID)",
              _fewer_pages_per_webhook),
)


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchall()[0][0])


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Brings `db` (in autocommit mode) to the last of `migrations` in one transaction; returns the
    version it had. Refuses a database written by a newer release."""
    db.execute("BEGIN IMMEDIATE")
    try:
        found = version(db)
        latest = migrations[-1].version if migrations else 0
        if found > latest:
            raise RuntimeError(
                f"the store is at schema version {found}, newer than this release knows ({latest}): "
                "run a release at least as new as the one that wrote it"
            )
        if found == 0:
            for statement in BASELINE:
                db.execute(statement)
        for migration in migrations:
            if migration.version > found:
                migration.apply(db)
        db.execute(f"PRAGMA user_version = {latest:d}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return found
