"""Builders of the pod, Job and Deployment objects the API server reports, and :func:`play` to feed a
progress reducer a script of them, for the reducers' table-driven tests.

Each gives only the fields the API server would set for that situation (as seen with kubectl get -o
json on the test cluster); a test passes what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.backends.kubernetes.manifests import SESSION_PREFIX
from runner.backends.kubernetes.observations import LogText, Observation, Update
from runner.backends.kubernetes.progress import Action, Progress

Obj = dict[str, Any]


def pod(
    uid: str = "u1",
    phase: str = "Pending",
    *,
    waiting: tuple[str, str] | None = None,
    running: bool = False,
    ready: bool = False,
    exit_code: int | None = None,
    restarts: int = 0,
    last_exit: int | None = None,
    unschedulable: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    deadline: int | None = None,
) -> Obj:
    """A pod named ``pod-<uid>`` with one container in the state the arguments describe."""
    state: Obj = {}
    if waiting is not None:
        state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
    elif running:
        state["running"] = {"startedAt": "2026-01-01T00:00:00Z"}
    elif exit_code is not None:
        state["terminated"] = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
    container: Obj = {"name": "stage", "state": state, "ready": ready, "restartCount": restarts}
    if last_exit is not None:
        container["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    status: Obj = {"phase": phase}
    if state or restarts:
        status["containerStatuses"] = [container]
    if unschedulable is not None:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        ]
    if reason is not None:
        status["reason"] = reason
    if message is not None:
        status["message"] = message
    spec: Obj = {} if deadline is None else {"activeDeadlineSeconds": deadline}
    return {"metadata": {"name": f"pod-{uid}", "uid": uid}, "spec": spec, "status": status}


def pod_update(uid: str = "u1", phase: str = "Pending", *, type: str = "MODIFIED", **kw: Any) -> Update:
    return Update("Pod", type, pod(uid, phase, **kw))


def job_update(condition: str | None = None, reason: str = "", message: str = "") -> Update:
    """The Job, with condition ``Complete`` or ``Failed`` true (or none yet)."""
    conditions = (
        [{"type": condition, "status": "True", "reason": reason, "message": message}] if condition else []
    )
    return Update("Job", "MODIFIED", {"metadata": {"name": "j"}, "status": {"conditions": conditions}})


def deployment_update(
    *,
    observed: int = 2,
    replicas: int = 1,
    updated: int = 1,
    ready: int = 1,
    available: int = 1,
    conditions: list[Obj] | None = None,
) -> Update:
    status = {
        "observedGeneration": observed,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": conditions or [],
    }
    return Update("Deployment", "MODIFIED", {"metadata": {"name": "web"}, "status": status})


def session(key: str, text: str = "s3ss10n") -> LogText:
    """The first line a batch pod's bootstrap prints."""
    return LogText(key, f"{SESSION_PREFIX}{text}")


def session_exit(key: str, code: int, text: str = "s3ss10n") -> LogText:
    """The bootstrap's report that the stage process ended with `code`."""
    return LogText(key, f"{SESSION_PREFIX}{text} exited with code {code}")


@dataclass(frozen=True)
class Tick:
    """Nothing was observed until `now` (the driver's wait for the reducer's deadline ran out)."""

    now: float


@dataclass(frozen=True)
class Answer:
    """The text the driver read for the reducer's last ReadWarnings / ReadPreviousLog."""

    text: str


Step = tuple[float, Observation] | Tick | Answer


def play(progress: Progress, steps: Sequence[Step]) -> list[Action]:
    """Feeds `steps` to `progress` in order, as the driver would; every action it decided, in order."""
    actions: list[Action] = []
    for step in steps:
        if isinstance(step, Tick):
            actions += progress.tick(step.now)
        elif isinstance(step, Answer):
            actions += progress.resume(step.text)
        else:
            now, item = step
            actions += progress.observe(item, now)
    return actions
