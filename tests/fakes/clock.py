"""Fake time for retry and pacing tests: ``sleep`` returns at once and moves the clock on."""

from __future__ import annotations

import asyncio


class FakeTime:
    """One clock for both monotonic and wall time, starting at a fixed epoch."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)
