"""The watch/log bridge against a small HTTP server on loopback that streams like the API server does
(chunked responses held open): lines arrive while the stream is still open, a 410 leads to a new list,
and closing the watcher unblocks its threads at once. The real-cluster tests cover the real server."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.observations import LogEnd, LogText, Update
from runner.backends.kubernetes.watching import Watcher
from tests.kubernetes.conftest import loopback_kubeconfig


class StreamingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.release = threading.Event()
        self.lists = 0
        self.watches = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StreamingServer

    def chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path.endswith("/log"):
            self.start_stream()
            self.chunk("first line\nsecond ")
            self.server.release.wait(10)
            self.chunk("line\n")
            self.end_stream()
            return
        if "watch" not in query:
            self.server.lists += 1
            pod = {"metadata": {"name": "p", "uid": "u1", "resourceVersion": "5"}, "status": {}}
            body = json.dumps({"metadata": {"resourceVersion": "5"}, "items": [pod]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.server.watches += 1
        self.start_stream()
        if self.server.watches == 1:
            modified = {
                "metadata": {"name": "p", "uid": "u1", "resourceVersion": "6"},
                "status": {"phase": "Running"},
            }
            self.chunk(json.dumps({"type": "MODIFIED", "object": modified}) + "\n")
            gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
            self.chunk(json.dumps({"type": "ERROR", "object": gone}) + "\n")
            self.end_stream()
            return
        self.server.release.wait(10)  # held open, like a quiet watch
        self.end_stream()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[StreamingServer]:
    server = StreamingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(server: StreamingServer, tmp_path: Path) -> Iterator[KubeApi]:
    client = KubeApi(kubeconfig=str(loopback_kubeconfig(tmp_path, server.server_address[1])))
    yield client
    client.close()


@pytest.mark.timeout(30)
def test_log_lines_arrive_while_the_stream_is_still_open(server: StreamingServer, api: KubeApi) -> None:
    async def scenario() -> list[object]:
        async with Watcher(api) as watcher:
            watcher.follow_log("ns", "p", "k")
            first = await watcher.next(5)
            assert not server.release.is_set()  # the server still holds the rest back
            server.release.set()
            return [first, await watcher.next(5), await watcher.next(5)]

    assert asyncio.run(scenario()) == [LogText("k", "first line"), LogText("k", "second line"), LogEnd("k")]


@pytest.mark.timeout(30)
def test_a_watch_lists_then_follows_and_lists_again_after_410(server: StreamingServer, api: KubeApi) -> None:
    async def scenario() -> tuple[list[tuple[str, str]], float]:
        seen: list[tuple[str, str]] = []
        async with Watcher(api) as watcher:
            watcher.watch("Pod", "ns", labels={"a": "b"})
            while len(seen) < 3:
                item = await watcher.next(5)
                assert isinstance(item, Update), item
                seen.append((item.type, item.obj["status"].get("phase", "-")))
            started = time.monotonic()
        return seen, time.monotonic() - started

    seen, closing = asyncio.run(scenario())
    assert seen == [("ADDED", "-"), ("MODIFIED", "Running"), ("ADDED", "-")]  # the relist after 410
    assert server.lists == 2
    assert closing < 1.0
