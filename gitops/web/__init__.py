"""The HTTP adapter: webhooks, the JSON API and the run pages, assembled into one Starlette app.

Layer rule: this package is the only place in ``gitops`` that imports ``starlette``. Endpoints are
module-level functions that reach the :class:`~gitops.service.Service` through ``request.app.state``
(:func:`gitops.web.responses.service_of`); each module exposes its ``routes``. A new surface of the
service (schedules, metrics) is a new module here whose ``routes`` :func:`create_app` adds; an
extension (:mod:`gitops.extensions`, e.g. ChatOps) brings its own through ``Extension.routes``.

Pages and the read API are guarded by :class:`~gitops.web.access.PagesGuard` (``pages.access``).
Behind a path prefix (the path of ``service.public_url``) every route answers with the prefix and
without it, and everything the service sends carries it (:mod:`gitops.web.prefix`).

Bad input never yields a 5xx: 400 malformed, 401 bad signature, 403/401 bad API token, 404 unknown run,
413 body too large; an event that is merely ignored answers 200 with the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from gitops.service import Service
from gitops.web import api, live, metrics, pages, schedules, session, sources, webhooks
from gitops.web.access import PagesGuard
from gitops.web.bodies import ByteBudget
from gitops.web.prefix import PathPrefix, check_prefix
from gitops.web.templating import static

BUILTIN_ROUTES: tuple[Sequence[BaseRoute], ...] = (
    webhooks.routes, api.routes, schedules.routes, sources.routes, metrics.routes, live.routes,
    pages.routes, session.routes, [static],
)
"""The service's own surfaces, in matching order."""


def extension_routes(service: Service) -> list[BaseRoute]:
    """The routes of the service's active extensions; refuses anything that is not a route."""
    found: list[BaseRoute] = []
    for extension in service.extensions:
        for route in extension.routes(service.settings):
            if not isinstance(route, BaseRoute):
                raise TypeError(
                    f"extension {extension.section!r} returned {route!r} from routes(); "
                    "return starlette routes (starlette.routing.Route, Mount)"
                )
            found.append(route)
    return found


def create_app(
    service: Service,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    middleware: Sequence[Middleware] = (),
) -> Starlette:
    """The ASGI app of `service`: its routes, then `extra_routes`, then the extensions' routes.

    The app's lifespan starts and stops the service (and so its extensions). A prefix that begins one
    of the routes' paths raises :class:`~gitops.settings.SettingsError`.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    routes = [route for group in BUILTIN_ROUTES for route in group]
    routes += [*extra_routes, *extension_routes(service)]
    check_prefix(service.settings.public_url, routes)
    # The guard comes first: pages and the read API follow `pages.access` (gitops.web.access); before
    # it, a request without the prefix gets it (gitops.web.prefix).
    guarded = [Middleware(PagesGuard), *middleware]
    if service.settings.path_prefix:
        guarded.insert(0, Middleware(PathPrefix, prefix=service.settings.path_prefix))
    app = Starlette(routes=routes, middleware=guarded, lifespan=lifespan)
    app.state.service = service
    app.state.body_budget = ByteBudget(service.settings.limits.max_buffered_bytes)
    return app
