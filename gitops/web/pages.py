"""The HTML pages: the runs list (filters, paging), a run (DAG, logs, re-run and cancel), the
environments (what is deployed where).

The pages work with JavaScript off: filters are GET forms, re-run and cancel are POST forms. With
JavaScript, ``static/run.js`` follows a running run through :mod:`gitops.web.live`.
"""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gitops.environments import manual_target
from gitops.schedules.model import TRIGGER
from gitops.service import Service
from gitops.status import RunStatus
from gitops.store import RunRecord
from gitops.web import views
from gitops.web.access import csrf_ok, read_form, visitor
from gitops.web.prefix import prefix_of
from gitops.web.responses import service_of
from gitops.web.schedules_view import schedule_of
from gitops.web.templating import render, render_streaming

PAGE_LOG_LINES = 10_000
"""Log lines a run page is rendered with; the rest follow live, and the download has them all."""


def _problem(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "problem.html", {"title": title, "message": message}, status_code=status)


async def runs_list(request: Request) -> Response:
    service = service_of(request)
    store = service.require_store()
    try:
        filters = views.RunFilters.parse(request.query_params)
    except views.FilterError as problem:
        return _problem(request, 400, "Bad filter", str(problem))
    found = store.list_runs(**filters.store_query())
    choices = views.filter_choices(service.settings, store.distinct("environment"), store.distinct("trigger"))
    return render(request, "runs.html", {
        "runs": found[:views.PAGE_SIZE],
        "filters": filters,
        "choices": choices,
        "previous": filters.link(filters.page - 1) if filters.page > 1 else None,
        "next": filters.link(filters.page + 1) if len(found) > views.PAGE_SIZE else None,
    })


async def run_page(request: Request) -> Response:
    service = service_of(request)
    store = service.require_store()
    run = store.get(request.path_params["run_id"])
    if run is None:
        return _problem(request, 404, "No such run", f"There is no run {request.path_params['run_id']!r}.")
    stages = store.stages(run.id)
    stage, search = request.query_params.get("stage", ""), request.query_params.get("q", "")
    repository = service.settings.repository(run.provider, run.repository_name)
    fire = store.schedules.fire_of(run.id) if run.trigger == TRIGGER else None
    return render_streaming(request, "run.html", {
        "fire": fire,
        "run": run,
        "steps": views.stage_views(run, stages),
        "headline": views.headline(run, stages),
        "duration": views.run_state(run, stages)["duration"],
        "commit_url": views.commit_url(repository, run.commit),
        # Read while the page is sent: its top reaches the browser before the log is read.
        "log": views.LogLines(functools.partial(store.logs, run.id), stage, search, PAGE_LOG_LINES),
        "stage_names": ["service", *(name for step in run.steps for name in step)],
        "stage": stage,
        "search": search,
    })


async def _operator_form(request: Request) -> tuple[RunRecord, Service] | Response:
    """The run a re-run or cancel form is about, when the visitor may do it."""
    service = service_of(request)
    run = service.require_store().get(request.path_params["run_id"])
    if run is None:
        return _problem(request, 404, "No such run", f"There is no run {request.path_params['run_id']!r}.")
    form = await read_form(request)
    if not visitor(request).operator:
        return _problem(request, 403, "Not allowed", "Re-run and cancel need the API token: log in with it.")
    if isinstance(form, Response):
        return form
    if not csrf_ok(request, form):
        return _problem(request, 403, "Form expired", "Reload the run page and try again.")
    return run, service


async def rerun(request: Request) -> Response:
    checked = await _operator_form(request)
    if isinstance(checked, Response):
        return checked
    run, service = checked
    repository = service.settings.repository(run.provider, run.repository_name)
    if repository is None:
        return _problem(request, 409, "Cannot re-run", f"{run.repository_name} is no longer configured.")
    ref, target = manual_target(repository, run.ref)
    if isinstance(target, str):
        return _problem(request, 409, "Cannot re-run", target)
    decision = await service.trigger(repository, ref, run.commit, target, None)
    if decision.run is None:
        return _problem(request, 409, "Cannot re-run", decision.reason)
    return RedirectResponse(f"{prefix_of(request)}/runs/{decision.run.id}", status_code=303)


async def cancel(request: Request) -> Response:
    checked = await _operator_form(request)
    if isinstance(checked, Response):
        return checked
    run, service = checked
    service.cancel(run.id)
    return RedirectResponse(f"{prefix_of(request)}/runs/{run.id}", status_code=303)


async def environments(request: Request) -> Response:
    store = service_of(request).require_store()
    rows = []
    for latest in sorted(store.latest_runs(), key=lambda run: (run.environment, run.repository)):
        deployed = store.list_runs(environment=latest.environment, state=RunStatus.SUCCEEDED, limit=1)
        rows.append((latest, views.deployed_run(deployed)))
    return render(request, "environments.html", {"rows": rows})


async def environment(request: Request) -> Response:
    service = service_of(request)
    store = service.require_store()
    name = request.path_params["name"]
    runs = store.list_runs(environment=name, limit=10)
    if not runs:
        return _problem(request, 404, "No such environment", f"No run has deployed to {name!r}.")
    deployed = views.deployed_run(store.list_runs(environment=name, state=RunStatus.SUCCEEDED, limit=1))
    services: list[views.StageView] = []
    if deployed is not None:
        stages = store.stages(deployed.id)
        services = [v for step in views.stage_views(deployed, stages) for v in step if v.url]
    page = views.EnvironmentView(name, runs[0], deployed, services, schedule_of(service, name), runs)
    repository = service.settings.repository(runs[0].provider, runs[0].repository_name)
    commit_url = views.commit_url(repository, deployed.commit) if deployed else None
    return render(request, "environment.html", {"env": page, "commit_url": commit_url})


routes: list[BaseRoute] = [
    Route("/", runs_list, name="runs"),
    Route("/runs/{run_id}", run_page, name="run"),
    Route("/runs/{run_id}/rerun", rerun, methods=["POST"]),
    Route("/runs/{run_id}/cancel", cancel, methods=["POST"]),
    Route("/environments", environments, name="environments"),
    Route("/environments/{name}", environment, name="environment"),
]
