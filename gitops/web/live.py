"""A run as it happens: server-sent events for the run page, and the whole log as a download.

``GET /runs/{id}/events`` streams ``run`` events (state, headline, every stage: the same values the
page was rendered with, :func:`gitops.web.views.run_state`) when they change, and ``logs`` events with
new lines (at most :data:`_BATCH` each), each carrying the id of its last line so that a reconnecting
browser (``Last-Event-ID``) resumes where it stopped. When the run is final and its last lines are
sent, an ``end`` event closes the stream.

The stream reads the store when the run changed, not on a timer: it follows the run in the store's
change feed (:mod:`gitops.store.changes`), which this process's writes tell once committed, and reads
only what changed (new lines; the run and its stages). With nothing changing an open stream costs
nothing but a read every :data:`FALLBACK_SECONDS`, for a change the feed does not hear of (written by
another process), and a comment every :data:`KEEPALIVE_SECONDS`. Reads never wait for the writer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gitops.store import RunRecord, Store
from gitops.store.changes import Change
from gitops.web import views
from gitops.web.responses import error, service_of

FALLBACK_SECONDS = 5.0
"""How long an open stream waits for a change before it reads the store anyway."""
KEEPALIVE_SECONDS = 15.0
"""A comment line after this long without an event keeps proxies from closing an idle stream."""
_BATCH = 1000
_STATE = Change.RUN | Change.STAGES


def _event(kind: str, data: object, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def follow(
    store: Store,
    run_id: str,
    after: int,
    fallback: float = FALLBACK_SECONDS,
    stop: Callable[[], bool] = lambda: False,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncGenerator[str, None]:
    """The events of run `run_id` from log line `after` on, until the run is final or `stop()`.

    Reads the store at once, then each time the store's change feed says the run changed, and after
    `fallback` seconds without a change."""
    loop = asyncio.get_running_loop()
    with store.changes.follow(run_id) as changes:
        reader = _Reader(store, run_id, after)
        what = Change.ALL
        quiet_until = loop.time() + keepalive
        while True:
            for text in reader.read(what):
                yield text
                quiet_until = loop.time() + keepalive
            if reader.ended:
                return
            if reader.more:  # a full batch: the next one at once
                what = Change.LOGS
                continue
            read_at = loop.time() + fallback
            while not (stopped := stop() or changes.feed.stopped):
                what = await changes.wait(min(read_at, quiet_until) - loop.time())
                if what:
                    break
                if loop.time() >= read_at:
                    what = Change.ALL
                    break
                if loop.time() >= quiet_until:
                    quiet_until = loop.time() + keepalive
                    yield ": keep-alive\n\n"
            if stopped:
                return  # the browser reconnects (Last-Event-ID) once the service is back


class _Reader:
    """What one stream has sent of a run, and the events that bring it up to date."""

    def __init__(self, store: Store, run_id: str, after: int) -> None:
        self.store = store
        self.run_id = run_id
        self.after = after
        self.run: RunRecord | None = None
        self.state: dict[str, object] | None = None
        self.sent_state: dict[str, object] | None = None
        self.more = False
        """The last read was a full batch of lines: more may be waiting."""
        self.ended = False
        """The run is gone, or final with its last lines sent (then the last event is ``end``)."""

    def read(self, what: Change) -> list[str]:
        """The events for what changed: the run and its stages (`what` has RUN or STAGES), its new
        lines (LOGS, or whenever the run is final: the stream ends after them)."""
        store, run_id = self.store, self.run_id
        if self.run is None or what & _STATE:
            self.run = store.get(run_id)
            if self.run is None:
                self.ended = True
                return []
            self.state = views.run_state(self.run, store.stages(run_id))
        final = self.run.state.is_final
        lines = store.logs(run_id, self.after, _BATCH) if what & Change.LOGS or final else []
        found = []
        if lines:
            self.after = lines[-1].id
            payload = [{"id": x.id, "stage": x.stage or "service", "line": x.line} for x in lines]
            found.append(_event("logs", payload, self.after))
        if self.state != self.sent_state:
            self.sent_state = self.state
            found.append(_event("run", self.state))
        self.more = len(lines) == _BATCH
        if final and not self.more:
            found.append(_event("end", {"state": self.run.state.value}))
            self.ended = True
        return found


async def events(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    store = service_of(request).require_store()
    if store.get(run_id) is None:
        return error(404, f"no run {run_id!r}")
    after = request.headers.get("last-event-id") or request.query_params.get("after", "0")
    if not after.isdigit():
        return error(400, f"after must be a log line id, not {after!r}")
    service = service_of(request)
    return StreamingResponse(
        follow(store, run_id, int(after), fallback=FALLBACK_SECONDS, stop=lambda: service.draining),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _log_text(store: Store, run_id: str) -> AsyncIterator[str]:
    after = 0
    while lines := store.logs(run_id, after, 5000):
        after = lines[-1].id
        yield "".join(f"[{x.stage or 'service'}] {x.line}\n" for x in lines)
        await asyncio.sleep(0)


async def download(request: Request) -> Response:
    """Every log line of the run, as text (``[stage] line``), as a file to save."""
    run_id = request.path_params["run_id"]
    store = service_of(request).require_store()
    if store.get(run_id) is None:
        return error(404, f"no run {run_id!r}")
    return StreamingResponse(
        _log_text(store, run_id),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="bodywork-run-{run_id}.log"'},
    )


routes: list[BaseRoute] = [
    Route("/runs/{run_id}/events", events),
    Route("/runs/{run_id}/log.txt", download, name="log_download"),
]
