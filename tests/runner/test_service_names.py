"""Locally, stages reach a service by its stage name, as on Kubernetes, with ordinary HTTP clients."""

from __future__ import annotations

import asyncio
import http.server
import threading
import urllib.request
from pathlib import Path

from runner.backends.name_proxy import NameProxy
from runner.events import RunState
from tests.runner.builders import HTTP_SERVICE, batch, free_port, pipeline, service, write
from tests.runner.conftest import Harness

CLIENT = """
import json, os, sys, urllib.error, urllib.request
import httpx, requests

port = int(sys.argv[1])
print("urllib", urllib.request.urlopen(f"http://model-api:{port}/score", timeout=10).read().decode())
print("requests", requests.get(f"http://model-api:{port}/score", timeout=10).text)
with httpx.Client(timeout=10) as client:
    print("httpx", client.get(f"http://model-api.test.svc.cluster.local:{port}/").text)
    print("httpx again", client.get(f"http://model-api:{port}/").text)
try:
    urllib.request.urlopen(f"http://later-api:{port}/", timeout=10)
except urllib.error.HTTPError as error:
    print("later", error.code, error.read().decode().strip())
# Loopback addresses stay direct; any other host goes through the proxy to that host itself.
print("direct", urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode())
print("elsewhere", requests.get(f"http://127.0.0.2:{sys.argv[2]}/", timeout=10).text)
"""


def _server_on(address: str, answer: bytes) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_stage_calls_a_service_by_its_stage_name(harness: Harness, tmp_path: Path) -> None:
    port, later_port = free_port(), free_port()
    other_host = _server_on("127.0.0.2", b"other host")
    other_port = other_host.server_address[1]
    source = write(tmp_path / "repo", {
        "api.py": HTTP_SERVICE.format(answer="scored", port=port),
        "later.py": HTTP_SERVICE.format(answer="later", port=later_port),
        "client.py": CLIENT,
    })
    p = pipeline(
        "model-api >> client >> later-api",
        service("model-api", "api.py", port),
        batch("client", "client.py", args=(str(port), str(other_port)), requirements=("requests", "httpx")),
        service("later-api", "later.py", later_port),
    )

    async def scenario() -> None:
        outcome = await harness.run_async(p, source)
        await harness.backend.close()
        assert outcome.state is RunState.SUCCEEDED, (outcome.reason, harness.recorder.logs("client"))

    try:
        asyncio.run(scenario())
    finally:
        other_host.shutdown()
        other_host.server_close()
    installer = ("uv:", "installing", "environment built")
    lines = [line for line in harness.recorder.logs("client") if not line.startswith(installer)]
    assert lines == [
        "urllib scored",
        "requests scored",
        "httpx scored",
        "httpx again scored",
        "later 502 bodywork local proxy: service stage later-api of environment test is not running; a "
        "stage can call a service of an earlier step of the DAG, once that step has finished",
        "direct scored",
        "elsewhere other host",
    ]


def test_other_hosts_go_through_the_users_own_proxy_when_one_is_set() -> None:
    seen: list[str] = []

    class Upstream(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.requestline)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"via the user's proxy")

        def log_message(self, *args: object) -> None:
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()

    async def scenario() -> str:
        proxy = NameProxy(lambda host: None, f"http://127.0.0.1:{upstream.server_address[1]}")
        await proxy.start()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url}))

        def fetch() -> str:
            with opener.open("http://example.invalid/data?x=1", timeout=10) as reply:
                body: bytes = reply.read()
            return body.decode()

        try:
            return await asyncio.to_thread(fetch)
        finally:
            await proxy.close()

    try:
        assert asyncio.run(scenario()) == "via the user's proxy"
    finally:
        upstream.shutdown()
        upstream.server_close()
    assert seen == ["GET http://example.invalid/data?x=1 HTTP/1.1"]
