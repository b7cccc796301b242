"""Who may read the pages and the read API, and who may re-run and cancel from a page.

Reading follows ``pages.access`` (:mod:`gitops.pages_access`): ``open``; ``token`` (the read token or
the API token, as a bearer token or through the login form's cookie); ``proxy`` (a non-empty user
header from a trusted proxy address). Re-run and cancel need the API token (a bearer token, or the
login form's operator cookie), whatever the access mode.

The cookie holds an HMAC of the token, never the token; it is ``HttpOnly`` and ``SameSite=Strict``,
and every form that changes something also carries a CSRF value derived from it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gitops.secret import Secret
from gitops.web.bodies import BodyRefused
from gitops.web.prefix import prefix_of, route_path
from gitops.web.responses import error, read_body, refused, service_of

COOKIE = "bodywork_session"
"""The login form's cookie: ``<role>.<HMAC of the token>``."""
_READ_PREFIXES = ("/runs", "/environments", "/api/runs", "/api/schedules")
_MAX_FORM = 8 * 1024

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def sign(secret: Secret, role: str) -> str:
    digest = hmac.new(secret.reveal().encode(), f"bodywork-pages:{role}".encode(), hashlib.sha256)
    return f"{role}.{digest.hexdigest()}"


def _bearer(request: Request) -> str | None:
    given = request.headers.get("authorization", "")
    return given[7:].strip() if given.lower().startswith("bearer ") else None


def _holds(secret: Secret | None, role: str, cookie: str, bearer: str | None) -> bool:
    """Whether the visitor shows `secret`: the login cookie of `role`, or the bearer token itself."""
    if secret is None:
        return False
    # Bytes: compare_digest refuses str with non-ASCII characters, which a cookie may hold.
    signed = hmac.compare_digest(cookie.encode(), sign(secret, role).encode())
    return signed or bool(bearer and secret.matches(bearer))


@dataclass(frozen=True)
class Visitor:
    can_read: bool
    operator: bool
    """Holds the API token: may re-run and cancel."""
    user: str = ""
    """Who the proxy says it is, or the role the login gave."""
    csrf: str = ""


def visitor(request: Request) -> Visitor:
    settings = service_of(request).settings
    pages, api_token = settings.pages, settings.api_token
    cookie = request.cookies.get(COOKIE, "")
    bearer = _bearer(request)
    operator = _holds(api_token, "operator", cookie, bearer)
    reader = _holds(pages.token, "reader", cookie, bearer)
    user = "operator" if operator else "reader" if reader else ""
    if pages.access == "open":
        can_read = True
    elif pages.access == "proxy":
        client = request.client.host if request.client else None
        proxied = request.headers.get(pages.proxy_user_header, "").strip() if pages.trusts(client) else ""
        can_read, user = bool(proxied) or operator, proxied or user
    else:
        can_read = operator or reader
    csrf = hmac.new(cookie.encode(), b"csrf", hashlib.sha256).hexdigest() if cookie else ""
    return Visitor(can_read, operator, user, csrf)


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    expected = visitor(request).csrf
    return bool(expected) and hmac.compare_digest(expected.encode(), form.get("csrf", "").encode())


def _guarded(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    path = route_path(scope)
    return path == "/" or path.startswith(_READ_PREFIXES)


class PagesGuard:
    """ASGI middleware: a page or read API call that `pages.access` does not allow is answered 401
    (the API) or sent to the login form (a page)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _guarded(scope):
            request = Request(scope)
            if not visitor(request).can_read:
                response = _refusal(request)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(request: Request) -> Response:
    settings = service_of(request).settings
    pages = settings.pages
    if pages.access == "token" and pages.token is None and settings.api_token is None:
        return error(
            403, "the pages are closed: they show logs, and no token is configured; set pages.access "
            "(open, or proxy behind an authenticating proxy) or a token (pages.token_env, "
            "service.api_token_env); see docs/pages.md",
        )
    if route_path(request.scope).startswith("/api/"):
        if pages.access == "proxy":
            return error(401, f"sign in through the proxy (it sets {pages.proxy_user_header})")
        return error(401, "the read API needs a bearer token (pages.access: token)")
    if pages.access == "proxy":
        return error(401, "sign in through the authenticating proxy in front of this service")
    # The path as the browser sees it (with the prefix, gitops.web.prefix), back after the login.
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{prefix_of(request)}/login?next={quote(target, safe='')}", status_code=303)


async def read_form(request: Request) -> dict[str, str] | Response:
    """A small urlencoded form (login, re-run, cancel), or the answer to a body refused (too large,
    too slow: :mod:`gitops.web.bodies`)."""
    try:
        body = await read_body(request, _MAX_FORM)
    except BodyRefused as problem:
        return refused(problem)
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}
