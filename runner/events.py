"""What the engine tells the world: plain, immutable event records and a tiny fan-out bus.

Reporters (the console, the service's store, commit statuses, Slack) subscribe to a :class:`EventBus`;
adding one touches no engine code. A subscriber that raises is logged and ignored, because reporting must
never fail a pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger(__name__)


class RunState(StrEnum):
    """How a run the engine executed ended (queueing is the service's business: gitops.status)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StageState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    pipeline: str
    environment: str
    commit: str
    steps: tuple[tuple[str, ...], ...]
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class StepStarted:
    run_id: str
    index: int
    stages: tuple[str, ...]
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class StageStarted:
    run_id: str
    stage: str
    kind: str
    attempt: int
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class LogLine:
    run_id: str
    stage: str
    line: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class StageAttemptFailed:
    """One attempt of a batch stage failed and another will follow."""

    run_id: str
    stage: str
    attempt: int
    reason: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class StageFinished:
    run_id: str
    stage: str
    state: StageState
    attempts: int
    started_at: float
    reason: str = ""
    at: float = field(default_factory=_now)

    @property
    def duration(self) -> float:
        return self.at - self.started_at


@dataclass(frozen=True)
class ServiceExited:
    """A service that was ready exited; it is restarted after `restart_in` seconds (back-off)."""

    run_id: str
    stage: str
    exit_code: int
    restarts: int
    restart_in: float
    last_lines: tuple[str, ...]
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ServiceRestarted:
    """A service was started again after it exited; `ready` says whether its port answers again."""

    run_id: str
    stage: str
    restarts: int
    ready: bool
    reason: str = ""
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    state: RunState
    reason: str = ""
    at: float = field(default_factory=_now)


Event = (
    RunStarted | StepStarted | StageStarted | LogLine | StageAttemptFailed | StageFinished | RunFinished
    | ServiceExited | ServiceRestarted
)
Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers every event to every subscriber, in order, on the caller's thread."""

    def __init__(self, *subscribers: Subscriber) -> None:
        self._subscribers: list[Subscriber] = list(subscribers)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Adds `subscriber`; returns a function that removes it again."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)
