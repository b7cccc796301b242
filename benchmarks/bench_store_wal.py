"""The store alone under a steady stream of pushes: WAL file size, the resident size of its mapped
index (the ``-shm`` file) and the process's RSS, with the writer's WAL restart and without it.

Usage: ``.venv/bin/python benchmarks/bench_store_wal.py [--pushes 32000]`` (Linux: reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gitops.store.writer as writer  # noqa: E402
from gitops.store import Store  # noqa: E402
from gitops.store.records import NewRun  # noqa: E402

BURST = 16  # pushes submitted together, so that they share batches as concurrent webhooks do


def resident_mb() -> tuple[float, float]:
    """(RSS of this process, resident size of its -shm mappings), in MB."""
    shm_kb, mapping = 0, ""
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            if not line.endswith(":\n") and ":" not in line.split()[0]:
                mapping = line
            elif line.startswith("Rss:") and mapping.rstrip().endswith("store.sqlite3-shm"):
                shm_kb += int(line.split()[1])
    with open("/proc/self/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return rss_kb / 1024, shm_kb / 1024


async def stream(folder: Path, pushes: int, label: str) -> None:
    store = Store(folder / "store.sqlite3")
    wal = folder / "store.sqlite3-wal"
    for first in range(0, pushes, BURST):
        futures = [
            asyncio.wrap_future(store.submit(store.accept, NewRun(
                "github:acme/app", "github", "refs/heads/main", f"{n:040x}", "production", None, False,
                "deploy", "webhook", f"delivery-{n}",
            ), [f"github:delivery:{n}"]))
            for n in range(first, first + BURST)
        ]
        await asyncio.gather(*futures)
        if (first + BURST) % (pushes // 4) == 0:
            rss, shm = resident_mb()
            print(f"  {label:>11} {first + BURST:>7,} pushes: RSS {rss:6.1f} MB, -shm resident "
                  f"{shm:5.2f} MB, WAL file {wal.stat().st_size / 2**20:6.1f} MB")
    store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=32_000)
    args = parser.parse_args()
    restart_bytes = writer._RESTART_BYTES
    for label, fill in (("restart", restart_bytes), ("no restart", 2**62)):
        writer._RESTART_BYTES = fill
        with tempfile.TemporaryDirectory(prefix="bench-store-wal-") as folder:
            asyncio.run(stream(Path(folder), args.pushes, label))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
