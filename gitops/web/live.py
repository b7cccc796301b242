"""A run as it happens: server-sent events for the run page, and the whole log as a download.

``GET /runs/{id}/events`` streams ``run`` events (state, headline, every stage: the same values the
page was rendered with, :func:`gitops.web.views.run_state`) when they change, and ``logs`` events with
new lines, each carrying the id of its last line so that a reconnecting browser (``Last-Event-ID``)
resumes where it stopped. When the run is final and its last lines are sent, an ``end`` event closes
the stream. The store is read every :data:`POLL_SECONDS`; reads never wait for the writer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gitops.store import Store
from gitops.web import views
from gitops.web.responses import error, service_of

POLL_SECONDS = 0.25
_BATCH = 1000
_KEEPALIVE_POLLS = 60  # a comment line every 15 s keeps proxies from closing an idle stream


def _event(kind: str, data: object, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def follow(
    store: Store,
    run_id: str,
    after: int,
    poll: float = POLL_SECONDS,
    stop: Callable[[], bool] = lambda: False,
) -> AsyncIterator[str]:
    """The events of run `run_id` from log line `after` on, until the run is final or `stop()`."""
    sent_state: dict[str, object] | None = None
    idle = 0
    while True:
        lines = store.logs(run_id, after, _BATCH)
        run = store.get(run_id)
        if run is None:
            return
        if lines:
            after = lines[-1].id
            payload = [{"id": x.id, "stage": x.stage or "service", "line": x.line} for x in lines]
            yield _event("logs", payload, after)
        state = views.run_state(run, store.stages(run_id))
        if state != sent_state:
            sent_state = state
            yield _event("run", state)
        if run.state.is_final and len(lines) < _BATCH and not store.logs(run_id, after, 1):
            yield _event("end", {"state": run.state.value})
            return
        if stop():
            return  # the browser reconnects (Last-Event-ID) once the service is back
        if not lines:
            idle += 1
            if idle % _KEEPALIVE_POLLS == 0:
                yield ": keep-alive\n\n"
            await asyncio.sleep(poll)


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
        follow(store, run_id, int(after), stop=lambda: service.draining),
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
