"""Commit statuses waiting for delivery, in the store: the publisher's :class:`StatusJournal`.

A status is recorded when it is published (replacing the older one of its commit and context) and
settled when it is delivered, rejected or expired. At start-up the publisher reads what is still
pending: a status that was waiting for a rate limit or an outage when the process died is sent after
the restart. Writes are queued for the store's group commit, so recording never waits for the disk;
the token is never stored, `token_for` supplies it from the settings.

Statuses recorded before the next group commit are written together, as one write, and of several for
the same commit and context only the newest: a burst of pushes costs the store one write, not one
per status, and webhooks waiting for their own commit wait less.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable

from gitops.statuses.model import CommitStatus
from gitops.store.database import Store
from gitops.store.records import RUN_COLUMNS, RunRecord, run_from_row

TokenFor = Callable[[str, str, str], str | None]
"""(provider, api_base, repository) -> the API token of that repository, None when unconfigured."""

_Unwritten = dict[tuple[str, str, str, str, str], tuple[CommitStatus, float]]
_KEY = "provider = ? AND api_base = ? AND repository = ? AND sha = ? AND context = ?"
_COLUMNS = "provider, api_base, repository, sha, context, ref, state, description, target_url"


class StatusOutbox:
    def __init__(self, store: Store, token_for: TokenFor) -> None:
        self.store = store
        self.token_for = token_for
        self._lock = threading.Lock()
        self._unwritten: _Unwritten = {}
        self._write_queued = False

    # -- StatusJournal ------------------------------------------------------------------------

    def record(self, status: CommitStatus) -> None:
        with self._lock:
            self._unwritten[_key(status)] = (status, time.time())
            first, self._write_queued = not self._write_queued, True
        if first:  # later ones join this write until the group commit takes it
            taken: _Unwritten = {}
            write = self.store.submit(self._record_unwritten, taken, lazy=True)
            write.add_done_callback(lambda done: self._keep_if_failed(done, taken))

    def settle(self, status: CommitStatus, outcome: str, reason: str = "") -> None:
        self.store.submit(self._settle, status, outcome, reason, time.time(), lazy=True)

    def pending(self) -> list[CommitStatus]:
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM status_outbox WHERE outcome = 'pending' ORDER BY queued_at", ()
        )
        found = []
        for provider, api_base, repository, sha, context, ref, state, description, target_url in rows:
            token = self.token_for(provider, api_base, repository)
            if token is None:  # the repository is no longer configured (or has no token now)
                continue
            found.append(CommitStatus(
                provider=provider, api_base=api_base, repository=repository, token=token, sha=sha,
                ref=ref, context=context, state=state, description=description, target_url=target_url,
            ))
        return found

    # -- what else the service asks -----------------------------------------------------------

    def state_of(self, status: CommitStatus) -> str | None:
        """The state last recorded for `status`'s commit and context, None when none was."""
        rows = self.store.query(f"SELECT state FROM status_outbox WHERE {_KEY}", _key(status))
        return str(rows[0][0]) if rows else None

    def finished_since(self, since: float, limit: int = 1000) -> list[RunRecord]:
        """Runs that reached their final state after `since` (epoch seconds), newest first: those
        whose final status may not have been journaled before a crash."""
        rows = self.store.query(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE finished_at > ? ORDER BY finished_at DESC LIMIT ?",
            (since, limit),
        )
        return [run_from_row(row) for row in rows]

    def prune(self, older_than: float) -> None:
        """Forgets settled statuses settled before `older_than` (epoch seconds)."""
        self.store.submit(self._prune, older_than, lazy=True)

    # -- writes, in the store's group commit ---------------------------------------------------

    def _record_unwritten(self, taken: _Unwritten) -> None:
        with self._lock:
            taken.update(self._unwritten)
            self._unwritten, self._write_queued = {}, False
        # A settle is submitted after the record of its status, so it is written after this.
        with self.store.transaction() as db:
            db.executemany(
                f"INSERT INTO status_outbox ({_COLUMNS}, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (provider, api_base, repository, sha, context) DO UPDATE SET "
                "ref = excluded.ref, state = excluded.state, description = excluded.description, "
                "target_url = excluded.target_url, queued_at = excluded.queued_at, "
                "outcome = 'pending', settled_at = NULL, reason = ''",
                [
                    (*key, status.ref, status.state.value, status.description, status.target_url, at)
                    for key, (status, at) in taken.items()
                ],
            )

    def _keep_if_failed(self, write: concurrent.futures.Future[None], taken: _Unwritten) -> None:
        """A write that failed (its statement, its commit or its fsync) leaves its statuses for the
        next status's write, unless a newer one of the same commit and context came meanwhile: the
        publisher still holds them, but only the store survives a restart."""
        if write.cancelled() or write.exception() is None:
            return
        with self._lock:
            self._unwritten = {**taken, **self._unwritten}

    def _settle(self, status: CommitStatus, outcome: str, reason: str, at: float) -> None:
        # Only the row that still holds this status: a newer one recorded since stays pending.
        with self.store.transaction() as db:
            db.execute(
                f"UPDATE status_outbox SET outcome = ?, settled_at = ?, reason = ? WHERE {_KEY} "
                "AND state = ? AND description = ? AND target_url = ? AND outcome = 'pending'",
                (outcome, at, reason, *_key(status), status.state.value, status.description,
                 status.target_url),
            )

    def _prune(self, older_than: float) -> None:
        with self.store.transaction() as db:
            db.execute(
                "DELETE FROM status_outbox WHERE outcome != 'pending' AND settled_at < ?", (older_than,)
            )


def _key(status: CommitStatus) -> tuple[str, str, str, str, str]:
    return (status.provider, status.api_base.rstrip("/"), status.repository, status.sha, status.context)
