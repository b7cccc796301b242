"""The path prefix the service is served under: the path of ``service.public_url`` (``/bodywork``).

Reverse proxies differ: some forward ``/bodywork/runs/x`` as it is, some strip the prefix and forward
``/runs/x``. :class:`PathPrefix` takes both to the same route, in the form ASGI gives routes behind a
prefix (``root_path`` is the prefix and ``path`` begins with it), so ``request.url`` is the address
the browser sees either way. What the service sends back (links, forms, redirects, the login
cookie's path) is built from :func:`prefix_of`, the configured prefix, never from the request.

Without a prefix nothing here runs (:func:`gitops.web.create_app` leaves the middleware out).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from gitops.settings import SettingsError
from gitops.web.responses import service_of


def prefix_of(request: Request) -> str:
    """The prefix of every path the service sends: ``/bodywork``, or "" at the root of its host."""
    return service_of(request).settings.path_prefix


def route_path(scope: Scope) -> str:
    """The path below the prefix, the one routes match: ``/runs/x`` of ``/bodywork/runs/x``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class PathPrefix:
    """ASGI middleware: a request with the prefix and the same request without it reach one route."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.prefix:
            # The prefix alone (the public URL as written): on to the runs list, by a path rather than
            # Starlette's absolute URL, whose scheme and host would be those the proxy connected with.
            query = scope.get("query_string", b"").decode("latin-1")
            response = RedirectResponse(self.prefix + "/" + (f"?{query}" if query else ""), status_code=307)
            await response(scope, receive, send)
            return
        if scope["type"] in ("http", "websocket"):
            scope = with_prefix(scope, self.prefix)
        await self.app(scope, receive, send)


def with_prefix(scope: Scope, prefix: str) -> Scope:
    """`scope` with ``root_path`` `prefix` and a ``path`` that begins with it (added when a proxy
    stripped it)."""
    path: str = scope["path"]
    changed = {**scope, "root_path": prefix}
    if path != prefix and not path.startswith(prefix + "/"):
        changed["path"] = prefix + path
        raw = scope.get("raw_path")
        if isinstance(raw, bytes):
            changed["raw_path"] = prefix.encode() + raw
    return changed


def check_prefix(public_url: str, routes: Sequence[BaseRoute]) -> None:
    """Refuses a prefix that begins a path of the service's own: with ``/runs`` as the prefix, ``/runs/x``
    could be run ``x`` without the prefix or ``/x`` with it."""
    prefix = urlsplit(public_url).path.rstrip("/")
    if not prefix:
        return
    wanted = prefix.split("/")[1:]
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str) and _begins(path, wanted, isinstance(route, Mount)):
            instead = urlunsplit((*urlsplit(public_url)[:2], "/bodywork", "", ""))
            raise SettingsError([
                f"service.public_url -> its path {prefix!r} begins the service's own path {path!r}: a "
                "request without the prefix could not be told from one with it; serve the service "
                f"under another path, e.g. {instead!r}"
            ])


def _begins(path: str, wanted: list[str], mounted: bool) -> bool:
    """Whether some path that `path` matches begins with the segments `wanted` (``{param}`` matches
    any segment; a mount matches anything below it)."""
    parts = [part for part in path.split("/") if part]
    if len(wanted) > len(parts) and not mounted:
        return False
    return all(part.startswith("{") or part == segment for part, segment in zip(parts, wanted, strict=False))
