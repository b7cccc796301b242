"""How a batch stage's Job progresses, decided from what the watches observe: a pure reducer.

One Job per stage run, ``restartPolicy: Never`` and ``backoffLimit: retries``, so every attempt is its
own pod: a new pod is the next attempt, a Failed pod a failed attempt (the Job controller starts the
next one), a Succeeded pod the stage's success. The pod's bootstrap also reports the stage process's
exit on the log (see :func:`session_exit`), seconds before the kubelet's pod status does. Problems that
waiting cannot fix (the image can never be pulled, the container cannot be configured) end the stage at
once and ask for the Job to be deleted; an unschedulable pod or a failing image pull are given their
grace first. No I/O: :mod:`.jobs` feeds it and performs what it decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.backends.base import StageResult
from runner.backends.kubernetes import status as st
from runner.backends.kubernetes.manifests import SESSION_PREFIX
from runner.backends.kubernetes.observations import LogEnd, LogText, Observation
from runner.backends.kubernetes.progress import (
    Action,
    AttemptFailed,
    AttemptStarted,
    Finished,
    FollowLog,
    Log,
    Patience,
    ReadWarnings,
    earliest,
)
from runner.events import StageState

Obj = dict[str, Any]


@dataclass(frozen=True)
class JobFinished(Finished):
    result: StageResult
    delete_job: bool = False  # the Job would go on (a stuck or unschedulable pod): delete it


class JobProgress:
    """The state of one batch stage's Job: which pod is which attempt, which logs are open, why it failed."""

    def __init__(self, *, max_attempts: int, unschedulable_grace: float, pull_grace: float) -> None:
        self.max_attempts = max_attempts
        self.result: StageResult | None = None
        self._attempts: dict[str, int] = {}  # pod uid -> attempt number
        self._ended: set[str] = set()
        self._followed: set[str] = set()
        self._open_logs: set[str] = set()
        self._sessions: dict[str, str] = {}  # pod uid -> the session its bootstrap printed first
        self._unschedulable = Patience(unschedulable_grace)
        self._pulls = Patience(pull_grace)
        self._last_reason = ""
        self._resume: Callable[[str], list[Action]] | None = None

    @property
    def open_logs(self) -> frozenset[str]:
        """The followed logs that have not ended yet (after the outcome: the ones to drain)."""
        return frozenset(self._open_logs)

    def deadline(self) -> float | None:
        if self.result is not None:
            return None
        return earliest(self._unschedulable.deadline(), self._pulls.deadline())

    def observe(self, item: Observation, now: float) -> list[Action]:
        assert self._resume is None, "resume() must answer the last read first"
        if isinstance(item, LogText):
            return self._log_line(item)
        if isinstance(item, LogEnd):
            self._open_logs.discard(item.key)
            return []
        if self.result is not None or item.type == "DELETED":
            return []
        if item.kind == "Job":
            return self._job(item.obj)
        return self._pod(item.obj, now)

    def tick(self, now: float) -> list[Action]:
        if self.result is not None:
            return []
        problem = self._unschedulable.expired(now) or self._pulls.expired(now)
        if problem is None:
            return []
        return self._finish(StageState.FAILED, len(self._attempts), problem, delete_job=True)

    def resume(self, text: str) -> list[Action]:
        resume, self._resume = self._resume, None
        assert resume is not None, "nothing was read"
        return resume(text)

    # ---- what each observation means -----------------------------------------------------------

    def _log_line(self, item: LogText) -> list[Action]:
        if not item.line.startswith(SESSION_PREFIX):
            return [Log(item.line)]
        code = session_exit(self._sessions, item.key, item.line)
        if code is None:
            return []
        self._open_logs.discard(item.key)  # the report is the pod's last line
        if code == "0" and self.result is None:
            return self._finish(StageState.SUCCEEDED, self._attempts.get(item.key, 1))
        return []  # a failure waits for the pod status: the Job controller owns the retries

    def _job(self, job: Obj) -> list[Action]:
        outcome = st.job_outcome(job)
        if not outcome.finished:
            return []
        if outcome.succeeded:
            return self._finish(StageState.SUCCEEDED, len(self._attempts))
        reason = self._last_reason or f"the Job failed: {outcome.reason}"
        return self._finish(StageState.FAILED, len(self._attempts), reason)

    def _pod(self, pod: Obj, now: float) -> list[Action]:
        uid = st.uid_of(pod)
        actions: list[Action] = []
        if uid not in self._attempts:
            self._attempts[uid] = len(self._attempts) + 1
            if self._attempts[uid] > 1:
                actions.append(AttemptStarted(self._attempts[uid]))
        attempt = self._attempts[uid]
        phase = st.phase(pod)
        if (st.container_started(pod) or phase in ("Succeeded", "Failed")) and uid not in self._followed:
            self._followed.add(uid)
            self._open_logs.add(uid)
            actions.append(FollowLog(st.name_of(pod), uid))
        if phase == "Succeeded":
            return actions + self._finish(StageState.SUCCEEDED, attempt)
        if phase == "Failed":
            return actions + self._attempt_failed(pod, uid, attempt)
        if phase == "Pending":
            return actions + self._pending(pod, uid, attempt, now)
        self._unschedulable.cleared(uid)
        self._pulls.cleared(uid)
        return actions

    def _attempt_failed(self, pod: Obj, uid: str, attempt: int) -> list[Action]:
        if uid in self._ended:
            return []
        self._ended.add(uid)
        self._unschedulable.cleared(uid)
        self._pulls.cleared(uid)
        self._last_reason = f"attempt {attempt} of {self.max_attempts} {st.failure_reason(pod)}"
        if st.container_started(pod):
            return self._attempt_over(attempt)

        def explained(warnings: str) -> list[Action]:  # the events say why it never started
            self._last_reason += warnings
            return self._attempt_over(attempt)

        self._resume = explained
        return [ReadWarnings((st.name_of(pod),))]

    def _attempt_over(self, attempt: int) -> list[Action]:
        if attempt < self.max_attempts:
            return [AttemptFailed(attempt, self._last_reason)]
        return self._finish(StageState.FAILED, attempt, self._last_reason)

    def _pending(self, pod: Obj, uid: str, attempt: int, now: float) -> list[Action]:
        if problem := st.stuck(pod):
            if not st.pull_may_recover(pod) or self._pulls.saw(uid, problem, now):
                return self._finish(StageState.FAILED, attempt, problem, delete_job=True)
            return []
        self._pulls.cleared(uid)
        if problem := st.unschedulable(pod):
            if self._unschedulable.saw(uid, problem, now):
                return self._finish(StageState.FAILED, attempt, problem, delete_job=True)
            return []
        self._unschedulable.cleared(uid)
        return []

    def _finish(
        self, state: StageState, attempts: int, reason: str = "", *, delete_job: bool = False
    ) -> list[Action]:
        self.result = StageResult(state, max(attempts, 1), reason)
        return [JobFinished(self.result, delete_job)]


def session_exit(sessions: dict[str, str], key: str, line: str) -> str | None:
    """The exit code a pod's bootstrap reported in `line`, or None (recording the session on first sight).

    The bootstrap prints a random session before any other code runs in the pod, then, when the stage
    process ends, the same session with its exit code: seeing it on the followed log tells the outcome
    seconds before the kubelet's pod status does. A line without the right session is ignored.
    """
    rest = line[len(SESSION_PREFIX) :].strip()
    if key not in sessions:
        sessions[key] = rest
        return None
    head, _, code = rest.rpartition(" exited with code ")
    if head == sessions[key] and code.lstrip("-").isdigit():
        return code
    return None
