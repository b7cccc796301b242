"""The service stage's rollout as a pure reducer: observed Deployment, pods and log lines in, actions out.

Table-driven and clock-free: the rollout the cluster tests show (ready, a crash with its last output,
never ready within max_startup_time_seconds) and what a test cluster cannot provoke (a rollout that
stalls at exactly its deadline, a stalled or failing ReplicaSet, an evicted replica, an image pull that
recovers, a crash whose output only the kubelet kept).
"""

from __future__ import annotations

from typing import Any

import pytest

from runner.backends.kubernetes.observations import LogText
from runner.backends.kubernetes.progress import Action, FollowLog, Log, ReadPreviousLog, ReadWarnings
from runner.backends.kubernetes.rollout_progress import RolloutFinished, RolloutProgress
from tests.kubernetes.objects import Answer, Step, Tick, deployment_update, play, pod_update

NO_CPU = "0/1 nodes are available: 1 Insufficient cpu."
PULL_FAILED = ("ErrImagePull", "failed to pull: 429 Too Many Requests")
PULL_BACKOFF = ("ImagePullBackOff", 'Back-off pulling image "x:0"')
READY = deployment_update()
STARTED = 100.0  # when the rollout began: the deadline is STARTED + limit
CRASHED = "pod pod-u1: the container exited and was restarted 1 time(s) (exit code 4, Error)"
NOT_READY = "not ready within 8 s (max_startup_time_seconds)"


def rollout(
    limit: int = 8, replicas: int = 1, unschedulable_grace: float = 0.0, pull_grace: float = 0.0
) -> RolloutProgress:
    return RolloutProgress(
        generation=2,
        replicas=replicas,
        limit_seconds=limit,
        started=STARTED,
        unschedulable_grace=unschedulable_grace,
        pull_grace=pull_grace,
    )


def done(problem: str | None = None) -> RolloutFinished:
    return RolloutFinished(problem)


