"""Benchmark of the GitOps service on loopback, printed side by side with a bare Starlette endpoint.

Prints, in one run:
1. p50/p99 webhook latency at an offered 200 and 500 deliveries/s, for the service and for a bare
   Starlette endpoint (reads the body, answers 202) under the same uvicorn settings and the same load
   generator, the two taking turns in one-second rounds (target: service p99 <= 3x bare p99);
2. the service's resident memory while `--webhooks` deliveries (default 20,000; the issue's figure
   is ``--webhooks 100000``, a few minutes) are sent as fast as they are answered, sampled every tenth
   (target: flat after warm-up), and whether every accepted delivery is in the store;
3. commit statuses through a status-API storm (429s, 502s, answers after the client's timeout):
   calls, retries, and duplicates the provider recorded (target: 0 duplicates);
4. with ``--extras``: webhook -> first stage latency and fetch vs clone of a 5000-commit repository.

The service (`bodywork serve`), the bare server, the Git server and the fake GitHub each run in a
process of their own; the last two stand for GitHub, which runs elsewhere, so they run at the lowest
CPU priority and what CPU they need does not count against the service.

Usage: ``.venv/bin/python benchmarks/bench_service.py [--seconds 5] [--webhooks 100000] [--extras]
[--no-fsync-commits]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service_load import (  # noqa: E402
    BARE_SERVER,
    FAKE_GITHUB,
    GitServerProcess,
    HelperProcess,
    Request,
    closed_loop,
    offered_load,
    percentile,
    rss_mb,
)

from gitops.mirrors import Mirrors  # noqa: E402
from gitops.secret import Secret  # noqa: E402
from gitops.settings import RepositorySettings  # noqa: E402
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
ROUND_SECONDS = 1.0
TOKEN = "ghp_bench_token_0123456789"


def delivery_for(sha: str) -> Request:
    """Request n: a push of `sha` to main, each body distinct (a replayed body is not a new run)."""
    payload = github_push("acme/pipelines", "refs/heads/main", ZERO, sha)

    def request(number: int) -> tuple[bytes, dict[str, str]]:
        payload["pusher"] = {"name": f"bench-{number}-{time.time_ns()}", "email": "bench@example.invalid"}
        body = json.dumps(payload).encode()
        return body, github_headers(body, SECRET, delivery=f"bench-{number}-{time.time_ns()}")

    return request


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute(sql).fetchone()[0])


def latency_table(service_port: int, bare_port: int, seconds: float, request: Request) -> int:
    """Prints p50/p99 for both servers at 200/s and 500/s; returns how many the service accepted.

    The two servers take turns in rounds of about a second (the first alternating), so that a noisy
    moment of this shared machine falls on both rather than on whichever was being measured."""
    print(f"webhook latency, open loop, {seconds:g} s per rate and server in rounds of "
          f"{ROUND_SECONDS:g} s taken in turn (service | bare Starlette):")
    columns = ("p50 svc", "p99 svc", "p50 bare", "p99 bare", "p99 ratio")
    print(f"  {'rate':>6} " + " ".join(f"{c:>9}" for c in columns) + "  answers")
    sent = accepted = 0
    rounds = max(1, round(seconds / ROUND_SECONDS))
    for rate in (200, 500):
        latencies: dict[str, list[float]] = {"service": [], "bare": []}
        answers: dict[int, int] = {}
        servers = [("service", service_port), ("bare", bare_port)]
        for turn in range(rounds):
            for name, port in servers if turn % 2 == 0 else servers[::-1]:
                load = offered_load(port, rate, seconds / rounds, request, first=10**7 + sent)
                measured, statuses, _ = asyncio.run(load)
                sent += len(measured)
                latencies[name] += measured
                if name == "service":
                    for status, number in statuses.items():
                        answers[status] = answers.get(status, 0) + number
        p50, p99 = (percentile(latencies["service"], p) * 1000 for p in (50, 99))
        b50, b99 = (percentile(latencies["bare"], p) * 1000 for p in (50, 99))
        accepted += answers.get(202, 0)
        figures = f"{p50:7.2f}ms {p99:7.2f}ms {b50:7.2f}ms {b99:7.2f}ms {p99 / b99:8.1f}x"
        print(f"  {rate:>4}/s {figures}  {answers}")
    return accepted


def served_pipeline(work: Path) -> tuple[SourceRepo, str]:
    """The repository `pipelines` under ``work/served`` (for a GitServerProcess of that folder), with
    a one-stage pipeline committed and pushed to main; the repository and that commit."""
    repo = SourceRepo(work / "served", "pipelines")
    sha = repo.commit(pipeline_files(dag="prepare"))
    repo.push()
    return repo, sha


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




def memory_run(service: ServiceProcess, pid: int, webhooks: int, request: Request) -> tuple[int, int]:
    """Sends `webhooks` deliveries in ten chunks, printing the resident memory after each; returns
    (sent, accepted)."""
    chunk = max(1, webhooks // 10)
    samples, accepted, rates = [], 0, []
    for index in range(10):
        rate, statuses = asyncio.run(closed_loop(service.port, chunk, request, first=index * chunk))
        accepted += statuses.get(202, 0)
        rates.append(rate)
        samples.append(rss_mb(pid))
    print(f"resident memory of the service over {chunk * 10:,} webhooks (closed loop, 16 clients, "
          f"{statistics.median(rates):.0f}/s median), MB after each tenth:")
    print("  " + " ".join(f"{sample:6.1f}" for sample in samples))
    print(f"  growth after the first tenth: {samples[-1] - samples[0]:+.1f} MB")
    return chunk * 10, accepted


_NOISY = ("etcd", "kube-apiserver", "kubelet", "containerd")
"""What the Kubernetes test cluster runs: left up after a test run, it competes for the two CPUs."""


def noisy_neighbours() -> list[str]:
    """The names of the test cluster's processes running on this machine (Linux; empty elsewhere)."""
    found = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:  # the process ended
            continue
        if name in _NOISY:
            found.add(name)
    return sorted(found)


