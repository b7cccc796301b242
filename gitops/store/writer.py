"""The store's write side: one connection, transactions on it, and the group-commit writer thread.

:meth:`Writer.submit` hands a write to a thread that commits whatever has queued up in one transaction
(group commit: one fsync for a burst of webhooks), each write in its own savepoint so that one failing
write fails alone. Checkpoints (copying the WAL into the database, with an fsync of it) happen in a
thread of their own, so a commit rarely waits for one.

SQLite starts the WAL over from its beginning only when a write transaction begins with every frame
already copied into the database. Under steady load the background checkpoint never sees that (a
commit always lands while it copies), so the WAL grew without end: 113 MB of WAL for a 3.3 MB database
after a minute of webhooks, and its index (the ``-shm`` file, mapped into the process) grew the
resident memory with it. So every :data:`_RESTART_BATCHES` batches the writer thread checkpoints
itself, between two of its transactions, where no commit can land: that checkpoint completes (it
copies only what the background one has not) and the next transaction starts the WAL over.
``journal_size_limit`` then gives the file back to the disk.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_BATCH_LIMIT = 512
_CHECKPOINT_SECONDS = 1.0
_RESTART_BATCHES = 64
WAL_SIZE_LIMIT = 4 * 1024 * 1024
"""What the WAL file is cut back to when it starts over (``PRAGMA journal_size_limit``)."""

_Write = tuple[Callable[..., Any], tuple[Any, ...], concurrent.futures.Future[Any]]
_Outcome = tuple[concurrent.futures.Future[Any], Any, BaseException | None]


class Writer:
    def __init__(
        self, db: sqlite3.Connection, path: Path, on_commit: Callable[[float], None] | None = None
    ) -> None:
        """`on_commit` is told the seconds each batch took to commit (the service's metrics)."""
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        self.db = db
        self._on_commit = on_commit
        self.lock = threading.RLock()
        self._batching = False
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_batches, name="store-writer", daemon=True)
        self._thread.start()
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint, args=(path,), name="store-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def submit(self, method: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((method, args, future))
        return future

    def close(self) -> None:
        """Finishes the queued writes, stops both threads and closes the connection."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._closing.set()
        self._checkpointer.join(timeout=30)
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction of its own, or a savepoint when inside the writer thread's batch."""
        with self.lock:
            if self._batching:
                self.db.execute("SAVEPOINT write")
                try:
                    yield self.db
                except BaseException:
                    self.db.execute("ROLLBACK TO write")
                    self.db.execute("RELEASE write")
                    raise
                self.db.execute("RELEASE write")
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _checkpoint(self, path: Path) -> None:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            while not self._closing.wait(_CHECKPOINT_SECONDS):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def _let_the_wal_start_over(self) -> None:
        with self.lock, contextlib.suppress(sqlite3.Error):
            # PASSIVE: never waits; when the background checkpoint holds the lock, the next turn will do.
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _next_batch(self) -> list[_Write] | None:
        item = self._queue.get()
        if item is None:
            return None
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
        return batch

    def _commit(self, batch: list[_Write]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self._batching = True
                for method, args, future in batch:
                    try:
                        outcomes.append((future, method(*args), None))
                    except Exception as problem:
                        outcomes.append((future, None, problem))
                self._batching = False
                self.db.execute("COMMIT")
            except Exception as failure:  # the commit itself failed: every write in it failed
                self._batching = False
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                outcomes = [(future, None, failure) for _, _, future in batch]
        return outcomes

    def _write_batches(self) -> None:
        batches = 0
        while (batch := self._next_batch()) is not None:
            started = time.perf_counter()
            outcomes = self._commit(batch)
            if self._on_commit is not None:
                self._on_commit(time.perf_counter() - started)
            for future, result, exception in outcomes:
                if future.cancelled():  # its waiter was cancelled (a shutdown); the write is committed
                    continue
                # ... and may be cancelled between that check and this answer: setting the outcome of
                # a cancelled future raises, which would end this thread.
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    if exception is not None:
                        future.set_exception(exception)
                    else:
                        future.set_result(result)
            batches += 1
            if batches % _RESTART_BATCHES == 0:  # after answering: the batch's writers do not wait for it
                self._let_the_wal_start_over()