CASES: list[Any] = [
    pytest.param(
        {},
        [
            (100, pod_update("u1", "Pending", type="ADDED")),
            (101, pod_update("u1", "Running", running=True)),
            (101, LogText("u1", "serving v1")),
            (102, deployment_update(observed=1)),  # the controller has not seen the new template yet
            (102, deployment_update(ready=0, available=0)),
            (103, pod_update("u1", "Running", running=True, ready=True)),
            (103, READY),
        ],
        [FollowLog("pod-u1", "u1"), Log("serving v1"), done()],
        id="every replica of the new version ready: success",
    ),
    pytest.param(
        {"replicas": 2},
        [
            (101, pod_update("u1", "Running", running=True)),
            (101, pod_update("u2", "Running", running=True)),
            (102, deployment_update(replicas=3, updated=2, ready=2, available=2)),  # an old pod remains
            (103, deployment_update(replicas=2, updated=2, ready=2, available=2)),
        ],
        [FollowLog("pod-u1", "u1"), done()],
        id="one replica's log is followed, and an old pod left means not done yet",
    ),
    pytest.param(
        {"replicas": 0},
        [(101, deployment_update(replicas=0, updated=0, ready=0, available=0))],
        [done()],
        id="zero replicas: done when none is left",
    ),
    pytest.param(
        {},
        [
            (101, pod_update("u1", "Running", running=True)),
            (101, LogText("u1", "loading the model")),
            (101, LogText("u1", " ")),
            (101, LogText("u1", "cannot load the model")),
            (102, pod_update("u1", "Running", waiting=("CrashLoopBackOff", ""), restarts=1, last_exit=4)),
        ],
        [
            FollowLog("pod-u1", "u1"),
            Log("loading the model"),
            Log(" "),
            Log("cannot load the model"),
            done(
                "pod pod-u1: CrashLoopBackOff: the container keeps crashing (exit code 4, Error); "
                "its last output: loading the model | cannot load the model"
            ),
        ],
        id="a crashing new version fails with its exit and last lines, as streamed",
    ),
    pytest.param(
        {},
        [
            (102, pod_update("u1", "Running", running=True, restarts=1, last_exit=4)),
            Answer("Traceback (most recent call last):\n\nValueError: no model\n"),
        ],
        [
            FollowLog("pod-u1", "u1"),
            ReadPreviousLog("pod-u1"),
            done(f"{CRASHED}; its last output: Traceback (most recent call last): | ValueError: no model"),
        ],
        id="a crash before any line was streamed: the last lines the kubelet kept",
    ),
    pytest.param(
        {},
        [
            (102, pod_update("u1", "Running", running=True, restarts=1, last_exit=4)),
            Answer("unable to retrieve container logs for containerd://abc"),
        ],
        [FollowLog("pod-u1", "u1"), ReadPreviousLog("pod-u1"), done(CRASHED)],
        id="a crash whose output the kubelet no longer has: the exit alone",
    ),
    pytest.param(
        {},
        [
            (101, pod_update("u1", "Running", running=True)),
            Tick(107.999),
            Tick(108),
            Answer(" (last warnings: Unhealthy: Readiness probe failed)"),
        ],
        [
            FollowLog("pod-u1", "u1"),
            ReadWarnings(("pod-u1",)),
            done(
                f"{NOT_READY}: pod pod-u1 Running, running, not ready "
                "(last warnings: Unhealthy: Readiness probe failed)"
            ),
        ],
        id="a rollout that stalls fails exactly at its deadline, with what each pod waits for",
    ),
    pytest.param(
        {},
        [(108, READY), Tick(108)],
        [done()],
        id="a rollout done exactly at its deadline succeeds",
    ),
    pytest.param(
        {},
        [Tick(108), Answer("")],
        [ReadWarnings(()), done(f"{NOT_READY}: no pod was created")],
        id="no pod at all by the deadline",
    ),
    pytest.param(
        {"limit": 0},
        [(101, pod_update("u1", "Running", running=True)), Tick(10_000)],
        [FollowLog("pod-u1", "u1")],
        id="no startup limit: waiting is no failure",
    ),
    pytest.param(
        {},
        [
            (
                105,
                deployment_update(
                    ready=0,
                    conditions=[
                        {
                            "type": "Progressing",
                            "status": "False",
                            "reason": "ProgressDeadlineExceeded",
                            "message": 'ReplicaSet "web-1" has timed out progressing.',
                        }
                    ],
                ),
            )
        ],
        [done('the rollout made no progress: ReplicaSet "web-1" has timed out progressing.')],
        id="the Deployment controller reporting the rollout stalled",
    ),
    pytest.param(
        {},
        [
            (
                101,
                deployment_update(
                    ready=0,
                    conditions=[
                        {"type": "ReplicaFailure", "status": "True", "message": 'exceeded quota: "pods"'}
                    ],
                ),
            )
        ],
        [done('pods cannot be created: exceeded quota: "pods"')],
        id="pods that cannot be created",
    ),
    pytest.param(
        {},
        [
            (101, pod_update("u1", "Running", running=True)),
            (103, pod_update("u1", "Failed", reason="Evicted", message="The node was low on memory.")),
            (104, pod_update("u2", "Running", running=True, ready=True)),
            (105, READY),
        ],
        [FollowLog("pod-u1", "u1"), done()],
        id="an evicted replica is replaced by the Deployment: no failure",
    ),
    pytest.param(
        {},
        [(101, pod_update("u1", unschedulable=NO_CPU))],
        [done(f"pod pod-u1 cannot be scheduled: {NO_CPU}")],
        id="an unschedulable pod fails at once without grace",
    ),
    pytest.param(
        {"unschedulable_grace": 5},
        [(101, pod_update("u1", unschedulable=NO_CPU)), Tick(105.9), Tick(106)],
        [done(f"pod pod-u1 cannot be scheduled: {NO_CPU}")],
        id="an unschedulable pod fails when its grace runs out, before the startup deadline",
    ),
    pytest.param(
        {"limit": 300, "pull_grace": 30},
        [
            (101, pod_update("u1", waiting=PULL_FAILED)),
            (104, pod_update("u1", waiting=PULL_BACKOFF)),
            (106, pod_update("u1", "Running", running=True, ready=True)),
            Tick(131),
            (107, READY),
        ],
        [FollowLog("pod-u1", "u1"), done()],
        id="an image pull that recovers within its grace",
    ),
    pytest.param(
        {"limit": 300, "pull_grace": 30},
        [(101, pod_update("u1", waiting=PULL_BACKOFF)), Tick(130.5), Tick(131)],
        [done(f"pod pod-u1: ImagePullBackOff: the image cannot be pulled ({PULL_BACKOFF[1]})")],
        id="an image pull still failing when its grace runs out",
    ),
    pytest.param(
        {},
        [(101, pod_update("u1", waiting=PULL_FAILED)), Answer("")],
        [
            ReadPreviousLog("pod-u1"),
            done(f"pod pod-u1: ErrImagePull: the image cannot be pulled ({PULL_FAILED[1]})"),
        ],
        id="a failing image pull fails at once without a pull grace",
    ),
    pytest.param(
        {},
        [(101, pod_update("u1", type="DELETED", restarts=3, last_exit=1)), (102, READY)],
        [done()],
        id="a deleted (old) pod is no crash",
    ),
]


@pytest.mark.parametrize(("options", "steps", "expected"), CASES)
def test_rollout_progress(options: dict[str, Any], steps: list[Step], expected: list[Action]) -> None:
    assert play(rollout(**options), steps) == expected


def test_the_deadline_is_the_earliest_of_the_limit_and_the_graces() -> None:
    progress = rollout(limit=60, unschedulable_grace=10)
    assert progress.deadline() == 160
    play(progress, [(102, pod_update("u1", unschedulable=NO_CPU))])
    assert progress.deadline() == 112
    play(progress, [(103, pod_update("u1", "Pending", waiting=("ContainerCreating", "")))])
    assert progress.deadline() == 160
    play(progress, [(104, READY)])
    assert progress.finished and progress.deadline() is None


def test_after_the_outcome_nothing_more_is_decided() -> None:
    progress = rollout()
    assert play(progress, [(101, READY)]) == [done()]
    later: list[Step] = [(102, pod_update("u1", "Running", restarts=2, last_exit=1)), Tick(500)]
    assert play(progress, later) == []
