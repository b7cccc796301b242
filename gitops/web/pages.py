"""The HTML pages: the recent runs, and one page per run (rendered by :mod:`gitops.web.html`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from gitops.web import html
from gitops.web.responses import service_of


async def index(request: Request) -> Response:
    return HTMLResponse(html.runs_page(service_of(request).require_store().list_runs(limit=100)))


async def run_page(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    store = service_of(request).require_store()
    run = store.get(run_id)
    if run is None:
        return HTMLResponse("<h1>No such run</h1>", status_code=404)
    return HTMLResponse(html.run_page(run, store.stages(run_id), store.logs(run_id)))


routes: list[BaseRoute] = [Route("/", index), Route("/runs/{run_id}", run_page)]
