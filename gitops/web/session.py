"""The login form: a token in, a cookie out (the HMAC of the token, see :mod:`gitops.web.access`).

The cookie's path is the service's prefix (:mod:`gitops.web.prefix`), and a login only ever sends the
browser on to a page under that prefix.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gitops.web.access import COOKIE, read_form, sign
from gitops.web.prefix import prefix_of
from gitops.web.responses import service_of
from gitops.web.templating import render


def safe_next(target: str, prefix: str) -> str:
    """`target` when it is a page of this service: a path under `prefix`; else the runs list. Never
    another site (``//evil.example``, ``https://evil.example``, ``/\\evil.example``, a control
    character browsers drop) nor another path of the host (``/elsewhere``, ``/bodywork/../elsewhere``):
    that would be an open redirect."""
    home = prefix + "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return home
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in target):
        return home
    path = urlsplit(target).path
    if path != prefix and not path.startswith(home):
        return home
    segments = unquote(path).split("/")
    return home if "." in segments or ".." in segments else target


async def login(request: Request) -> Response:
    prefix = prefix_of(request)
    next_page = safe_next(request.query_params.get("next", ""), prefix)
    if request.method == "GET":
        return render(request, "login.html", {"next": next_page, "problem": ""})
    form = await read_form(request)
    if isinstance(form, Response):
        return form
    next_page = safe_next(form.get("next", ""), prefix)
    settings = service_of(request).settings
    token = form.get("token", "").strip()
    cookie = ""
    if settings.api_token is not None and token and settings.api_token.matches(token):
        cookie = sign(settings.api_token, "operator")
    elif settings.pages.token is not None and token and settings.pages.token.matches(token):
        cookie = sign(settings.pages.token, "reader")
    if not cookie:
        context = {"next": next_page, "problem": "That token is neither the API token nor the pages token."}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(next_page, status_code=303)
    secure = request.url.scheme == "https" or settings.public_url.startswith("https://")
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", secure=secure, path=prefix or "/")
    return response


async def logout(request: Request) -> Response:
    prefix = prefix_of(request)
    response = RedirectResponse(prefix + "/", status_code=303)
    response.delete_cookie(COOKIE, path=prefix or "/")
    return response


routes: list[BaseRoute] = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
]
