"""Shows a run's progress on a terminal as it happens: steps, stages, their output and timings."""

from __future__ import annotations

import sys
from typing import TextIO

from runner.events import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    RunState,
    ServiceExited,
    ServiceRestarted,
    StageAttemptFailed,
    StageFinished,
    StageStarted,
    StageState,
    StepStarted,
)

_MARKS = {
    StageState.SUCCEEDED: "done",
    StageState.FAILED: "FAILED",
    StageState.ROLLED_BACK: "ROLLED BACK",
    StageState.CANCELLED: "cancelled",
}


class ConsoleReporter:
    """An event subscriber that prints one line per event."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._steps = 0
        self._started_at = 0.0
        self._width = 0

    def __call__(self, event: Event) -> None:
        line = self._render(event)
        if line is not None:
            print(line, file=self.stream, flush=True)

    def _render(self, event: Event) -> str | None:
        match event:
            case RunStarted():
                self._steps = len(event.steps)
                self._started_at = event.at
                self._width = max((len(s) for step in event.steps for s in step), default=0)
                return (
                    f"run {event.run_id}: pipeline {event.pipeline}, commit {event.commit[:12]}, "
                    f"environment {event.environment}"
                )
            case StepStarted():
                return f"step {event.index + 1}/{self._steps}: {', '.join(event.stages)}"
            case StageStarted():
                attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
                return f"  {event.stage}: {event.kind} stage started{attempt}"
            case LogLine():
                return f"  {event.stage.ljust(self._width)} | {event.line}"
            case StageAttemptFailed():
                return f"  {event.stage}: attempt {event.attempt} failed: {event.reason}; retrying"
            case StageFinished():
                mark = _MARKS.get(event.state, event.state.value)
                reason = f": {event.reason}" if event.reason else ""
                return f"  {event.stage}: {mark} in {event.duration:.1f}s{reason}"
            case ServiceExited():
                last = "".join(f"\n  {event.stage.ljust(self._width)} ! {line}" for line in event.last_lines)
                return (
                    f"  {event.stage}: service exited with code {event.exit_code}; restart "
                    f"{event.restarts} in {event.restart_in:.0f}s; its last lines:{last}"
                )
            case ServiceRestarted():
                state = "serving again" if event.ready else f"restarted but not ready: {event.reason}"
                return f"  {event.stage}: service restarted (restart {event.restarts}), {state}"
            case RunFinished():
                elapsed = event.at - self._started_at
                if event.state is RunState.SUCCEEDED:
                    return f"run {event.run_id} succeeded in {elapsed:.1f}s"
                return f"run {event.run_id} {event.state.value} after {elapsed:.1f}s: {event.reason}"
        return None
