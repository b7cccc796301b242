"""Benchmark: building a stage environment with numpy, pandas and scikit-learn.

Prints, side by side in one run:
1. cold: the local backend (uv) with an empty cache, against `python -m venv` then `pip install` of
   the same requirements with an empty pip cache (target: the backend at least 5x faster);
2. a new environment whose packages were downloaded before (another project with the same libraries):
   the backend with uv's download cache, against pip with its cache;
3. warm: the backend asked again for the same environment from a new cache object, as the next run
   does (target: under 0.5 s).

Downloads dominate the cold figures on a slow link: both installers fetch the same files, uv in
parallel. Row 2 shows the installers without the network.

Both installers download from the same index (PIP_INDEX_URL or PyPI). One repetition by default.
Run: .venv/bin/python benchmarks/bench_environments.py [--repeat N] [--requirement SPEC ...]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
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


def pip_build(folder: Path, pip_cache: Path, requirements: list[str]) -> float:
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", "--cache-dir", str(pip_cache),
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
    rows: dict[str, list[float]] = {k: [] for k in ("cold", "pip", "downloaded", "pip cached", "warm")}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-env-") as scratch:
            root = Path(scratch)
            rows["cold"].append(backend_build(root / "cache", requirements))
            rows["warm"].extend(backend_build(root / "cache", requirements) for _ in range(3))
            shutil.rmtree(root / "cache" / "venvs")  # uv's download cache stays
            rows["downloaded"].append(backend_build(root / "cache", requirements))
            rows["pip"].append(pip_build(root / "pip-venv", root / "pip-cache", requirements))
            rows["pip cached"].append(pip_build(root / "pip-venv", root / "pip-cache", requirements))
    cold, pip, downloaded, pip_cached, warm = (statistics.median(v) for v in rows.values())
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    print(f"environment with {', '.join(requirements)} (Python {python}), median of {args.repeat}:")
    print(f"  cold, empty caches:      backend (uv) {cold:6.2f} s   pip {pip:6.2f} s   "
          f"backend {pip / cold:4.1f}x faster (target >= 5x)")
    print(f"  packages downloaded:     backend (uv) {downloaded:6.2f} s   pip {pip_cached:6.2f} s   "
          f"backend {pip_cached / downloaded:4.1f}x faster")
    print(f"  warm, next run:          backend {warm * 1000:6.1f} ms (target < 500 ms)")


if __name__ == "__main__":
    main()
