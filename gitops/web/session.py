"""The login form: a token in, a cookie out (the HMAC of the token, see :mod:`gitops.web.access`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gitops.web.access import COOKIE, read_form, sign
from gitops.web.responses import service_of
from gitops.web.templating import render


def _safe_next(target: str) -> str:
    """Only a path of this site: never an absolute or scheme-relative URL (an open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


async def login(request: Request) -> Response:
    next_page = _safe_next(request.query_params.get("next", "/"))
    if request.method == "GET":
        return render(request, "login.html", {"next": next_page, "problem": ""})
    form = await read_form(request)
    if isinstance(form, Response):
        return form
    next_page = _safe_next(form.get("next", "/"))
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
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", secure=secure, path="/")
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


routes: list[BaseRoute] = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
]
