"""How a service stage's rollout progresses, decided from what the watches observe: a pure reducer.

The rollout succeeds when the Deployment reports every replica of the new template available and no
old pod left. It fails when a new pod crashes or can never start (with the last lines it printed), when
the Deployment controller reports it stalled, when a pod stays unschedulable (or its image pull keeps
failing) past its grace, or when ``max_startup_time_seconds`` pass first (with what each pod waits
for, and the latest Warning events). No I/O: :mod:`.services` feeds it and performs what it decides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.backends.kubernetes import status as st
from runner.backends.kubernetes.observations import LogEnd, LogText, Observation
from runner.backends.kubernetes.progress import (
    Action,
    Finished,
    FollowLog,
    Log,
    Patience,
    ReadPreviousLog,
    ReadWarnings,
    earliest,
)

Obj = dict[str, Any]

# How many of a crashed container's last lines go into the reason.
LAST_LINES = 5
# What the API server answers instead of a log the kubelet no longer has.
_NO_LOG = "unable to retrieve container logs"


@dataclass(frozen=True)
class RolloutFinished(Finished):
    problem: str | None  # None: every replica of the new version is ready


class RolloutProgress:
    """The state of one service stage's rollout: its pods, the followed log, the deadline."""

    def __init__(
        self,
        *,
        generation: int,
        replicas: int,
        limit_seconds: int,
        started: float,
        unschedulable_grace: float,
        pull_grace: float,
    ) -> None:
        self.generation = generation
        self.replicas = replicas
        self.limit_seconds = limit_seconds
        self.finished = False
        self._deadline = started + limit_seconds if limit_seconds > 0 else None
        self._pods: dict[str, Obj] = {}  # the new version's pods by uid, as last seen
        self._unschedulable = Patience(unschedulable_grace)
        self._pulls = Patience(pull_grace)
        self._following: str | None = None  # the one pod whose log is streamed
        self._recent: deque[str] = deque(maxlen=LAST_LINES)  # its last lines, for a crash reason
        self._resume: Callable[[str], list[Action]] | None = None

    def deadline(self) -> float | None:
        if self.finished:
            return None
        return earliest(self._deadline, self._unschedulable.deadline(), self._pulls.deadline())

    def observe(self, item: Observation, now: float) -> list[Action]:
        assert self._resume is None, "resume() must answer the last read first"
        if isinstance(item, LogText):
            if item.line.strip():
                self._recent.append(item.line)
            return [Log(item.line)]
        if isinstance(item, LogEnd) or item.type == "DELETED" or self.finished:
            return []
        if item.kind == "Deployment":
            if st.rollout_done(item.obj, self.generation, self.replicas):
                return self._finish(None)
            if problem := st.rollout_stalled(item.obj):
                return self._finish(problem)
            return []
        return self._pod(item.obj, now)

    def tick(self, now: float) -> list[Action]:
        if self.finished:
            return []
        if problem := self._unschedulable.expired(now) or self._pulls.expired(now):
            return self._finish(problem)
        if self._deadline is None or now < self._deadline:
            return []
        summary = "; ".join(st.pod_summary(p) for p in self._pods.values()) or "no pod was created"
        reason = f"not ready within {self.limit_seconds} s (max_startup_time_seconds): {summary}"

        def explained(warnings: str) -> list[Action]:
            return self._finish(reason + warnings)

        self._resume = explained
        return [ReadWarnings(tuple(st.name_of(p) for p in self._pods.values())[:3])]

    def resume(self, text: str) -> list[Action]:
        resume, self._resume = self._resume, None
        assert resume is not None, "nothing was read"
        return resume(text)

    # ---- pods ------------------------------------------------------------------------------------

    def _pod(self, pod: Obj, now: float) -> list[Action]:
        uid = st.uid_of(pod)
        self._pods[uid] = pod
        actions: list[Action] = []
        if self._following in (None, uid) and st.container_started(pod):
            if self._following is None:
                actions.append(FollowLog(st.name_of(pod), uid))
            self._following = uid
        stuck = st.stuck(pod)
        if stuck and st.pull_may_recover(pod) and not self._pulls.saw(uid, stuck, now):
            return actions  # the kubelet retries the pull: give it its grace
        if stuck is None:
            self._pulls.cleared(uid)
        if problem := stuck or st.crashed(pod):
            return actions + self._crashed(pod, problem)
        if problem := st.unschedulable(pod):
            if self._unschedulable.saw(uid, problem, now):
                return actions + self._finish(problem)
        else:
            self._unschedulable.cleared(uid)
        return actions

    def _crashed(self, pod: Obj, problem: str) -> list[Action]:
        """`problem`, with the last lines the container printed (as streamed, else as the kubelet kept)."""
        if self._recent:
            return self._finish(with_output(problem, list(self._recent)))

        def explained(previous_log: str) -> list[Action]:
            kept = [] if previous_log.startswith(_NO_LOG) else previous_log.splitlines()
            return self._finish(with_output(problem, [line for line in kept if line.strip()]))

        self._resume = explained
        return [ReadPreviousLog(st.name_of(pod))]

    def _finish(self, problem: str | None) -> list[Action]:
        self.finished = True
        return [RolloutFinished(problem)]


def with_output(problem: str, lines: list[str]) -> str:
    return f"{problem}; its last output: {' | '.join(lines)}" if lines else problem
