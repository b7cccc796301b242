"""Benchmark: the engine's overhead per stage, and the start time of a stage with requirements.

Prints medians over several repetitions:
1. a 20-stage DAG of no-op stages through the engine and the local backend, against starting the same
   Python processes directly one after another (target: overhead under 50 ms per stage);
2. a stage with requirements on its first run (the environment is built) and its second run (reused);
   Bodywork reinstalled the requirements on every run (target: second run under 2 s).

Run: .venv/bin/python benchmarks/bench_engine.py [--repeat N] [--requirement SPEC ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.backends.local import LocalBackend
from runner.backends.venvs import VenvCache
from runner.engine import Engine, RunRequest
from runner.events import EventBus, RunState
from runner.model import BatchSettings, Pipeline, PipelineSettings, Stage

STAGES = 20


def _stage(name: str, requirements: tuple[str, ...] = ()) -> Stage:
    return Stage(
        name=name, executable_module_path="noop.py", cpu_request=0.1, memory_request_mb=32,
        requirements=requirements, batch=BatchSettings(max_completion_time_seconds=60, retries=0),
    )


def _pipeline(stages: list[Stage]) -> Pipeline:
    """One stage per step, so stages start one after another as in the direct comparison."""
    dag = tuple((s.name,) for s in stages)
    settings = PipelineSettings(name="bench", docker_image="none", dag=dag)
    return Pipeline(version="1.1", pipeline=settings, stages={s.name: s for s in stages})


async def _run(backend: LocalBackend, pipeline: Pipeline, source: Path, bus: EventBus) -> float:
    started = time.perf_counter()
    outcome = await Engine(backend, bus).run(RunRequest(pipeline, source, "0" * 40))
    elapsed = time.perf_counter() - started
    if outcome.state is not RunState.SUCCEEDED:
        raise SystemExit(f"benchmark run failed: {outcome.reason}")
    return elapsed


def overhead(root: Path, repeat: int) -> None:
    source = root / "source"
    source.mkdir()
    (source / "noop.py").write_text("")
    backend = LocalBackend(cache_dir=root / "cache", state_dir=root / "state")
    pipeline = _pipeline([_stage(f"stage-{i}") for i in range(STAGES)])
    asyncio.run(_run(backend, pipeline, source, EventBus()))  # builds the empty environment once
    python = str(VenvCache(root / "cache" / "venvs").python_for(()))

    engine_times, direct_times = [], []
    for _ in range(repeat):
        engine_times.append(asyncio.run(_run(backend, pipeline, source, EventBus())))
        started = time.perf_counter()
        for _ in range(STAGES):
            subprocess.run([python, "noop.py"], cwd=source, check=True)
        direct_times.append(time.perf_counter() - started)

    engine, direct = statistics.median(engine_times), statistics.median(direct_times)
    per_stage = (engine - direct) / STAGES * 1000
    print(f"{STAGES}-stage DAG of no-op stages, median of {repeat} runs:")
    print(f"  through the engine:        {engine * 1000:8.1f} ms ({engine / STAGES * 1000:.1f} ms/stage)")
    print(f"  processes started directly:{direct * 1000:8.1f} ms ({direct / STAGES * 1000:.1f} ms/stage)")
    print(f"  engine overhead per stage: {per_stage:8.1f} ms (target < 50 ms)  ratio {engine / direct:.2f}x")


def requirements_start(root: Path, requirements: tuple[str, ...], repeat: int) -> None:
    source = root / "req-source"
    source.mkdir()
    (source / "noop.py").write_text("")
    pipeline = _pipeline([_stage("with-requirements", requirements)])
    firsts, seconds = [], []
    for index in range(repeat):
        cache = root / f"req-cache-{index}"  # a cold cache every time: a first run
        backend = LocalBackend(cache_dir=cache, state_dir=root / f"req-state-{index}")
        # Run start to stage end: building (or finding) the environment is part of starting the stage.
        firsts.append(asyncio.run(_run(backend, pipeline, source, EventBus())))
        seconds.append(asyncio.run(_run(backend, pipeline, source, EventBus())))
    wall = [statistics.median(firsts), statistics.median(seconds)]
    print(f"stage with requirements {', '.join(requirements)}, median of {repeat}:")
    print(f"  first run (environment built):  {wall[0]:6.2f} s  (Bodywork pays this on every run)")
    ratio = wall[0] / wall[1]
    print(f"  second run (environment reused): {wall[1]:6.2f} s  (target < 2 s)  ratio {ratio:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requirement", action="append", default=None, help="default: six==1.16.0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bodywork-bench-") as scratch:
        root = Path(scratch)
        overhead(root, args.repeat)
        requirements_start(root, tuple(args.requirement or ["six==1.16.0"]), max(1, args.repeat // 2))


if __name__ == "__main__":
    main()
