"""A small threaded HTTP server on loopback that fake SaaS APIs build on.

Each fake decides what a request means in ``handle``; this module runs the server, records every
request, and plays scripted answers (rate limits, server errors, hangs) before the fake sees a call.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    raw_path: str
    """The path as sent, still percent-encoded (``/projects/group%2Fname/...``)."""
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    """JSON-encoded unless it is ``bytes``."""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """A call the fake refused the way the real service would: the client sent something wrong."""

    request: RecordedRequest
    answer: Answer

    @property
    def status(self) -> int:
        return self.answer.status

    def __str__(self) -> str:
        body = self.answer.body if isinstance(self.answer.body, bytes) else json.dumps(self.answer.body)
        return f"{self.request.method} {self.request.raw_path} -> HTTP {self.status} {body!s}"


class _Hang:
    """A scripted answer that holds the connection open until the fake is closed."""


@dataclass(frozen=True)
class _Late:
    """A scripted delay: the call is handled (and recorded) as usual, answered `seconds` later."""

    seconds: float


class FakeApiServer:
    """Start with ``with Fake(...) as fake:``; point the client at ``fake.base_url``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host  # another address than loopback lets pods of the test cluster call the fake
        self.requests: list[RecordedRequest] = []
        self.rejected: list[Rejection] = []
        self.abandoned = 0  # requests whose body never fully arrived (their sender was killed)
        self.scripted: list[tuple[RecordedRequest, Answer]] = []
        self._script: deque[Answer | _Hang | _Late] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Scripting: the next calls get these answers, whatever they hold.

    def respond_next(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        answer = Answer(status, body if body is not None else {"message": "scripted"}, headers or {})
        with self._lock:
            self._script.extend([answer] * times)

    def fail_next(self, times: int = 1, status: int = 500) -> None:
        self.respond_next(status, {"message": "Server Error"}, times=times)

    def hang_next(self, times: int = 1) -> None:
        """The next calls get no answer until the fake closes (the client's timeout fires first)."""
        with self._lock:
            self._script.extend([_Hang()] * times)

    def answer_late_next(self, seconds: float, times: int = 1) -> None:
        """The next calls are applied, but answered only after `seconds` (past the client's timeout):
        the client cannot know whether they went through."""
        with self._lock:
            self._script.extend([_Late(seconds)] * times)

    def clear_script(self) -> None:
        """Forgets the scripted answers not played yet: the service is healthy again."""
        with self._lock:
            self._script.clear()

    # Running.

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not running: use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def do_POST(self) -> None:
                fake._dispatch(self)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that went away mid-answer (timeouts) is expected here

        self._server = Server((self.host, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    # Serving.

    def handle(self, request: RecordedRequest) -> Answer:
        raise NotImplementedError

    def unexpected_rejections(self, expected: tuple[str, ...] = ()) -> list[str]:
        """Every refused call, as text, except those whose text holds one of ``expected``."""
        with self._lock:
            refused = [str(rejection) for rejection in self.rejected]
        return [text for text in refused if not any(part in text for part in expected)]

    def reject(self, request: RecordedRequest, answer: Answer) -> Answer:
        with self._lock:
            self.rejected.append(Rejection(request, answer))
        return answer

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-body (killed): no request, as for the real API
            handler.close_connection = True
            with self._lock:
                self.abandoned += 1
            return
        request = RecordedRequest(
            method=handler.command,
            raw_path=handler.path,
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else None
        if isinstance(scripted, _Hang):
            self._released.wait()
            handler.close_connection = True
            return
        if isinstance(scripted, _Late):
            answer = self.handle(request)
            self._released.wait(scripted.seconds)
        elif scripted is not None:
            with self._lock:
                self.scripted.append((request, scripted))
            answer = scripted
        else:
            answer = self.handle(request)
        payload = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
        handler.send_response(answer.status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)


def rate_limit_headers(
    retry_after: float | None, reset_at: float | None, *, prefix: str, limit: int, used: bool = False
) -> dict[str, str]:
    """``Retry-After``; with ``reset_at``, an exhausted quota (``{prefix}Remaining: 0``) resetting then."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    if reset_at is not None:
        headers[f"{prefix}Limit"] = str(limit)
        headers[f"{prefix}Remaining"] = "0"
        if used:
            headers[f"{prefix}Used"] = str(limit)
        headers[f"{prefix}Reset"] = str(int(reset_at))
    return headers


def parse_json_object(request: RecordedRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
