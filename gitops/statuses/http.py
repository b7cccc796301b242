"""The only module that talks HTTP (and imports httpx): sends an :class:`ApiRequest`, returns an
:class:`ApiResponse`, and turns every transport failure into :class:`TransportFailure`."""

from __future__ import annotations

import functools
import ssl
from typing import Protocol

import httpx

from gitops.statuses.api import ApiRequest, ApiResponse


class TransportFailure(Exception):
    """No HTTP answer: connection refused or reset, DNS failure, timeout. Worth retrying.

    `maybe_applied`: the request was sent and the answer never came (a read timeout, a connection
    dropped mid-answer), so the server may have acted on it; a retry should check first."""

    def __init__(self, message: str, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


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
        body = dict(request.json) if request.method != "GET" else None
        try:
            response = await self._client.request(
                request.method, request.url, json=body, headers=dict(request.headers)
            )
        except httpx.TimeoutException as error:
            sent = not isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise TransportFailure(f"timed out: {type(error).__name__}", maybe_applied=sent) from None
        except httpx.HTTPError as error:
            sent = isinstance(error, httpx.RemoteProtocolError | httpx.ReadError)
            raise TransportFailure(f"{type(error).__name__}: {error}", maybe_applied=sent) from None
        headers = {name.lower(): value for name, value in response.headers.items()}
        return ApiResponse(response.status_code, headers, response.text)

    async def aclose(self) -> None:
        await self._client.aclose()
