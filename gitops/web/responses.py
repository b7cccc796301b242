"""What every endpoint shares: the service behind the app, JSON errors, bounded bodies."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gitops.service import Service
from gitops.web.bodies import BodyRefused, ByteBudget, drain
from gitops.web.bodies import read_body as _read_body


def service_of(request: Request) -> Service:
    """The :class:`~gitops.service.Service` that :func:`gitops.web.create_app` put on the app."""
    service: Service = request.app.state.service
    return service


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # An echoed input may hold a lone surrogate, which UTF-8 cannot encode: escape it.
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": text}, status_code=status, headers=headers)


def refused(problem: BodyRefused) -> JSONResponse:
    headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after is not None else None
    return error(problem.status, problem.message, headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body within the service's limits (:mod:`gitops.web.bodies`); :class:`BodyRefused` else."""
    budget: ByteBudget = request.app.state.body_budget
    timeout = service_of(request).settings.limits.body_timeout_seconds
    return await _read_body(request, limit, budget, timeout)


async def error_unread(request: Request, status: int, message: str) -> JSONResponse:
    """An error answered before the body was read: what the client still sends is read and dropped
    first (within bounds), so that it sees the answer rather than a connection reset."""
    await drain(request)
    return error(status, message)
