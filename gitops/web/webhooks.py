"""``POST /webhooks/{provider}``: verify, parse and accept a GitHub or GitLab push.

An event that is merely ignored answers 200 with the reason (GitLab disables hooks that keep failing).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gitops.service import Decision
from gitops.settings import RepositorySettings
from gitops.web.bodies import BodyRefused
from gitops.web.metrics import counted_webhook
from gitops.web.responses import error, error_unread, read_body, refused, service_of
from gitops.webhooks import Ignored, MalformedWebhook, Ping, PushEvent, github, gitlab, header

_PROVIDERS = {"github": github, "gitlab": gitlab}
_SIGNATURE_HEADERS = {"github": "X-Hub-Signature-256", "gitlab": "X-Gitlab-Token"}


def decision_response(decision: Decision) -> JSONResponse:
    """The answer to an accepted push or trigger: 202 with the new run, 200 for a duplicate or none."""
    if decision.run is None:
        return JSONResponse({"status": "ignored", "reason": decision.reason}, status_code=200)
    run = decision.run
    if decision.duplicate:
        return JSONResponse(
            {
                "status": "duplicate",
                "run_id": run.id,
                "state": run.state.value,
                "reason": "this delivery (or one with an identical body) was accepted before; "
                "no second run is started",
            },
            status_code=200,
        )
    return JSONResponse(
        {"status": "accepted", "run_id": run.id, "state": run.state.value,
         "environment": run.environment, "commit": run.commit},
        status_code=202,
    )


async def webhook(request: Request) -> Response:
    service = service_of(request)
    provider_name = request.path_params["provider"]
    provider = _PROVIDERS.get(provider_name)
    if provider is None:
        unknown = f"no webhook endpoint for {provider_name!r}; use github or gitlab"
        return await error_unread(request, 404, unknown)
    headers: Mapping[str, str] = request.headers
    what = _SIGNATURE_HEADERS[provider_name]
    unauthenticated = f"{what} is missing or does not match the secret of any repository"
    if not header(headers, what):  # nothing to check the body against: it is not read at all
        return await error_unread(request, 401, unauthenticated)
    repositories = service.matching_repositories(provider_name)
    if provider is gitlab:  # the token is a header: checked before the body is read
        repositories = [r for r in repositories if gitlab.verify(headers, b"", r.webhook_secret)]
        if not repositories:
            return await error_unread(request, 401, unauthenticated)
    try:
        body = await read_body(request, service.settings.max_body_bytes)
    except BodyRefused as problem:
        return refused(problem)
    if provider is gitlab:
        candidates = repositories  # their tokens were checked above; the body is not signed
    else:
        candidates = [r for r in repositories if provider.verify(headers, body, r.webhook_secret)]
    if not candidates:
        return error(401, unauthenticated)
    try:
        event = provider.parse(headers, body)
    except MalformedWebhook as problem:
        return error(400, str(problem))
    return await _answer(request, candidates, event)


async def _answer(
    request: Request, candidates: list[RepositorySettings], event: PushEvent | Ping | Ignored
) -> Response:
    if isinstance(event, Ping):
        return JSONResponse({"status": "pong", "repository": event.repository})
    if isinstance(event, Ignored):
        return JSONResponse({"status": "ignored", "reason": event.reason})
    repository = next((r for r in candidates if r.name.lower() == event.repository.lower()), None)
    if repository is None:
        return JSONResponse(
            {"status": "ignored", "reason": f"repository {event.repository!r} is not configured"}
        )
    return decision_response(await service_of(request).accept_push(repository, event))


routes: list[BaseRoute] = [Route("/webhooks/{provider}", counted_webhook(webhook), methods=["POST"])]
