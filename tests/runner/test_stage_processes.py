"""Stage processes are started off the event loop; one whose caller has gone never runs on unwatched."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest

from runner.backends.processes import StageProcess


def _processes_marked(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"TEST_MARKER={marker}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_stage_whose_start_is_cancelled_is_stopped(tmp_path: Path) -> None:
    # A run cancelled while its stage is being started: the stage must not go on running unwatched.
    marker = uuid.uuid4().hex
    env = {"PATH": os.environ["PATH"], "TEST_MARKER": marker}

    async def cancel_while_starting() -> None:
        argv = [sys.executable, "-c", "import time; time.sleep(60)"]
        start = asyncio.create_task(StageProcess.start(argv, tmp_path, env, lambda line: None))
        await asyncio.sleep(0)  # the start is under way in the spawner thread
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
        for _ in range(50):
            await asyncio.sleep(0.1)
            if not _processes_marked(marker):
                return

    asyncio.run(cancel_while_starting())
    assert _processes_marked(marker) == []


def test_output_and_exit_code_arrive_without_blocking_the_loop(tmp_path: Path) -> None:
    lines: list[str] = []

    async def run() -> tuple[int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        code = "import time; print('one'); time.sleep(0.3); print('two'); raise SystemExit(3)"
        process = await StageProcess.start([sys.executable, "-c", code], tmp_path, dict(os.environ),
                                           lines.append)
        exit_code = await process.wait(timeout=10)
        ticker.cancel()
        return exit_code, ticks

    exit_code, ticks = asyncio.run(run())
    assert exit_code == 3
    assert lines == ["one", "two"]
    assert ticks > 5  # the loop went on while the stage ran
