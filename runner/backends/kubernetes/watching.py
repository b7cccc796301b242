"""Watches and followed logs, run in daemon threads and bridged onto the event loop through one queue.

The ``kubernetes`` client is blocking, so each watch (list, then watch from that resourceVersion,
re-watch when the server ends it, list again after 410 Gone) and each followed log runs in its own
thread and hands what it sees to an :class:`asyncio.Queue` with ``call_soon_threadsafe``. The event loop
is never blocked; nothing is polled at an interval. :meth:`Watcher.close` stops every thread: it shuts
their sockets down so that blocked reads return at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from runner.backends.kubernetes.api import KubeApi, Stream
from runner.backends.kubernetes.errors import Gone, KubeError, TemporaryError
from runner.backends.kubernetes.observations import Broken, Item, LogEnd, LogText, Update
from runner.backends.kubernetes.rest import parse_event

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class Watcher:
    """Delivers the updates of several watches and logs, in arrival order, to one async consumer."""

    def __init__(self, api: KubeApi, *, watch_timeout_seconds: int = 60) -> None:
        self._api = api
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._stopped = threading.Event()
        self._streams: set[Stream] = set()
        self._lock = threading.Lock()
        self._watch_timeout = watch_timeout_seconds
        self._logs: set[str] = set()

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def watch(
        self, kind: str, namespace: str, *, labels: Mapping[str, str] | None = None, fields: str | None = None
    ) -> None:
        self._start(self._watch_loop, kind, namespace, dict(labels or {}), fields)

    def follow_log(self, namespace: str, pod: str, key: str) -> bool:
        """Streams the pod's log as LogText(key, ...) then LogEnd(key); False if already following."""
        if key in self._logs:
            return False
        self._logs.add(key)
        self._start(self._log_loop, namespace, pod, key)
        return True

    async def next(self, timeout: float | None = None) -> Item | None:
        """The next item, or None after `timeout` seconds without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            streams = list(self._streams)
            self._streams.clear()
        for stream in streams:
            stream.close()

    # ---- threads ---------------------------------------------------------------------------

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=self._guard, args=(target, *args), daemon=True)
        thread.start()

    def _guard(self, target: Any, *args: Any) -> None:
        try:
            target(*args)
        except KubeError as error:
            self._emit(Broken(error))
        except Exception as error:  # a thread must never die silently: tell the consumer
            log.exception("a watch thread failed")
            self._emit(Broken(KubeError(f"watching the cluster failed unexpectedly: {error!r}")))

    def _emit(self, item: Item) -> None:
        if self._stopped.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _open(self, stream: Stream) -> bool:
        with self._lock:
            if self._stopped.is_set():
                stream.close()
                return False
            self._streams.add(stream)
            return True

    def _release(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)
        stream.close()

    def _watch_loop(self, kind: str, namespace: str, labels: dict[str, str], fields: str | None) -> None:
        version: str | None = None
        broken_streams = 0
        while not self._stopped.is_set():
            if version is None:
                listing = self._api.list_objects(kind, namespace, labels=labels or None, fields=fields)
                version = str(listing.get("metadata", {}).get("resourceVersion", ""))
                for obj in listing.get("items") or []:
                    self._emit(Update(kind, "ADDED", obj))
            stream = self._api.watch(
                kind,
                namespace,
                labels=labels or None,
                fields=fields,
                resource_version=version,
                timeout_seconds=self._watch_timeout,
            )
            if not self._open(stream):
                return
            try:
                for line in stream.lines():
                    if not line.strip():
                        continue
                    event = parse_event(line)
                    obj = event.get("object") or {}
                    version = str(obj.get("metadata", {}).get("resourceVersion", version))
                    if event.get("type") != "BOOKMARK":
                        self._emit(Update(kind, str(event.get("type")), obj))
                broken_streams = 0
            except Gone:
                version = None  # too old: list again
            except TemporaryError:
                broken_streams += 1
                if broken_streams > 5:
                    raise
                self._stopped.wait(min(0.2 * 2**broken_streams, 5.0))
            finally:
                self._release(stream)

    def _log_loop(self, namespace: str, pod: str, key: str) -> None:
        try:
            stream = self._api.follow_log(namespace, pod)
        except KubeError as error:
            self._emit(LogText(key, f"[bodywork] cannot read the log of pod {pod}: {error}"))
            self._emit(LogEnd(key))
            return
        if not self._open(stream):
            return
        try:
            for line in stream.lines():
                self._emit(LogText(key, line))
        except KubeError as error:
            self._emit(LogText(key, f"[bodywork] the log of pod {pod} broke off: {error}"))
        finally:
            self._release(stream)
            self._emit(LogEnd(key))
