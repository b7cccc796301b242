"""Benchmark of the GitOps service on loopback.

Prints:
1. webhook answers per second and p50/p99 latency at a fixed offered rate (default 200 deliveries/s),
   and whether every accepted delivery is in the store (target: p99 < 25 ms at 200/s);
2. the time from a webhook to the first stage started, with a warm mirror (target: p50 < 500 ms);
3. an incremental fetch vs a fresh clone of a repository with thousands of commits;
4. the service's resident memory, idle and under load (target: < 120 MB idle).

The service runs as a child process (`bodywork serve`) so the load generator does not share its
interpreter. Usage: ``.venv/bin/python benchmarks/bench_service.py [--rate 200] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gitops.mirrors import Mirrors  # noqa: E402
from gitops.secret import Secret  # noqa: E402
from gitops.settings import RepositorySettings  # noqa: E402
from gitops.store import Store  # noqa: E402
from tests.gitops.gitserver import GitHttpServer, free_port  # noqa: E402
from tests.gitops.helpers import (  # noqa: E402
    GIT_ENV,
    ZERO,
    ServiceProcess,
    SourceRepo,
    github_headers,
    github_push,
    pipeline_files,
    wait_until,
)

SECRET = "bench-webhook-secret"


class GitServerProcess:
    """The smart-HTTP Git server in a process of its own, so that its threads do not slow the load
    generator of this process down (they would share its interpreter lock)."""

    def __init__(self, root: Path) -> None:
        code = (
            "import sys, time; sys.path.insert(0, sys.argv[2]);"
            "from pathlib import Path; from tests.gitops.gitserver import GitHttpServer;"
            "server = GitHttpServer(Path(sys.argv[1])).__enter__(); print(server.base_url, flush=True);"
            "sys.stdin.read()"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(root), str(ROOT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}.git"

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class _Connection:
    """One keep-alive HTTP/1.1 connection. The load generator speaks HTTP itself: httpx's async client
    costs more CPU per request than the service does, so it would measure itself, not the service."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
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


def _delivery(sha: str, delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, sha)).encode()
    return body, github_headers(body, SECRET, delivery=delivery)


async def offered_load(
    port: int, rate: float, seconds: float, sha: str, connections: int = 32
) -> tuple[list[float], int, float]:
    """Sends deliveries at `rate` per second (open loop); returns latencies (s), accepted, duration.

    A delivery waiting for a free connection counts that wait in its latency."""
    total = int(rate * seconds)
    latencies: list[float] = []
    accepted = 0
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await _Connection.open(port))

    async def one(index: int, due: float) -> None:
        nonlocal accepted
        body, headers = _delivery(sha, f"bench-{index}-{time.time_ns()}")
        connection = await pool.get()
        status = await connection.post("/webhooks/github", body, headers)
        latencies.append(time.perf_counter() - due)
        accepted += status == 202
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
    return latencies, accepted, duration


async def closed_loop(port: int, seconds: float, sha: str, concurrency: int = 16) -> float:
    """The most deliveries per second `concurrency` clients get answered."""
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(number: int) -> None:
        nonlocal done
        connection = await _Connection.open(port)
        index = 0
        while time.perf_counter() < stop:
            body, headers = _delivery(sha, f"max-{number}-{index}-{time.time_ns()}")
            await connection.post("/webhooks/github", body, headers)
            done += 1
            index += 1
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done / (time.perf_counter() - started)


def big_repository(root: Path, commits: int) -> SourceRepo:
    """A repository with `commits` commits, written with git fast-import (seconds, not minutes)."""
    repo = SourceRepo(root, "history")
    lines = []
    for index in range(commits):
        content = f"line {index}\n" * 20
        message = f"commit {index}"
        lines.append("commit refs/heads/main")
        lines.append(f"committer Bench <bench@example.invalid> {1_700_000_000 + index} +0000")
        lines.append(f"data {len(message)}\n{message}")
        lines.append(f"M 644 inline file{index % 50}.txt")
        lines.append(f"data {len(content)}\n{content}")
        lines.append("")
    stream = ("\n".join(lines) + "\n").encode()
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo.bare, input=stream, check=True, env=GIT_ENV)
    return repo


