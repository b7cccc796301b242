"""``GET /metrics``: the service's metrics in the Prometheus text format (:mod:`gitops.metrics`); and
the wrapper that counts the webhooks' answers."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gitops.metrics import CONTENT_TYPE
from gitops.web.responses import service_of

Endpoint = Callable[[Request], Awaitable[Response]]


async def metrics(request: Request) -> Response:
    return Response(service_of(request).metrics.exposition(), media_type=CONTENT_TYPE)


routes: list[BaseRoute] = [Route("/metrics", metrics)]


_ANSWERS = {400: "malformed", 401: "unauthorized", 404: "unknown_endpoint", 413: "too_large"}
_PROVIDERS = ("github", "gitlab")


def answer_of(response: Response) -> str:
    """How a webhook was answered: the ``status`` of a 2xx body (accepted, duplicate, ignored, pong),
    else a name for the error code."""
    if 200 <= response.status_code < 300:
        try:
            status = json.loads(bytes(response.body)).get("status")
        except (ValueError, AttributeError):
            status = None
        return status if isinstance(status, str) else str(response.status_code)
    return _ANSWERS.get(response.status_code, str(response.status_code))


def counted_webhook(endpoint: Endpoint) -> Endpoint:
    """`endpoint` (``POST /webhooks/{provider}``), counting each answer by provider."""

    @functools.wraps(endpoint)
    async def counted(request: Request) -> Response:
        response = await endpoint(request)
        provider = request.path_params.get("provider", "")
        provider = provider if provider in _PROVIDERS else "other"
        service_of(request).metrics.webhook(provider, answer_of(response))
        return response

    return counted
