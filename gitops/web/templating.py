"""Jinja2 templates through Starlette's ``Jinja2Templates``, and the static files.

Templates are ``.html`` files, so every ``{{ value }}`` is escaped (``select_autoescape``): a branch
name, a commit message or a log line is text on the page, never markup. Only this module knows where
the templates and static files live (package data of ``gitops``).

Every path a template writes (links, form actions, the style sheet and the script, the run page's
stream) begins with ``{{ root }}``: the service's prefix (:mod:`gitops.web.prefix`), "" at the root.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from gitops.web import views
from gitops.web.access import visitor
from gitops.web.prefix import prefix_of

_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=_HERE / "templates")
templates.env.filters.update(
    time=views.time_text,
    duration=views.duration_text,
    ref=views.ref_name,
    short=lambda sha: sha[:10],
)
templates.env.globals["root"] = ""  # a page rendered without a request (render_text)
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True

static = Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="static")


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """The page `name` with `context`, plus what every page shows (:func:`_every_page`)."""
    return templates.TemplateResponse(request, name, _every_page(request, context), status_code=status_code)


def _every_page(request: Request, context: dict[str, Any]) -> dict[str, Any]:
    """`context` with what every page shows: who is signed in, and the prefix of its paths."""
    context.setdefault("visitor", visitor(request))
    context.setdefault("root", prefix_of(request))
    return context


_FIRST_CHUNK = 16 * 1024
_CHUNK = 64 * 1024


def render_streaming(request: Request, name: str, context: dict[str, Any]) -> Response:
    """The page `name`, sent as it is rendered (for the run page and its 10,000 log lines): the
    browser draws the top of the page while the log is still being rendered, and the rendering runs
    in a worker thread, so the event loop (webhooks, live updates) never waits for it."""
    context = _every_page(request, context)
    context.setdefault("request", request)
    parts = templates.get_template(name).generate(context)
    return StreamingResponse(_chunks(parts), media_type="text/html; charset=utf-8")


def _chunks(parts: Iterator[str]) -> Iterator[bytes]:
    """The template's many small pieces, joined into few chunks (one thread hop and write each)."""
    buffer: list[str] = []
    size, limit = 0, _FIRST_CHUNK
    for part in parts:
        buffer.append(part)
        size += len(part)
        if size >= limit:
            yield "".join(buffer).encode()
            buffer, size, limit = [], 0, _CHUNK
    if buffer:
        yield "".join(buffer).encode()


def render_text(name: str, context: dict[str, Any]) -> str:
    """The template as text, without a request (the benchmark and the tests of escaping)."""
    return templates.get_template(name).render(context)
