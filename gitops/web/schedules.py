"""The schedules' API: every schedule with its next and last fire, a schedule's history, and running
one now (needs the API token, as every other write does)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gitops.schedules.policy import Outcome
from gitops.schedules.service import ScheduleService
from gitops.web.api import denied
from gitops.web.responses import error, service_of


def _schedules(request: Request) -> ScheduleService:
    schedules = service_of(request).schedules
    if schedules is None:
        raise RuntimeError("the service is not started")
    return schedules


async def list_schedules(request: Request) -> Response:
    schedules = _schedules(request)
    return JSONResponse({"schedules": schedules.listing(), "firing": schedules.firing})


async def get_schedule(request: Request) -> Response:
    schedule_id = request.path_params["schedule_id"]
    found = _schedules(request).get(schedule_id)
    if found is None:
        return error(404, f"no schedule {schedule_id!r}; GET /api/schedules lists them")
    return JSONResponse(found)


async def schedule_history(request: Request) -> Response:
    schedule_id = request.path_params["schedule_id"]
    limit = request.query_params.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= 500:
        return error(400, f"limit must be an integer from 1 to 500, not {limit!r}")
    schedules = _schedules(request)
    entries = schedules.history(schedule_id, int(limit))
    if not entries and schedules.get(schedule_id) is None:
        return error(404, f"no schedule {schedule_id!r} and no history of one")
    return JSONResponse({"schedule": schedule_id, "history": [entry.to_json() for entry in entries]})


async def run_schedule(request: Request) -> Response:
    refused = denied(request)
    if refused is not None:
        return refused
    schedule_id = request.path_params["schedule_id"]
    entry = await _schedules(request).run_now(schedule_id)
    if entry is None:
        return error(404, f"no schedule {schedule_id!r}; GET /api/schedules lists them")
    status = 202 if entry.outcome is Outcome.QUEUED else 409
    return JSONResponse(entry.to_json(), status_code=status)


routes: list[BaseRoute] = [
    Route("/api/schedules", list_schedules, methods=["GET"]),
    Route("/api/schedules/{schedule_id}", get_schedule, methods=["GET"]),
    Route("/api/schedules/{schedule_id}/history", schedule_history, methods=["GET"]),
    Route("/api/schedules/{schedule_id}/run", run_schedule, methods=["POST"]),
]
