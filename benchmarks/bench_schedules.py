"""Benchmark: 1,000 schedules registered in one service.

Prints:
1. start-up time of `bodywork serve` with N schedules in its store, until it answers /readyz and has
   armed every schedule (`firing` in GET /api/schedules), and the same with none;
2. the service's resident memory with N schedules armed, and with none;
3. the delay between the schedules' due time and their runs being queued (the run's ``created_at`` in
   the store): p50, p99 and max, when all N fire in the same minute, the worst case (target: p99 < 1 s
   at 1,000 schedules). The fires of one wake-up are written in one transaction, so their runs become
   visible together, at about the max.

Every schedule is ``* * * * *`` in its own environment, on one repository served over smart HTTP, so
all fire at the next minute boundary (the benchmark waits for it: at most a minute) and share one
fetch of the branch head. A warm-up run first clones the mirror and builds the stage's environment, as
the deploys that registered the schedules would have (it registers the deploy environment's schedule
too: N + 1 fire). The service runs as a child process. Bounded: it stops once every fire is
queued, or after --timeout seconds.

Usage: ``.venv/bin/python benchmarks/bench_schedules.py [--schedules 1000] [--timeout 120]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service_load import GitServerProcess, rss_mb  # noqa: E402  (this folder is sys.path[0])

from gitops.schedules.model import Registration, ScheduleRecord  # noqa: E402
from gitops.store import Store  # noqa: E402
from runner.schedule import ConcurrencyPolicy, Schedule  # noqa: E402
from tests.gitops.gitserver import free_port  # noqa: E402
from tests.gitops.helpers import ServiceProcess, SourceRepo, pipeline_files, wait_until  # noqa: E402

SECRET = "bench-webhook-secret"
TOKEN = "bench-api-token"
REPOSITORY = "github:acme/pipelines"


def config(data: Path, git_url: str) -> str:
    return f"""
service:
  api_token_env: BENCH_TOKEN
  data_dir: {data}
  max_concurrent_runs: 1
  backend: local
  backend_options:
    cache_dir: {data / "cache"}
repositories:
  - url: {git_url}
    provider: github
    name: acme/pipelines
    api_base: http://127.0.0.1:9/unused
    webhook_secret_env: BENCH_SECRET
    deploy_branches: [main]
"""


def register(store_path: Path, count: int) -> None:
    """`count` every-minute schedules, as deploys of `count` environments would have registered them."""
    store = Store(store_path)
    every_minute = Schedule("* * * * *", "UTC", ConcurrencyPolicy.ALLOW)
    now = time.time()
    for index in range(count):
        registration = Registration(
            f"bench-{index:04d}", REPOSITORY, "refs/heads/main", None, False, "bodywork.yaml", every_minute
        )
        store.submit(store.schedules.save, ScheduleRecord(registration, since=now))
    store.close()


def start(folder: Path, git_url: str, schedules: int) -> tuple[ServiceProcess, float]:
    """The service over a store holding `schedules` schedules; seconds until it fires them all."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    register(data / "store.sqlite3", schedules)
    path = folder / "service.yaml"
    path.write_text(config(data, git_url))
    environ = {"BENCH_SECRET": SECRET, "BENCH_TOKEN": TOKEN}
    service = ServiceProcess(path, free_port(), environ, folder / "service.log")
    began = time.perf_counter()
    service.start()

    def armed() -> bool:
        listed = service.client.get("/api/schedules").json()
        return bool(listed["firing"]) and len(listed["schedules"]) == schedules

    wait_until(armed, timeout=60, what="every schedule armed")
    return service, time.perf_counter() - began


def warm_up(service: ServiceProcess) -> None:
    """One run of the pipeline before the fires, as deploys would have done: the mirror is cloned and
    the stage's environment built, and the run has finished when the schedules fire."""
    answer = service.client.post(
        "/api/runs",
        json={"repository": "acme/pipelines", "ref": "main"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    answer.raise_for_status()
    run_id = answer.json()["run_id"]
    wait_until(lambda: service.run(run_id)["state"] == "succeeded", timeout=120, what="the warm-up run")


def delays(store_path: Path, due: float) -> tuple[list[float], int]:
    """Seconds from the due time to each run's queueing, for the fires due at `due`, and how many of
    them were not queued."""
    store = Store(store_path)
    found, other = [], 0
    for record in store.schedules.all():
        for entry in store.schedules.history(record.id):
            if entry.scheduled_for != due:
                continue
            run = store.get(entry.run_id) if entry.run_id else None
            if run is None:
                other += 1
                continue
            found.append(run.created_at - entry.scheduled_for)
    store.close()
    return found, other


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-schedules-") as tmp:
        root = Path(tmp)
        repo = SourceRepo(root / "git", "pipelines")
        files = pipeline_files(dag="prepare")
        # The runs load this bodywork.yaml: it must declare the schedule, or the first run removes it.
        files["bodywork.yaml"] = files["bodywork.yaml"].replace(
            "  DAG: prepare\n", "  DAG: prepare\n  schedule: {cron: '* * * * *', concurrency_policy: allow}\n"
        )
        repo.commit(files)
        repo.push()
        git = GitServerProcess(root / "git")
        try:
            empty, empty_start = start(root / "empty", git.url("pipelines"), 0)
            empty_rss = rss_mb(empty.process.pid) if empty.process else float("nan")
            empty.stop()
            service, full_start = start(root / "full", git.url("pipelines"), args.schedules)
            assert service.process is not None
            full_rss = rss_mb(service.process.pid)
            print(
                f"start-up until firing: {empty_start:.2f} s with no schedules, "
                f"{full_start:.2f} s with {args.schedules}"
            )
            print(
                f"resident memory: {empty_rss:.0f} MB with no schedules, {full_rss:.0f} MB with "
                f"{args.schedules} armed (+{full_rss - empty_rss:.1f} MB)"
            )
            warm_up(service)
            due = (time.time() // 60 + 1) * 60
            if due - time.time() < 5:
                due += 60  # the warm-up ends too close to a boundary: the fires come at the next
            print(f"waiting {due - time.time():.0f} s for the minute boundary, when all fire ...", flush=True)

            load = os.getloadavg()[0]

            def all_queued() -> bool:
                answer = service.client.get("/api/runs", params={"limit": 1000})
                created = [float(run["created_at"]) for run in answer.json()["runs"]]
                return sum(at >= due for at in created) >= min(int(args.schedules), 1000)

            wait_until(all_queued, timeout=args.timeout, what="every fire queued")
            peak = rss_mb(service.process.pid)
            service.stop()
        finally:
            git.close()
        measured, other = delays(root / "full" / "data" / "store.sqlite3", due)
        print(
            f"due -> queued over {len(measured)} fires ({other} not queued): "
            f"p50 {statistics.median(measured) * 1000:.0f} ms, "
            f"p99 {percentile(measured, 0.99) * 1000:.0f} ms, "
            f"max {max(measured) * 1000:.0f} ms (target: p99 < 1000 ms)"
        )
        print(
            f"resident memory after the fires: {peak:.0f} MB; load average at the fires {load:.1f} "
            f"on {os.cpu_count()} CPUs"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
