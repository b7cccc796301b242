"""The service's store: runs, their stages and logs, and delivery ids for idempotency.

The only package that uses sqlite3, in WAL mode: an accepted delivery is on disk (the WAL fsync'ed)
before the webhook is answered. One concept per module:

* :mod:`~gitops.store.records`: the immutable records it returns;
* :mod:`~gitops.store.schema`: the schema and its numbered migrations (``PRAGMA user_version``);
* :mod:`~gitops.store.writer`: the write connection, group commit on the event loop, the fsync thread;
* :mod:`~gitops.store.reads`: the reads of runs, stages and logs (a mixin of :class:`Store`);
* :mod:`~gitops.store.database`: :class:`Store`, its connections and writes;
* :mod:`~gitops.store.changes`: the change feed its writes tell once committed (live pages, Slack).
"""

from gitops.store.database import Store
from gitops.store.records import (
    Accepted,
    AuditRecord,
    LogRecord,
    MessageRecord,
    NewRun,
    Recovered,
    RunRecord,
    StageRecord,
)

__all__ = [
    "Accepted", "AuditRecord", "LogRecord", "MessageRecord", "NewRun", "Recovered", "RunRecord",
    "StageRecord", "Store",
]  # fmt: skip
