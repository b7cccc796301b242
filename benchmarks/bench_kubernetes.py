"""Latency of the Kubernetes backend on the test cluster, with examples/train-and-serve.

    .venv/bin/python benchmarks/bench_kubernetes.py [--runs 2] [--kubeconfig PATH] [--image IMAGE]

Needs a running cluster (`python scripts/cluster.py up`; its cluster.json gives the kubeconfig and the
stage image). For each run it prints, per stage:

- step start -> pod running: from the engine's StepStarted event until our own pod watch saw the stage's
  container running (includes scheduling, container creation; not requirement installs);
- pod completion -> engine noticed: from the stage's last log line reaching the engine (printed just
  before the process exits) until StageFinished; and, for comparison, when the pod's Succeeded status
  reached the API server (our own watch) relative to StageFinished: the backend reads the exit from the
  bootstrap's log line instead of waiting for the kubelet. Bodywork polled every 2 s: 1 s on average;
- and the whole pipeline's wall time. The first run installs the requirements (pip), later runs find
  them in the node cache.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.backends.kubernetes import KubernetesBackend  # noqa: E402
from runner.backends.kubernetes import manifests as m  # noqa: E402
from runner.backends.kubernetes import status as st  # noqa: E402
from runner.backends.kubernetes.api import KubeApi  # noqa: E402
from runner.backends.kubernetes.observations import Update  # noqa: E402
from runner.backends.kubernetes.watching import Watcher  # noqa: E402
from runner.config import load_pipeline  # noqa: E402
from runner.engine import Engine, RunRequest  # noqa: E402
from runner.events import Event, EventBus, LogLine, StageFinished, StepStarted  # noqa: E402

EXAMPLE = ROOT / "examples" / "train-and-serve"
CLUSTER_JSON = Path("/tmp/bodywork-test-cluster/cluster.json")


async def watch_pods(api: KubeApi, namespace: str, running: dict[str, float], done: dict[str, float]) -> None:
    """Records when each stage's container was first seen running, and its pod Succeeded."""
    async with Watcher(api) as watcher:
        watcher.watch("Pod", namespace, labels={m.MANAGED_BY: m.MANAGER})
        while True:
            item = await watcher.next()
            if not isinstance(item, Update):
                continue
            stage = (item.obj["metadata"].get("labels") or {}).get(m.STAGE, "?")
            now = time.time()
            statuses = item.obj.get("status", {}).get("containerStatuses") or []
            if (
                any("running" in (c.get("state") or {}) for c in statuses)
                or st.phase(item.obj) == "Succeeded"
            ):
                running.setdefault(stage, now)
            if st.phase(item.obj) == "Succeeded":
                done.setdefault(stage, now)


async def one_run(kubeconfig: str, image: str, index: int, cache: str | None) -> dict[str, object]:
    namespace = f"bw-bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as scratch:
        source = shutil.copytree(EXAMPLE, Path(scratch) / "train-and-serve")
        pipeline = load_pipeline(source)
        events: list[Event] = []
        options: dict[str, Any] = {"cache_host_path": cache} if cache else {}
        backend = KubernetesBackend(kubeconfig=kubeconfig, images={"*": image}, **options)
        api = KubeApi(kubeconfig=kubeconfig)
        running: dict[str, float] = {}
        succeeded: dict[str, float] = {}
        watcher = asyncio.create_task(watch_pods(api, namespace, running, succeeded))
        try:
            started = time.time()
            engine = Engine(backend, EventBus(events.append))
            outcome = await engine.run(RunRequest(pipeline, source, f"{index:040d}", environment=namespace))
            wall = time.time() - started
        finally:
            watcher.cancel()
            await backend.close()
            api.delete("Namespace", namespace)
            api.close()
        if not outcome.succeeded:
            raise SystemExit(f"run {index} failed: {outcome.reason}")
    step_start = {s: e.at for e in events if isinstance(e, StepStarted) for s in e.stages}
    finished = {e.stage: e.at for e in events if isinstance(e, StageFinished)}
    last_line: dict[str, float] = {}
    for e in events:
        if isinstance(e, LogLine):
            last_line[e.stage] = e.at
    stages: dict[str, dict[str, float]] = {}
    for stage in (s for step in pipeline.steps for s in step):
        figures = {"to_running": running.get(stage, float("nan")) - step_start[stage]}
        if pipeline.stage(stage).batch is not None:
            figures["notice_after_last_line"] = finished[stage] - last_line[stage]
            figures["api_status_lag"] = succeeded.get(stage, float("nan")) - finished[stage]
        figures["stage_total"] = finished[stage] - step_start[stage]
        stages[stage] = figures
    return {"wall": wall, "stages": stages}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--image")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--cold", action="store_true", help="start with an empty requirements cache (the first run installs)"
    )
    args = parser.parse_args()
    info = json.loads(CLUSTER_JSON.read_text()) if CLUSTER_JSON.exists() else {}
    kubeconfig = args.kubeconfig or info.get("kubeconfig")
    image = args.image or info.get("stage_image")
    if not kubeconfig or not image:
        raise SystemExit("no cluster: run `python scripts/cluster.py up` or pass --kubeconfig and --image")
    cache = f"/var/cache/bodywork-bench-{uuid.uuid4().hex[:8]}" if args.cold else None
    results = []
    for index in range(1, args.runs + 1):
        result = asyncio.run(one_run(kubeconfig, image, index, cache))
        results.append(result)
        print(f"run {index}: whole pipeline {result['wall']:.1f} s")
        stages = result["stages"]
        assert isinstance(stages, dict)
        for stage, figures in stages.items():
            parts = [f"step start -> pod running {figures['to_running']:.2f} s"]
            if "notice_after_last_line" in figures:
                parts.append(f"pod done -> engine noticed {figures['notice_after_last_line']:.2f} s")
                parts.append(
                    f"(the pod's Succeeded status reached the API {figures['api_status_lag']:+.2f} s later)"
                )
            parts.append(f"stage total {figures['stage_total']:.1f} s")
            print(f"  {stage:<16} " + ", ".join(parts))
    notices = [
        f["notice_after_last_line"]
        for r in results
        for f in r["stages"].values()  # type: ignore[attr-defined]
        if "notice_after_last_line" in f
    ]
    if notices:
        print(
            f"pod completion -> engine noticed: median {statistics.median(notices):.2f} s, "
            f"max {max(notices):.2f} s over {len(notices)} batch stages "
            "(target < 1 s; Bodywork polled every 2 s)"
        )
    if cache and Path(cache).is_dir():  # the single-node test cluster's node is this machine
        shutil.rmtree(cache, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
