"""A reverse proxy that serves the service at a path and strips it, as an Ingress with a rewrite does.

It forwards ``/ml/bodywork/runs/x`` as ``/runs/x`` (the Host header as the browser sent it) and passes
the answer back unchanged: no Location or cookie rewriting, so what the browser sees is what the
service made. Answers are streamed (the run page's server-sent events) and end with the connection.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}


class StrippingProxy:
    """``with StrippingProxy(upstream, "/ml/bodywork") as proxy``: the service at ``proxy.url``."""

    def __init__(self, upstream: str, prefix: str) -> None:
        target = urlsplit(upstream)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.forward(self)

            do_POST = do_HEAD = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.prefix = prefix
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{prefix}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            request.send_error(404, "not under the proxy's path")
            return
        length = int(request.headers.get("content-length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            connection.request(request.command, path[len(self.prefix):] or "/", body, headers)
            answer = connection.getresponse()
            request.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    request.send_header(name, value)
            request.send_header("Connection", "close")
            request.end_headers()
            request.close_connection = True
            while request.command != "HEAD" and (chunk := answer.read1(65536)):
                request.wfile.write(chunk)
                request.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (a page left while it streamed)
        finally:
            connection.close()

    def __enter__(self) -> StrippingProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)
