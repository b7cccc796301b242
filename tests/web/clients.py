"""HTTP clients of their own for the web tests (each with its own cookies), closed after each test by
the autouse fixture in ``conftest.py``."""

from __future__ import annotations

import httpx

from tests.gitops.helpers import RunningService

_open: list[httpx.Client] = []


def new_client(service: RunningService, **options: object) -> httpx.Client:
    """A client of `service` with cookies of its own, closed after the test."""
    client = httpx.Client(base_url=service.base_url, timeout=10, **options)  # type: ignore[arg-type]
    _open.append(client)
    return client


def close_clients() -> None:
    while _open:
        _open.pop().close()
