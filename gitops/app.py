"""The HTTP surface: webhooks, the JSON API and the run pages. The only module that uses starlette.

Bad input never yields a 5xx: 400 malformed, 401 bad signature, 403/401 bad API token, 404 unknown run,
413 body too large; an event that is merely ignored answers 200 with the reason (GitLab disables hooks
that keep failing).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gitops import pages
from gitops.environments import Target, target_for
from gitops.service import Decision, Service
from gitops.settings import RepositorySettings
from gitops.webhooks import Ignored, MalformedWebhook, Ping, PushEvent, github, gitlab
from runner.events import RunState

log = logging.getLogger(__name__)
_PROVIDERS = {"github": github, "gitlab": gitlab}


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _decision_response(decision: Decision) -> JSONResponse:
    if decision.run is None:
        return JSONResponse({"status": "ignored", "reason": decision.reason}, status_code=200)
    run = decision.run
    if decision.duplicate:
        return JSONResponse(
            {
                "status": "duplicate",
                "run_id": run.id,
                "state": run.state.value,
                "reason": "this delivery was accepted before; no second run is started",
            },
            status_code=200,
        )
    return JSONResponse(
        {"status": "accepted", "run_id": run.id, "state": run.state.value,
         "environment": run.environment, "commit": run.commit},
        status_code=202,
    )


def create_app(service: Service) -> Starlette:
    settings = service.settings

    async def webhook(request: Request) -> Response:
        provider_name = request.path_params["provider"]
        provider = _PROVIDERS.get(provider_name)
        if provider is None:
            return _error(404, f"no webhook endpoint for {provider_name!r}; use github or gitlab")
        try:
            body = await _body(request, settings.max_body_bytes)
        except _TooLarge:
            return _error(413, f"the body is larger than the limit of {settings.max_body_bytes} bytes")
        headers: Mapping[str, str] = request.headers
        candidates = [
            r for r in service.matching_repositories(provider_name)
            if provider.verify(headers, body, r.webhook_secret)
        ]
        if not candidates:
            what = "X-Hub-Signature-256" if provider_name == "github" else "X-Gitlab-Token"
            return _error(401, f"{what} is missing or does not match the secret of any repository")
        try:
            event = provider.parse(headers, body)
        except MalformedWebhook as error:
            return _error(400, str(error))
        if isinstance(event, Ping):
            return JSONResponse({"status": "pong", "repository": event.repository})
        if isinstance(event, Ignored):
            return JSONResponse({"status": "ignored", "reason": event.reason})
        assert isinstance(event, PushEvent)
        repository = next(
            (r for r in candidates if r.name.lower() == event.repository.lower()), None
        )
        if repository is None:
            return JSONResponse(
                {"status": "ignored", "reason": f"repository {event.repository!r} is not configured"}
            )
        return _decision_response(await service.accept_push(repository, event))

    def _authorized(request: Request) -> Response | None:
        token = settings.api_token
        if token is None:
            return _error(403, "the API is read-only: set service.api_token_env to allow this call")
        given = request.headers.get("authorization", "")
        if not given.lower().startswith("bearer ") or not token.matches(given[7:].strip()):
            return _error(401, "missing or wrong bearer token")
        return None

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if service.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    async def list_runs(request: Request) -> Response:
        query = request.query_params
        state = query.get("state")
        if state and state not in {s.value for s in RunState}:
            return _error(400, f"state {state!r} is not one of {', '.join(s.value for s in RunState)}")
        limit = query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return _error(400, f"limit must be an integer from 1 to 1000, not {limit!r}")
        runs = service.require_store().list_runs(
            pipeline=query.get("pipeline"),
            environment=query.get("environment"),
            state=state,
            repository=query.get("repository"),
            limit=int(limit),
        )
        return JSONResponse({"runs": [r.to_json() for r in runs]})

    def _run_json(run_id: str) -> dict[str, Any] | None:
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
        data = _run_json(request.path_params["run_id"])
        if data is None:
            return _error(404, f"no run {request.path_params['run_id']!r}")
        return JSONResponse(data)

    async def get_logs(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        store = service.require_store()
        if store.get(run_id) is None:
            return _error(404, f"no run {run_id!r}")
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            return _error(400, f"after must be a log line id, not {after!r}")
        lines = store.logs(run_id, int(after))
        if request.query_params.get("format") == "text":
            return PlainTextResponse("".join(f"[{x.stage or 'service'}] {x.line}\n" for x in lines))
        return JSONResponse(
            {"lines": [{"id": x.id, "stage": x.stage, "line": x.line, "at": x.at} for x in lines]}
        )

    async def create_run(request: Request) -> Response:
        denied = _authorized(request)
        if denied is not None:
            return denied
        try:
            body = await _body(request, 64 * 1024)
            data = json.loads(body)
        except _TooLarge:
            return _error(413, "the body is larger than 64 KiB")
        except ValueError as error:
            return _error(400, f"the body is not valid JSON: {error}")
        if not isinstance(data, dict):
            return _error(400, "the body must be a JSON object with repository and ref")
        name, ref, commit = data.get("repository"), data.get("ref"), data.get("commit")
        if not isinstance(name, str) or not isinstance(ref, str) or not ref:
            return _error(400, "repository and ref are required strings")
        if commit is not None and not isinstance(commit, str):
            return _error(400, "commit must be a string")
        matches = [r for r in settings.repositories if r.name.lower() == name.lower()]
        provider = data.get("provider")
        if provider:
            matches = [r for r in matches if r.provider == provider]
        if not matches:
            return _error(404, f"repository {name!r} is not configured")
        repository = matches[0]
        full_ref, target = _manual_target(repository, ref)
        if isinstance(target, str):
            return _error(400, target)
        if not commit:
            assert service.mirrors is not None
            try:
                commit = await service.mirrors.resolve(repository, full_ref)
            except Exception as error:
                return _error(400, f"could not fetch {repository.name}: {error}")
            if commit is None:
                return _error(400, f"{full_ref} does not exist in {repository.name}")
        key = request.headers.get("idempotency-key")
        return _decision_response(await service.trigger(repository, full_ref, commit, target, key))

    async def cancel_run(request: Request) -> Response:
        denied = _authorized(request)
        if denied is not None:
            return denied
        run_id = request.path_params["run_id"]
        run = service.cancel(run_id)
        if run is None:
            return _error(404, f"no run {run_id!r}")
        if run.state.is_final and run.state is not RunState.CANCELLED:
            return _error(409, f"run {run_id} is already {run.state.value}")
        return JSONResponse({"run_id": run_id, "state": run.state.value}, status_code=202)

    async def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        store = service.require_store()
        run = store.get(run_id)
        if run is None:
            return HTMLResponse("<h1>No such run</h1>", status_code=404)
        return HTMLResponse(pages.run_page(run, store.stages(run_id), store.logs(run_id)))

    async def index(request: Request) -> Response:
        return HTMLResponse(pages.runs_page(service.require_store().list_runs(limit=100)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs", create_run, methods=["POST"]),
        Route("/api/runs/{run_id}", get_run),
        Route("/api/runs/{run_id}/logs", get_logs),
        Route("/api/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
        Route("/runs/{run_id}", run_page),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _manual_target(repository: RepositorySettings, ref: str) -> tuple[str, Target | str]:
    if ref.startswith("refs/"):
        return ref, target_for(repository, ref, False)
    branch = target_for(repository, f"refs/heads/{ref}", False)
    if not isinstance(branch, str):
        return f"refs/heads/{ref}", branch
    tag = target_for(repository, f"refs/tags/{ref}", False)
    if not isinstance(tag, str):
        return f"refs/tags/{ref}", tag
    return ref, branch