def fetch_benchmark(work: Path, commits: int) -> None:
    served = work / "history-served"
    served.mkdir()
    repo = big_repository(served, commits)
    with GitHttpServer(served) as server:
        settings = RepositorySettings(
            url=server.url("history"), provider="github", name="acme/history",
            api_base="https://api.github.com", webhook_secret=Secret("x"),
        )
        mirrors = Mirrors(work / "fetch-mirrors")
        clone = mirrors.fetch_sync(settings)
        subprocess.run(["git", "fetch", "-q", "origin"], cwd=repo.work, env=GIT_ENV, check=True)
        subprocess.run(
            ["git", "reset", "-q", "--hard", "origin/main"], cwd=repo.work, env=GIT_ENV, check=True
        )
        repo.commit({"new.txt": "one more\n"})
        repo.push()
        incremental = mirrors.fetch_sync(settings)
        noop = mirrors.fetch_sync(settings)
    print(f"fetch, repository with {commits} commits over smart HTTP:")
    print(f"  fresh clone into an empty mirror: {clone.seconds * 1000:8.1f} ms "
          f"({clone.received_objects} objects)")
    print(f"  incremental fetch of 1 commit:    {incremental.seconds * 1000:8.1f} ms "
          f"({incremental.received_objects} objects)")
    print(f"  fetch with nothing new:           {noop.seconds * 1000:8.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency-runs", type=int, default=15)
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument(
        "--quiet-period", type=float, default=None,
        help="the service's quiet_period_seconds (default: the service's default)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-service-") as folder:
        work = Path(folder)
        served = work / "served"
        served.mkdir()
        repo = SourceRepo(served, "pipelines")
        sha = repo.commit(pipeline_files(dag="prepare"))
        repo.push()
        git_http = GitServerProcess(served)
        try:
            config = work / "service.yaml"
            quiet = "" if args.quiet_period is None else f"  quiet_period_seconds: {args.quiet_period}"
            config.write_text(f"""
service:
  data_dir: {work / "data"}
  max_concurrent_runs: 4
  backend: local
{quiet}
repositories:
  - url: {git_http.url("pipelines")}
    provider: github
    name: acme/pipelines
    webhook_secret_env: BENCH_SECRET
    deploy_branches: [main]
""")
            port = free_port()
            service = ServiceProcess(config, port, {"BENCH_SECRET": SECRET}, work / "service.log").start()
            assert service.process is not None
            pid = service.process.pid
            try:
                time.sleep(1.0)
                idle = rss_mb(pid)

                # Warm up: the mirror, the stage's venv, the connection pool.
                latencies, _, _ = asyncio.run(offered_load(port, 50, 1, sha))
                wait_until(lambda: not service.client.get("/api/runs", params={"state": "running"})
                           .json()["runs"] and not service.client.get(
                               "/api/runs", params={"state": "queued"}).json()["runs"],
                           timeout=120, what="warm-up runs to finish")

                peak = [0.0]
                sampling = threading.Event()

                def sample() -> None:
                    while not sampling.is_set():
                        peak[0] = max(peak[0], rss_mb(pid))
                        time.sleep(0.05)

                sampler = threading.Thread(target=sample)
                sampler.start()
                before = Store(work / "data" / "store.sqlite3")
                deliveries_before = before.count_deliveries()
                latencies, accepted, duration = asyncio.run(
                    offered_load(port, args.rate, args.seconds, sha)
                )
                stored = before.count_deliveries() - deliveries_before
                maximum = asyncio.run(closed_loop(port, 3, sha))
                sampling.set()
                sampler.join()
                wait_until(lambda: not service.client.get("/api/runs", params={"state": "queued"})
                           .json()["runs"], timeout=120, what="queued runs to drain")

                print(f"webhooks at an offered {args.rate:.0f}/s for {args.seconds:.0f} s:")
                print(f"  answered {len(latencies) / duration:8.1f}/s, accepted {accepted} of "
                      f"{len(latencies)}, in the store {stored} "
                      f"({'all' if stored == accepted else 'MISSING SOME'})")
                print(f"  latency p50 {percentile(latencies, 50) * 1000:6.2f} ms, "
                      f"p99 {percentile(latencies, 99) * 1000:6.2f} ms, "
                      f"max {max(latencies) * 1000:6.2f} ms")
                print(f"  closed loop, 16 clients: {maximum:8.1f} answers/s")

                starts = []
                for index in range(args.latency_runs):
                    new = repo.commit({"note.txt": f"{index}\n"}, message=f"latency {index}")
                    repo.push()
                    body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, new)).encode()
                    sent = time.time()
                    answer = service.client.post(
                        "/webhooks/github", content=body, headers=github_headers(body, SECRET)
                    )
                    run_id = answer.json()["run_id"]

                    def first_stage(run_id: str = run_id) -> float | None:
                        stages = service.run(run_id)["stages"]
                        started = [s["started_at"] for s in stages if s["started_at"]]
                        return min(started) if started else None

                    starts.append(wait_until(first_stage, timeout=30, what="first stage") - sent)
                    wait_until(
                        lambda: service.run(run_id)["state"] not in ("queued", "running"),  # noqa: B023
                        timeout=30,
                    )
                print(f"webhook -> first stage started, warm mirror ({args.latency_runs} pushes, "
                      "each a new commit that must be fetched):")
                print(f"  p50 {statistics.median(starts) * 1000:6.1f} ms, "
                      f"p90 {percentile(starts, 90) * 1000:6.1f} ms, max {max(starts) * 1000:6.1f} ms")
                print("resident memory of the service:")
                print(f"  idle after start {idle:6.1f} MB; peak under webhook load {peak[0]:6.1f} MB; "
                      f"now {rss_mb(pid):6.1f} MB")
                before.close()
            finally:
                service.stop()
        finally:
            git_http.close()
        fetch_benchmark(work, args.commits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
