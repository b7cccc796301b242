"""The vocabulary of the progress reducers: the actions they decide, and patience with problems that may
resolve by themselves. Pure: no I/O, no clock (the time is always passed in).

A reducer (:class:`.job_progress.JobProgress`, :class:`.rollout_progress.RolloutProgress`) takes what
the watches observed and returns actions; :mod:`.driving` performs them. An action that needs a read
from the cluster (:class:`ReadWarnings`, :class:`ReadPreviousLog`) is answered by calling the reducer's
``resume`` with the text read, before anything else is observed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runner.backends.kubernetes.observations import Observation


@dataclass(frozen=True)
class Log:
    """Show `line` in the stage's log."""

    line: str


@dataclass(frozen=True)
class FollowLog:
    """Start following the log of `pod`; its lines arrive as LogText(`key`, ...)."""

    pod: str
    key: str


@dataclass(frozen=True)
class AttemptStarted:
    attempt: int


@dataclass(frozen=True)
class AttemptFailed:
    """An attempt failed and the Job will retry."""

    attempt: int
    reason: str


@dataclass(frozen=True)
class ReadWarnings:
    """Read the Warning events of `pods`, then call ``resume`` with :func:`.status.warnings_text`."""

    pods: tuple[str, ...]


@dataclass(frozen=True)
class ReadPreviousLog:
    """Read the last lines the previous container of `pod` printed, then call ``resume`` with them."""

    pod: str


@dataclass(frozen=True)
class Finished:
    """The stage's outcome is decided: nothing more to do but drain the logs still open."""


Action = Log | FollowLog | AttemptStarted | AttemptFailed | ReadWarnings | ReadPreviousLog | Finished


class Progress(Protocol):
    """What :mod:`.driving` needs of a reducer."""

    def deadline(self) -> float | None:
        """The time at which :meth:`tick` would decide something, or None (wait for observations)."""

    def observe(self, item: Observation, now: float) -> list[Action]: ...

    def tick(self, now: float) -> list[Action]:
        """Nothing was observed until `now`."""

    def resume(self, text: str) -> list[Action]:
        """The answer to the last ReadWarnings or ReadPreviousLog."""


class Patience:
    """Pods with a problem that may resolve by itself (unschedulable, an image pull failing), each given
    `grace` seconds from when it was first seen before the problem counts."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._since: dict[str, float] = {}  # pod uid -> when its problem was first seen
        self._problems: dict[str, str] = {}  # pod uid -> its problem, as last seen

    def saw(self, uid: str, problem: str, now: float) -> bool:
        """Records the pod's `problem`; True when it counts already (no grace)."""
        self._since.setdefault(uid, now)
        self._problems[uid] = problem
        return self.grace <= 0

    def cleared(self, uid: str) -> None:
        self._since.pop(uid, None)
        self._problems.pop(uid, None)

    def deadline(self) -> float | None:
        return min(self._since.values()) + self.grace if self._since else None

    def expired(self, now: float) -> str | None:
        """The problem of a pod that has had it for `grace` seconds at `now`, or None."""
        for uid, since in self._since.items():
            if now >= since + self.grace:
                return self._problems[uid]
        return None


def earliest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None
