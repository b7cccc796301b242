"""Services reach each other by stage name locally, as on Kubernetes: a tiny forwarding HTTP proxy.

On Kubernetes a stage calls another stage's service as ``http://<stage-name>:<port>/``. Locally such a
name does not resolve, and changing /etc/hosts or DNS would need root. Instead every stage gets
``http_proxy`` pointing at this proxy (one per environment, on 127.0.0.1), which ordinary clients
(requests, urllib, httpx, curl) use for plain-HTTP URLs. The proxy sends a request for a running
service's name to 127.0.0.1:<its port> and every other request on to its real host (through the
user's own http_proxy when one was set). ``no_proxy`` keeps loopback addresses direct; HTTPS is never
touched. Each request gets its own connection (``Connection: close``), so a reused client connection
cannot carry a request to another host through a connection opened for the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# Maps a host name to the local port of a running service, None for any other host, or raises
# LookupError with a message when the name is a service that is not running.
Resolver = Callable[[str], int | None]

_HEAD_LIMIT = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
LOOPBACK = ("localhost", "127.0.0.1", "::1")


class NameProxy:
    def __init__(self, resolve: Resolver, upstream: str | None = None) -> None:
        self.resolve = resolve
        self.upstream = urlsplit(upstream) if upstream else None
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def serving(self) -> bool:
        """Whether it serves in the running event loop (a backend may outlive one loop, as in tests)."""
        return self._server is not None and self._loop is asyncio.get_running_loop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stage_variables(self, inherited_no_proxy: str = "") -> dict[str, str]:
        """What a stage's environment gets so that its HTTP clients use the proxy."""
        no_proxy = ",".join(p for p in (*LOOPBACK, inherited_no_proxy) if p)
        return {"http_proxy": self.url, "HTTP_PROXY": self.url, "no_proxy": no_proxy, "NO_PROXY": no_proxy}

    async def close(self) -> None:
        if self._server is not None:
            serving = self.serving
            self._server.close()  # closes the listening socket in any loop
            if serving:
                with contextlib.suppress(Exception):
                    await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            await self._forward(head, reader, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _forward(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request_line, *headers = head.decode("latin-1").split("\r\n")[:-2]
        method, target, version = [*request_line.split(" ", 2), "", ""][:3]
        url = urlsplit(target)
        if method == "CONNECT" or url.scheme != "http" or not url.hostname:
            await _reply(writer, 501, "this proxy forwards plain http:// requests only")
            return
        try:
            local_port = self.resolve(url.hostname)
        except LookupError as error:
            await _reply(writer, 502, str(error))
            return
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        if local_port is not None:
            address, first_line = ("127.0.0.1", local_port), f"{method} {path} {version}"
        elif self.upstream is not None and self.upstream.hostname:
            address, first_line = (self.upstream.hostname, self.upstream.port or 80), request_line
        else:
            address, first_line = (url.hostname, url.port or 80), f"{method} {path} {version}"
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*address), 10)
        except (OSError, TimeoutError) as error:
            await _reply(writer, 502, f"cannot reach {url.hostname}:{url.port or 80}: {error}")
            return
        kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP]
        up_writer.write(("\r\n".join([first_line, *kept, "Connection: close", "", ""])).encode("latin-1"))
        sending = asyncio.create_task(_pipe(reader, up_writer))
        try:
            await _relay_response(up_reader, writer)
        finally:
            sending.cancel()
            up_writer.close()


async def _relay_response(up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await up_reader.readuntil(b"\r\n\r\n")
    status, *headers = head.decode("latin-1").split("\r\n")[:-2]
    kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP]
    writer.write(("\r\n".join([status, *kept, "Connection: close", "", ""])).encode("latin-1"))
    await _pipe(up_reader, writer)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()


async def _reply(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reason = {501: "Not Implemented", 502: "Bad Gateway"}[status]
    body = f"bodywork local proxy: {message}\n".encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    )
    await writer.drain()
