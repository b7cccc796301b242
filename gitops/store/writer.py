"""The store's write side: one connection, transactions on it, group commit on the event loop, and
the thread that makes commits durable.

:meth:`Writer.submit` queues a write; once per turn of the event loop, everything queued is committed in
one transaction, each write in its own savepoint so that one failing write fails alone. The SQL runs on
the event loop's own thread, on purpose: a writer thread took the interpreter lock back from the loop at
every SQLite call of a write (about ten for a webhook's accept), and under load each hand-off waited for
the busy loop, so a webhook's answer waited 4-5 ms at p99 for a write that takes 0.3 ms.

What must not run on the loop is the fsync: it takes 0.2 ms, but 10-20 ms now and then (when the disk
is busy with a checkpoint), and the loop would stall for it. So the connection commits with
``synchronous=NORMAL`` (into the WAL, in the kernel's page cache: that survives kill -9) and, with
`fsync_commits`, a :class:`~gitops.store.syncer.Syncer` fsyncs the WAL file (in a helper process for
the loop's commits) and only then resolves the batch's futures:
a commit is answered once it is on disk, as with ``synchronous=FULL``, and one fsync covers every batch
committed before it began (group commit). Without a loop (the CLI, a worker thread) a write is
committed and synced at once, in the caller's thread, under the same lock.

A coroutine awaits a write with :meth:`Writer.write`: its future belongs to the loop and is answered
there, where a concurrent future awaited through ``asyncio.wrap_future`` costs a wake-up of the loop
through its self-pipe of its own.

A write that nothing awaits (the commit statuses' journal) is submitted `lazy`: it waits up to
:data:`_LAZY_SECONDS` for a batch that something else starts, and joins it. Every webhook journals its
run's statuses just after its accept is answered; committed at once, that was a second commit and a
second fsync per webhook, on the loop, half of all the commits under load.

Checkpoints (copying the WAL into the database, with an fsync of it) happen in a thread of their own,
when the WAL holds :data:`_RESTART_BYTES` (a webhook's accept and its status add about 17 KB: a
dozen 1 KB pages of rows and indexes), and every :data:`_IDLE_CHECKPOINT_SECONDS` otherwise. Not
every second, as before:
a checkpoint's fsync of the database delays the commits' own fsyncs by 10-20 ms, which at 500
webhooks/s was the p99 of their answers. The thread reads how full the WAL is from the WAL-index
header in the ``-shm`` file (https://sqlite.org/walformat.html), which costs no lock.

SQLite starts the WAL over from its beginning only when a write transaction begins with every frame
already copied into the database; under steady load a checkpoint never sees that (a commit always lands
while it copies), so the WAL grew without end: 113 MB of WAL for a 3.3 MB database after a minute of
webhooks, and its index (the ``-shm`` file, mapped into the process) grew the resident memory with it.
So after copying, the thread checkpoints once more holding the write lock, where no commit can land:
that one completes (it copies only what landed meanwhile) and the next transaction starts the WAL
over. The event loop never waits for that lock: its flush tries again a moment later.
``journal_size_limit`` then cuts the file back to :data:`WAL_SIZE_LIMIT`; below it the WAL is
overwritten in place, so a commit does not change the file's size and its sync writes no metadata.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from gitops.store.syncer import AnyFuture, Outcome, Syncer, answer, failed_if

T = TypeVar("T")
log = logging.getLogger(__name__)
_BATCH_LIMIT = 256
_LOCKED_RETRY_SECONDS = 0.0005
_LAZY_SECONDS = 0.005
"""How long a lazy write waits for a batch to join before it is committed in one of its own."""
WAL_SIZE_LIMIT = 32 * 1024 * 1024
"""What the WAL file is cut back to when it starts over (``PRAGMA journal_size_limit``)."""
_RESTART_BYTES = WAL_SIZE_LIMIT // 2
_FILL_CHECK_SECONDS = 0.1
_IDLE_CHECKPOINT_SECONDS = 10.0
_FRAME_HEADER_BYTES = 24
_MAX_FRAME = struct.Struct("=I")  # mxFrame: the WAL-index header's u32 at offset 16, in native order
_MAX_FRAME_OFFSET = 16

_Write = tuple[Callable[..., Any], tuple[Any, ...], AnyFuture]


class Writer:
    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        on_commit: Callable[[float], None] | None = None,
        fsync_commits: bool = True,
        fsync_helper: bool = True,
    ) -> None:
        """`db` is in WAL mode with ``synchronous=NORMAL``; `on_commit` is told the seconds each batch
        took to commit (the service's metrics)."""
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        self.db = db
        wal = path.with_name(path.name + "-wal")
        self._syncer = Syncer(wal, helper=fsync_helper) if fsync_commits else None
        self._on_commit = on_commit
        self.lock = threading.RLock()
        self._batching = False
        self._queued: list[_Write] = []
        self._queued_lock = threading.Lock()  # submit may come from more than one event loop's thread
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # where a flush is due, if anywhere
        self._lazy_flush: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
        self._after: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        """What to call once the open transaction is committed (:meth:`after_commit`)."""
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint, args=(path,), name="store-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def submit(
        self, method: Callable[..., T], *args: Any, lazy: bool = False
    ) -> concurrent.futures.Future[T]:
        """Queues the write `method(*args)`; the future is resolved once its transaction is committed
        (and, with `fsync_commits`, on disk). Writes are committed in the order they were submitted.
        A `lazy` write on an event loop waits up to :data:`_LAZY_SECONDS` for another to batch with."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to batch on: commit now, with whatever a loop left queued
            with self.lock:
                outcomes = self._commit_batch([*self._take_queued(), (method, args, future)])
                self._answer_durable(outcomes, wait=True)
            return future
        self._queue(loop, (method, args, future), lazy)
        return future

    async def write(self, method: Callable[..., T], *args: Any) -> T:
        """On an event loop: :meth:`submit`, awaited, with a future of the loop's own (see the module's
        docstring)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue(loop, (method, args, future))
        return await future

    def _queue(self, loop: asyncio.AbstractEventLoop, write: _Write, lazy: bool = False) -> None:
        with self._queued_lock:
            self._queued.append(write)
            if self._flush_loop is loop:
                return
            if lazy:
                if self._lazy_flush is None or self._lazy_flush[0] is not loop:
                    self._lazy_flush = (loop, loop.call_later(_LAZY_SECONDS, self._flush, loop))
                return
            # A flush may still be due on a loop that has since stopped (asyncio.run ended, a test's
            # loop): this loop flushes instead. Two flushes of one queue are harmless.
            self._flush_loop = loop
        loop.call_soon(self._flush, loop)

    def close(self) -> None:
        """Commits what is queued, stops both threads and closes the connection."""
        self._closing.set()
        self._checkpointer.join(timeout=30)
        with self.lock:
            outcomes = self._commit_batch(batch) if (batch := self._take_queued()) else []
            self._answer_durable(outcomes, wait=True)
            if self._syncer is not None:
                self._syncer.close()  # after it has answered what it was given
            self.db.close()

    def after_commit(self, callback: Callable[..., None], *args: Any) -> None:
        """Inside :meth:`transaction`: `callback(*args)` is called once it is committed (with the batch
        it is part of), in the thread that committed it, before the fsync (readers see the write
        then); never if it is rolled back. For the store's change feed: it must be quick."""
        self._after.append((callback, args))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction of its own, or a savepoint when inside a batch of queued writes or another
        transaction of this thread (a write made of writes, such as the schedules' ``record_fires``)."""
        with self.lock:
            mark = len(self._after)
            if self._batching or self.db.in_transaction:  # the lock is this thread's: so is the transaction
                self.db.execute("SAVEPOINT write")
                try:
                    yield self.db
                except BaseException:
                    self.db.execute("ROLLBACK TO write")
                    self.db.execute("RELEASE write")
                    del self._after[mark:]
                    raise
                self.db.execute("RELEASE write")
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # a failed COMMIT may leave it open: never nest into it
                    self.db.execute("ROLLBACK")
                del self._after[mark:]
                raise
            self._committed()
            if self._syncer is not None and (problem := self._syncer.sync()) is not None:
                raise problem

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop: commits what is queued, never waiting for a worker thread's transaction."""
        if not self.lock.acquire(blocking=False):
            loop.call_later(_LOCKED_RETRY_SECONDS, self._flush, loop)
            return
        try:
            with self._queued_lock:
                batch, self._queued = self._queued[:_BATCH_LIMIT], self._queued[_BATCH_LIMIT:]
                more = bool(self._queued)
                if not more and self._flush_loop is loop:
                    self._flush_loop = None
                if not more and self._lazy_flush is not None and self._lazy_flush[0] is loop:
                    self._lazy_flush[1].cancel()  # the lazy writes are in this batch (or it is their timer)
                    self._lazy_flush = None
            outcomes = self._commit_batch(batch) if batch else []
        finally:
            self.lock.release()
        if more:  # the rest after the loop's other work: a long queue must not stall it
            loop.call_soon(self._flush, loop)
        self._answer_durable(outcomes, wait=False)

    def _take_queued(self) -> list[_Write]:
        with self._queued_lock:
            queued, self._queued = self._queued, []
            return queued

    def _answer_durable(self, outcomes: list[Outcome], wait: bool) -> None:
        """Resolves the futures once their commit is on disk: now when `wait` (in this thread), else
        when the syncer (its helper process or its thread) has synced it."""
        if self._syncer is None or not outcomes:
            answer(outcomes)
        elif wait:
            answer(failed_if(self._syncer.sync(), outcomes))
        else:
            self._syncer.answer_after_sync(outcomes)

    def _commit_batch(self, batch: list[_Write]) -> list[Outcome]:
        started = time.perf_counter()
        outcomes: list[Outcome] = []
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
            self._after.clear()
            outcomes = [(future, None, failure) for _, _, future in batch]
        self._committed()
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started)
        return outcomes

    def _committed(self) -> None:
        after, self._after = self._after, []
        for callback, args in after:
            try:
                callback(*args)
            except Exception:  # the write is committed whatever a listener does
                log.exception("after a commit, %r failed", callback)

    def _checkpoint(self, path: Path) -> None:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        index = path.with_name(path.name + "-shm")
        try:
            frame_bytes = int(db.execute("PRAGMA page_size").fetchone()[0]) + _FRAME_HEADER_BYTES
            last = time.monotonic()
            while not self._closing.wait(_FILL_CHECK_SECONDS):
                frames = _wal_frames(index)
                full = frames * frame_bytes >= _RESTART_BYTES
                if not full and (not frames or time.monotonic() - last < _IDLE_CHECKPOINT_SECONDS):
                    continue
                last = time.monotonic()
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    if full:
                        with self.lock:  # see the module's docstring: no commit lands, so it completes
                            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()


def _wal_frames(index: Path) -> int:
    """How many frames the WAL holds, from its index's header (0 when there is none yet)."""
    try:
        with index.open("rb") as file:
            header = file.read(_MAX_FRAME_OFFSET + _MAX_FRAME.size)
    except OSError:
        return 0
    if len(header) < _MAX_FRAME_OFFSET + _MAX_FRAME.size:
        return 0
    return int(_MAX_FRAME.unpack_from(header, _MAX_FRAME_OFFSET)[0])
