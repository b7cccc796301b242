"""The JSON API: health, the runs and their logs; triggering and cancelling runs, and reading the audit
log, need the API token."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gitops.environments import manual_target
from gitops.refs import branch_problem, ref_problem, sha_problem
from gitops.service import Service
from gitops.status import RunStatus
from gitops.web.bodies import BodyRefused
from gitops.web.responses import error, read_body, refused, service_of
from gitops.web.webhooks import decision_response
from gitops.webhooks import MAX_HEADER_ID_LENGTH, MalformedWebhook, parse_json

_MAX_TRIGGER_BODY = 64 * 1024
_DECIMAL = re.compile(r"[0-9]{1,18}")  # ASCII digits only ("²".isdigit() is True), within int64


def query_integer(request: Request, name: str, default: int, low: int, high: int) -> int | Response:
    """The query parameter `name` as an integer from `low` to `high`, or the 400 answer."""
    text = request.query_params.get(name)
    if text is None:
        return default
    if _DECIMAL.fullmatch(text) is None or not low <= int(text) <= high:
        return error(400, f"{name} must be an integer from {low} to {high}, not {text[:40]!r}")
    return int(text)


def denied(request: Request) -> Response | None:
    """403 when the API is read-only, 401 for a missing or wrong bearer token, None when allowed."""
    token = service_of(request).settings.api_token
    if token is None:
        return error(403, "the API is read-only: set service.api_token_env to allow this call")
    given = request.headers.get("authorization", "")
    if not given.lower().startswith("bearer ") or not token.matches(given[7:].strip()):
        return error(401, "missing or wrong bearer token")
    return None


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if service_of(request).ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready"}, status_code=503)


async def list_runs(request: Request) -> Response:
    query = request.query_params
    state = query.get("state")
    if state and state not in {s.value for s in RunStatus}:
        return error(400, f"state {state!r} is not one of {', '.join(s.value for s in RunStatus)}")
    limit = query_integer(request, "limit", 100, 1, 1000)
    if isinstance(limit, Response):
        return limit
    runs = service_of(request).require_store().list_runs(
        pipeline=query.get("pipeline"),
        environment=query.get("environment"),
        state=RunStatus(state) if state else None,
        repository=query.get("repository"),
        limit=limit,
    )
    return JSONResponse({"runs": [r.to_json() for r in runs]})


def run_json(service: Service, run_id: str) -> dict[str, Any] | None:
    """A run with every stage of its DAG (``pending`` ones included) and the link to its page."""
    store = service.require_store()
    run = store.get(run_id)
    if run is None:
        return None
    data = run.to_json()
    stages = {s.stage: s.to_json() for s in store.stages(run_id)}
    for step in run.steps:
        for name in step:
            stages.setdefault(
                name,
                {"stage": name, "kind": "", "state": "pending", "attempts": 0, "started_at": None,
                 "finished_at": None, "reason": "", "duration": None},
            )
    data["stages"] = list(stages.values())
    data["url"] = service.reporter.target_url(run_id)
    return data


async def get_run(request: Request) -> Response:
    data = run_json(service_of(request), request.path_params["run_id"])
    if data is None:
        return error(404, f"no run {request.path_params['run_id']!r}")
    return JSONResponse(data)


async def get_logs(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    store = service_of(request).require_store()
    if store.get(run_id) is None:
        return error(404, f"no run {run_id!r}")
    after = query_integer(request, "after", 0, 0, 2**63 - 1)
    if isinstance(after, Response):
        return after
    lines = store.logs(run_id, after)
    if request.query_params.get("format") == "text":
        return PlainTextResponse("".join(f"[{x.stage or 'service'}] {x.line}\n" for x in lines))
    return JSONResponse(
        {"lines": [{"id": x.id, "stage": x.stage, "line": x.line, "at": x.at} for x in lines]}
    )


async def _trigger_request(request: Request) -> dict[str, Any] | Response:
    """The body of POST /api/runs as a dict, or the error response."""
    try:
        data = parse_json(await read_body(request, _MAX_TRIGGER_BODY))
    except BodyRefused as refusal:
        return refused(refusal)
    except MalformedWebhook as malformed:
        return error(400, str(malformed))
    if not isinstance(data, dict):
        return error(400, "the body must be a JSON object with repository and ref")
    problem = _trigger_problem(data)
    return error(400, problem) if problem else data


_TRIGGER_FIELDS = {
    "repository": "a configured repository's name, such as acme/pipelines",
    "ref": "a branch, a tag or a full ref",
    "commit": "a full commit id, or leave it out for the ref's tip",
    "provider": "github or gitlab, or leave it out",
}


def _trigger_problem(data: dict[str, Any]) -> str | None:
    """Which field of a trigger is wrong, and how; None when all are right."""
    for name, required in (("repository", True), ("ref", True), ("commit", False), ("provider", False)):
        value = data.get(name)
        if value is None and not required:
            continue
        if not isinstance(value, str):
            return f"{name} must be a string, not {type(value).__name__}"
        if not value:
            return f"{name} is empty; give {_TRIGGER_FIELDS[name]}"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{name} is not valid Unicode (it holds a lone surrogate)"
    ref: str = data["ref"]
    if problem := (ref_problem(ref) if ref.startswith("refs/") else branch_problem(ref)):
        return f"ref {problem}"
    commit = data.get("commit")
    if commit is not None and (problem := sha_problem(commit)):
        return f"commit {problem}"
    return None


async def create_run(request: Request) -> Response:
    refused = denied(request)
    if refused is not None:
        return refused
    data = await _trigger_request(request)
    if isinstance(data, Response):
        return data
    service = service_of(request)
    name, ref, commit = data["repository"], data["ref"], data.get("commit")
    matches = [r for r in service.settings.repositories if r.name.lower() == name.lower()]
    if provider := data.get("provider"):
        matches = [r for r in matches if r.provider == provider]
    if not matches:
        return error(404, f"repository {name!r} is not configured")
    repository = matches[0]
    full_ref, target = manual_target(repository, ref)
    if isinstance(target, str):
        return error(400, target)
    if not commit:
        assert service.mirrors is not None
        try:
            commit = await service.mirrors.resolve(repository, full_ref)
        except Exception as problem:
            return error(400, f"could not fetch {repository.name}: {problem}")
        if commit is None:
            return error(400, f"{full_ref} does not exist in {repository.name}")
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > MAX_HEADER_ID_LENGTH:
        return error(400, f"the Idempotency-Key header is longer than {MAX_HEADER_ID_LENGTH} characters")
    return decision_response(await service.trigger(repository, full_ref, commit, target, key))


async def cancel_run(request: Request) -> Response:
    refused = denied(request)
    if refused is not None:
        return refused
    run_id = request.path_params["run_id"]
    run = service_of(request).cancel(run_id)
    if run is None:
        return error(404, f"no run {run_id!r}")
    if run.state.is_final and run.state is not RunStatus.CANCELLED:
        return error(409, f"run {run_id} is already {run.state.value}")
    return JSONResponse({"run_id": run_id, "state": run.state.value}, status_code=202)


async def get_audit(request: Request) -> Response:
    """What users did through chat (commands, button presses), newest first; needs the API token."""
    refused = denied(request)
    if refused is not None:
        return refused
    limit = query_integer(request, "limit", 100, 1, 1000)
    if isinstance(limit, Response):
        return limit
    before = query_integer(request, "before", 2**62, 0, 2**62)  # an audit entry id: older ones only
    if isinstance(before, Response):
        return before
    entries = service_of(request).require_store().audit(limit, before)
    return JSONResponse({"entries": [entry.to_json() for entry in entries]})


routes: list[BaseRoute] = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/api/runs", list_runs, methods=["GET"]),
    Route("/api/runs", create_run, methods=["POST"]),
    Route("/api/runs/{run_id}", get_run),
    Route("/api/runs/{run_id}/logs", get_logs),
    Route("/api/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route("/api/audit", get_audit, methods=["GET"]),
]
