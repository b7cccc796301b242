"""Stage pods download their run's code here when the service runs in the cluster.

``GET /sources/{namespace}/{name}`` with ``Authorization: Bearer <the run's token>`` answers the run's
source archive (docs/kubernetes.md, "When the service runs in the cluster"). The backend decides: the
token must open that archive and the run's objects must still exist. 401 for a missing or wrong token,
404 once the run's objects are gone (or when the backend serves no sources); never the token in a log.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from gitops.web.responses import error, service_of
from runner.backends.base import SourceServer

log = logging.getLogger(__name__)


async def source_archive(request: Request) -> Response:
    namespace, name = request.path_params["namespace"], request.path_params["name"]
    given = request.headers.get("authorization", "")
    if not given.lower().startswith("bearer ") or not given[7:].strip():
        return error(401, "missing bearer token: use the token of the run's source Secret")
    backend = service_of(request).backend
    if not isinstance(backend, SourceServer):
        return error(404, "this service does not serve sources (its backend ships code itself)")
    try:
        archive = await asyncio.to_thread(backend.source_archive, namespace, name, given[7:].strip())
    except PermissionError:
        log.warning("refused a download of the sources %s/%s: wrong token", namespace, name)
        return error(401, f"the token does not open the sources {namespace}/{name}")
    if archive is None:
        return error(404, f"no sources {namespace}/{name}: the run's objects are gone; run it again")
    return FileResponse(archive, media_type="application/gzip")


routes: list[BaseRoute] = [Route("/sources/{namespace}/{name}", source_archive, methods=["GET"])]
