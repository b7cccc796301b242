"""The only chatops module that imports starlette: ``POST /slack/commands`` and ``/slack/interactions``.

The raw body is read (bounded) and handed, with the headers, to the HTTP transport, which verifies the
signature before anything else is read. The transport's answer is sent back as is: 200 with the
acknowledgement, 401 for a request not from Slack; never a 5xx.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from chatops.transports import HttpAnswer, HttpTransport
from gitops.web.bodies import BodyRefused
from gitops.web.responses import read_body, refused

MAX_BODY = 1024 * 1024
"""Slack's interaction payloads stay far below this."""

Handler = Callable[[HttpTransport, dict[str, str], bytes], Awaitable[HttpAnswer]]


def _endpoint(transport: Callable[[], HttpTransport | None], handle: Handler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        current = transport()
        if current is None:
            return JSONResponse({"response_type": "ephemeral", "text": "bodywork is starting; try again."})
        try:
            body = await read_body(request, MAX_BODY)
        except BodyRefused as problem:  # too large (413), too slow (408), too many at once (429)
            return refused(problem)
        headers = {name.lower(): value for name, value in request.headers.items()}
        answer = await handle(current, headers, body)
        if answer.body is None:
            return Response(status_code=answer.status)
        return JSONResponse(answer.body, status_code=answer.status)

    return endpoint


def slack_routes(transport: Callable[[], HttpTransport | None]) -> list[BaseRoute]:
    return [
        Route("/slack/commands", _endpoint(transport, HttpTransport.commands), methods=["POST"]),
        Route("/slack/interactions", _endpoint(transport, HttpTransport.interactions), methods=["POST"]),
    ]
