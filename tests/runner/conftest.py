from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from runner.backends.local import LocalBackend
from runner.engine import Engine, RunOutcome, RunRequest
from runner.events import Event, EventBus, LogLine, StageFinished
from runner.model import Pipeline

E = TypeVar("E", bound=Event)


@pytest.fixture(scope="session")
def venv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def logs(self, stage: str) -> list[str]:
        return [e.line for e in self.of(LogLine) if e.stage == stage]

    def finished(self, stage: str) -> StageFinished:
        (event,) = [e for e in self.of(StageFinished) if e.stage == stage]
        return event


@dataclass
class Harness:
    backend: LocalBackend
    recorder: Recorder

    def run(self, pipeline: Pipeline, source: Path, commit: str = "a" * 40) -> RunOutcome:
        return asyncio.run(self.run_async(pipeline, source, commit))

    async def run_async(self, pipeline: Pipeline, source: Path, commit: str = "a" * 40) -> RunOutcome:
        engine = Engine(self.backend, EventBus(self.recorder))
        return await engine.run(RunRequest(pipeline, source, commit))


@pytest.fixture
def harness(tmp_path: Path, venv_cache: Path) -> Iterator[Harness]:
    backend = LocalBackend(cache_dir=venv_cache, state_dir=tmp_path / "state")
    yield Harness(backend, Recorder())
    asyncio.run(backend.close())
