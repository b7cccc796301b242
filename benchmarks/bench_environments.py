"""Benchmark: building a stage environment with numpy, pandas and scikit-learn.

Prints, side by side in one run:
1. cold: the local backend (uv) with an empty cache, against `python -m venv` then `pip install
   --no-cache-dir` of the same requirements (target: the backend at least 5x faster);
2. warm: the backend asked again for the same environment from a new cache object, as the next run
   does (target: under 0.5 s).

Both installers download from the same index (PIP_INDEX_URL or PyPI). One repetition by default.
Run: .venv/bin/python benchmarks/bench_environments.py [--repeat N] [--requirement SPEC ...]
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

from runner.backends.venvs import VenvCache

REQUIREMENTS = ["numpy", "pandas", "scikit-learn"]


def backend_build(cache_root: Path, requirements: list[str]) -> float:
    cache = VenvCache(cache_root / "venvs")
    started = time.perf_counter()
    asyncio.run(cache.ensure(requirements, lambda line: None))
    return time.perf_counter() - started


def pip_build(folder: Path, requirements: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir",
         "--disable-pip-version-check", *requirements],
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--requirement", action="append", dest="requirements")
    args = parser.parse_args()
    requirements = args.requirements or REQUIREMENTS
    cold, pip, warm = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-env-") as scratch:
            root = Path(scratch)
            cold.append(backend_build(root / "cache", requirements))
            warm.extend(backend_build(root / "cache", requirements) for _ in range(3))
            pip.append(pip_build(root / "pip-venv", requirements))
    cold_s, pip_s, warm_s = (statistics.median(x) for x in (cold, pip, warm))
    print(f"environment with {', '.join(requirements)} (Python {sys.version_info[0]}.{sys.version_info[1]}), "
          f"median of {args.repeat}:")
    print(f"  backend, cold (empty cache, uv):        {cold_s:7.2f} s")
    print(f"  pip install into a fresh venv:          {pip_s:7.2f} s   backend {pip_s / cold_s:.1f}x faster "
          "(target >= 5x)")
    print(f"  backend, warm (next run, cache hit):    {warm_s:7.3f} s   (target < 0.5 s)")


if __name__ == "__main__":
    main()