def drain(service: ServiceProcess, db: Path) -> None:
    def idle() -> bool:
        runs = service.client.get("/api/runs", params={"state": "queued", "limit": 1}).json()["runs"]
        runs += service.client.get("/api/runs", params={"state": "running", "limit": 1}).json()["runs"]
        return not runs

    wait_until(idle, timeout=600, what="queued runs to drain")
    wait_until(lambda: count(db, "SELECT COUNT(*) FROM status_outbox WHERE outcome = 'pending'") == 0,
               timeout=180, what="commit statuses to be delivered")


def extras(service: ServiceProcess, repo: SourceRepo, work: Path, runs: int, commits: int) -> None:
    starts = []
    for index in range(runs):
        new = repo.commit({"note.txt": f"{index}\n"}, message=f"latency {index}")
        repo.push()
        body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, new)).encode()
        sent = time.time()
        run_id = service.client.post(
            "/webhooks/github", content=body, headers=github_headers(body, SECRET)
        ).json()["run_id"]

        def first_stage(run_id: str = run_id) -> float | None:
            started = [s["started_at"] for s in service.run(run_id)["stages"] if s["started_at"]]
            return min(started) if started else None

        starts.append(wait_until(first_stage, timeout=30, what="first stage") - sent)
        wait_until(lambda: service.run(run_id)["state"] not in ("queued", "running"), timeout=30)  # noqa: B023
    print(f"webhook -> first stage started, warm mirror ({runs} pushes of new commits):")
    print(f"  p50 {statistics.median(starts) * 1000:6.1f} ms, p90 {percentile(starts, 90) * 1000:6.1f} ms")
    fetch_benchmark(work, commits)


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per rate and server")
    parser.add_argument("--webhooks", type=int, default=20_000, help="deliveries for the memory run")
    parser.add_argument("--extras", action="store_true", help="also first-stage latency and fetch")
    parser.add_argument("--no-fsync-commits", action="store_true", help="service.fsync_commits: false")
    parser.add_argument("--latency-runs", type=int, default=15)
    parser.add_argument("--commits", type=int, default=5000)
    args = parser.parse_args()
    if neighbours := noisy_neighbours():
        print(f"note: the Kubernetes test cluster is running ({', '.join(neighbours)}); its etcd and "
              "controllers widen both servers' tails. `.venv/bin/python scripts/cluster.py down` stops it.")

    with tempfile.TemporaryDirectory(prefix="bench-service-") as folder:
        work = Path(folder)
        repo, sha = served_pipeline(work)
        helpers = [GitServerProcess(repo.bare.parent), HelperProcess(FAKE_GITHUB, TOKEN)]
        git_http, fake = helpers
        for remote in helpers:  # they stand for GitHub, which runs elsewhere: the CPU is the servers'
            os.setpriority(os.PRIO_PROCESS, remote.process.pid, 19)
        bare_port = free_port()
        helpers.append(HelperProcess(BARE_SERVER, str(bare_port)))
        config = work / "service.yaml"
        config.write_text(f"""
service:
  data_dir: {work / "data"}
  max_concurrent_runs: 4
  backend: local
  fsync_commits: {"false" if args.no_fsync_commits else "true"}
repositories:
  - url: {git_http.base_url}/pipelines.git
    provider: github
    name: acme/pipelines
    api_base: {fake.base_url}
    webhook_secret_env: BENCH_SECRET
    api_token_env: BENCH_TOKEN
    deploy_branches: [main]
""")
        service = ServiceProcess(config, free_port(), {"BENCH_SECRET": SECRET, "BENCH_TOKEN": TOKEN},
                                 work / "service.log").start()
        db = work / "data" / "store.sqlite3"
        try:
            assert service.process is not None
            pid = service.process.pid
            request = delivery_for(sha)
            _, warm, _ = asyncio.run(offered_load(service.port, 50, 2, request, first=10**8))
            asyncio.run(offered_load(bare_port, 50, 2, request, first=10**8 + 100))
            drain(service, db)
            fake.ask("storm 5 11 2")
            accepted = warm.get(202, 0) + latency_table(service.port, bare_port, args.seconds, request)
            accepted += memory_run(service, pid, args.webhooks, request)[1]
            drain(service, db)
            stored = count(db, "SELECT COUNT(*) FROM deliveries WHERE key LIKE 'github:delivery:bench-%'")
            print(f"deliveries answered 202: {accepted:,}; in the store: {stored:,} "
                  f"({'all of them' if stored == accepted else 'MISMATCH'})")
            statuses = fake.ask("count")
            assert isinstance(statuses, dict)
            print("commit statuses through a storm (5 x 429, 5 x 502, 2 answers after the timeout):")
            print(f"  calls {statuses['posts']}: accepted {statuses['accepted']}, answered by the storm "
                  f"{statuses['scripted']}, refused {statuses['refused']} (GitHub keeps 1000 statuses per "
                  f"commit and context; every run here is on one commit); status-list checks after a "
                  f"timeout {statuses['checks']}; duplicates recorded {statuses['duplicates']}")
            if args.extras:
                extras(service, repo, work, args.latency_runs, args.commits)
        finally:
            service.stop()
            for helper in helpers:
                helper.process.terminate() if helper is helpers[-1] else helper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
