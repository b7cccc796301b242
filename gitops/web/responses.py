"""What every endpoint shares: the service behind the app, JSON errors, bounded bodies."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gitops.service import Service


def service_of(request: Request) -> Service:
    """The :class:`~gitops.service.Service` that :func:`gitops.web.create_app` put on the app."""
    service: Service = request.app.state.service
    return service


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class TooLarge(Exception):
    """The request body is above the endpoint's limit (answered 413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (:class:`TooLarge`) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)
