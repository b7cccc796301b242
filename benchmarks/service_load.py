"""Load generation for the service benchmarks: raw keep-alive HTTP/1.1 connections, an open-loop
offered rate, percentiles, resident memory, and helper servers in processes of their own.

The load generator speaks HTTP itself: httpx's async client costs more CPU per request than the
service does, so it would measure itself, not the service.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return int(head.split()[1])

    def close(self) -> None:
        self.writer.close()


Request = Callable[[int], tuple[bytes, dict[str, str]]]
"""The body and headers of the request number n."""


async def offered_load(
    port: int,
    rate: float,
    seconds: float,
    request: Request,
    first: int = 0,
    connections: int = 32,
    path: str = "/webhooks/github",
) -> tuple[list[float], dict[int, int], float]:
    """POSTs requests to `path` at `rate` per second (open loop); returns latencies (s), answers by
    status, and the duration. A request waiting for a free connection counts that wait in its latency."""
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))

    async def one(index: int, due: float) -> None:
        body, headers = request(first + index)
        connection = await pool.get()
        status = await connection.post(path, body, headers)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        pool.put_nowait(connection)

    started = time.perf_counter()
    tasks = []
    for index in range(total):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, max(due, time.perf_counter()))))
    await asyncio.gather(*tasks)
    duration = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait().close()
    return latencies, statuses, duration


async def closed_loop(
    port: int, count: int, request: Request, first: int = 0, concurrency: int = 16
) -> tuple[float, dict[int, int]]:
    """Sends `count` requests from `concurrency` clients as fast as they are answered; returns the
    rate and the answers by status."""
    numbers = iter(range(first, first + count))
    statuses: dict[int, int] = {}

    async def worker() -> None:
        connection = await Connection.open(port)
        for number in numbers:
            body, headers = request(number)
            status = await connection.post("/webhooks/github", body, headers)
            statuses[status] = statuses.get(status, 0) + 1
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started), statuses


class HelperProcess:
    """A server from the tests (Git over HTTP, the fake GitHub) in a process of its own, so that its
    threads do not slow the load generator down (they would share its interpreter lock)."""

    def __init__(self, code: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(ROOT), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()

    def ask(self, command: str) -> object:
        """Sends one line to the helper; returns the JSON line it answers."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


class GitServerProcess(HelperProcess):
    """The smart-HTTP Git server of the tests, serving the repositories under `root`."""

    def __init__(self, root: Path) -> None:
        super().__init__(GIT_SERVER, str(root))

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}.git"


GIT_SERVER = """import sys; sys.path.insert(0, sys.argv[1])
from pathlib import Path; from tests.gitops.gitserver import GitHttpServer
server = GitHttpServer(Path(sys.argv[2])).__enter__(); print(server.base_url, flush=True); sys.stdin.read()
"""

FAKE_GITHUB = """import json, sys; sys.path.insert(0, sys.argv[1])
from collections import Counter; from tests.fakes.github_api import FakeGitHub
fake = FakeGitHub(token=sys.argv[2]).__enter__(); print(fake.api_base, flush=True)
for line in sys.stdin:
    command = line.split()
    if command[0] == "storm":  # rate limits, server errors and answers after the client's timeout
        fake.rate_limit_next(int(command[1]), status=429, retry_after=1)
        fake.fail_next(int(command[1]), status=502)
        fake.answer_late_next(float(command[2]), times=int(command[3]))
        print("{}", flush=True)
    elif command[0] == "count":
        # A duplicate: the same state and description of the same run (target_url) recorded twice.
        seen = Counter((s.sha, s.context, s.state, s.description, s.target_url)
                       for group in fake.statuses.values() for s in group)
        posts = [r for r in fake.requests if r.method == "POST"]
        print(json.dumps({"accepted": sum(seen.values()), "duplicates": sum(n - 1 for n in seen.values()),
                          "posts": len(posts), "checks": len(fake.requests) - len(posts),
                          "refused": len(fake.rejected), "scripted": len(fake.scripted)}), flush=True)
"""

BARE_SERVER = """import sys; sys.path.insert(0, sys.argv[1])
import asyncio, socket
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn
from gitops.commands.serve import HeadTimeoutProtocol

async def webhook(request):
    await request.body()
    return JSONResponse({"status": "accepted", "run_id": "0" * 12}, status_code=202)

app = Starlette(routes=[Route("/webhooks/github", webhook, methods=["POST"])])
config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[2]), http=HeadTimeoutProtocol,
                        log_level="warning", access_log=False, limit_concurrency=256,
                        h11_max_incomplete_event_size=16 * 1024)
server = uvicorn.Server(config)
config.load()
sock = config.bind_socket()  # listening before the address is printed
print(f"http://127.0.0.1:{sys.argv[2]}", flush=True)
asyncio.run(server.serve(sockets=[sock]))
"""
