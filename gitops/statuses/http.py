"""The only module that talks HTTP (and imports httpx): sends an :class:`ApiRequest`, returns an
:class:`ApiResponse`, and turns every transport failure into :class:`TransportFailure`."""

from __future__ import annotations

import functools
import ssl
from typing import Protocol

import httpx

from gitops.statuses.api import ApiRequest, ApiResponse


class TransportFailure(Exception):
    """No HTTP answer: connection refused or reset, DNS failure, timeout. Worth retrying."""


class HttpClient(Protocol):
    async def send(self, request: ApiRequest) -> ApiResponse: ...

    async def aclose(self) -> None: ...


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built once: loading the CA bundle takes tens of milliseconds per client otherwise."""
    return httpx.create_ssl_context()


class HttpxClient:
    def __init__(self, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None):
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
            verify=_tls_context(),
        )

    async def send(self, request: ApiRequest) -> ApiResponse:
        try:
            response = await self._client.request(
                request.method, request.url, json=dict(request.json), headers=dict(request.headers)
            )
        except httpx.TimeoutException as error:
            raise TransportFailure(f"timed out: {type(error).__name__}") from None
        except httpx.HTTPError as error:
            raise TransportFailure(f"{type(error).__name__}: {error}") from None
        headers = {name.lower(): value for name, value in response.headers.items()}
        return ApiResponse(response.status_code, headers, response.text)

    async def aclose(self) -> None:
        await self._client.aclose()
