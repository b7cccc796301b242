"""The batch stage's Job as a pure reducer: observed pods, Job and log lines in, actions out.

Table-driven and clock-free (each step carries its time), so every transition runs in microseconds:
those the cluster tests show (success, retries, the time limit, an unschedulable pod, an image that can
never be pulled, the bootstrap's early exit report) and those a test cluster cannot provoke (an evicted
pod, an image pull that recovers, a grace that runs out exactly at its deadline, the Job controller
giving up before a pod status arrives).
"""

from __future__ import annotations

from typing import Any

import pytest

from runner.backends.base import StageResult
from runner.backends.kubernetes.job_progress import JobFinished, JobProgress
from runner.backends.kubernetes.observations import LogEnd, LogText
from runner.backends.kubernetes.progress import (
    Action,
    AttemptFailed,
    AttemptStarted,
    FollowLog,
    Log,
    ReadWarnings,
)
from runner.events import StageState
from tests.kubernetes.objects import (
    Answer,
    Step,
    Tick,
    job_update,
    play,
    pod_update,
    session,
    session_exit,
)

NO_CPU = "0/1 nodes are available: 1 Insufficient cpu."
NEVER_PULL = ("ErrImageNeverPull", 'Container image "x:0" is not present with pull policy of Never')
PULL_FAILED = ("ErrImagePull", "failed to pull: 429 Too Many Requests")
PULL_BACKOFF = ("ImagePullBackOff", 'Back-off pulling image "x:0"')
EVICTED = "The node was low on resource: memory."


def progress(retries: int = 0, unschedulable_grace: float = 0.0, pull_grace: float = 0.0) -> JobProgress:
    return JobProgress(
        max_attempts=retries + 1, unschedulable_grace=unschedulable_grace, pull_grace=pull_grace
    )


def succeeded(attempts: int) -> JobFinished:
    return JobFinished(StageResult(StageState.SUCCEEDED, attempts))


def failed(attempts: int, reason: str, *, delete_job: bool = False) -> JobFinished:
    return JobFinished(StageResult(StageState.FAILED, attempts, reason), delete_job)


CASES: list[Any] = [
    pytest.param(
        {},
        [
            (0, pod_update("u1", "Pending", type="ADDED")),
            (1, pod_update("u1", "Running", running=True)),
            (1, LogText("u1", "training")),
            (3, pod_update("u1", "Succeeded", exit_code=0)),
        ],
        [FollowLog("pod-u1", "u1"), Log("training"), succeeded(1)],
        id="a pod that succeeds: its log followed once, the stage succeeded",
    ),
    pytest.param(
        {},
        [
            (1, pod_update("u1", "Running", running=True)),
            (1, session("u1")),
            (2, LogText("u1", "done")),
            (2, session_exit("u1", 0)),
        ],
        [FollowLog("pod-u1", "u1"), Log("done"), succeeded(1)],
        id="the bootstrap's exit report ends the stage before the pod status, its lines unshown",
    ),
    pytest.param(
        {},
        [
            (1, pod_update("u1", "Running", running=True)),
            (1, session("u1")),
            (2, session_exit("u1", 0, text="guessed")),
            (2, LogText("u1", "still running")),
        ],
        [FollowLog("pod-u1", "u1"), Log("still running")],
        id="a stage imitating the exit report with a wrong session is ignored",
    ),
    pytest.param(
        {},
        [
            (1, pod_update("u1", "Running", running=True)),
            (1, session("u1")),
            (2, session_exit("u1", 3)),
        ],
        [FollowLog("pod-u1", "u1")],
        id="a failure on the exit report waits for the pod status (the Job controller owns retries)",
    ),
    pytest.param(
        {"retries": 1},
        [
            (1, pod_update("u1", "Running", running=True)),
            (2, pod_update("u1", "Failed", exit_code=3)),
            (2, pod_update("u1", "Failed", exit_code=3)),  # seen again: counted once
            (12, pod_update("u2", "Pending", type="ADDED")),
            (13, pod_update("u2", "Running", running=True)),
            (14, pod_update("u2", "Failed", exit_code=3)),
        ],
        [
            FollowLog("pod-u1", "u1"),
            AttemptFailed(1, "attempt 1 of 2 failed with exit code 3, Error"),
            AttemptStarted(2),
            FollowLog("pod-u2", "u2"),
            failed(2, "attempt 2 of 2 failed with exit code 3, Error"),
        ],
        id="a failed attempt is retried in the next pod, the last failure fails the stage",
    ),
    pytest.param(
        {},
        [
            (1, pod_update("u1", "Running", running=True)),
            (5, pod_update("u1", "Failed", running=True, reason="DeadlineExceeded", deadline=4)),
        ],
        [
            FollowLog("pod-u1", "u1"),
            failed(
                1,
                "attempt 1 of 1 exceeded its time limit of 4 s (max_completion_time_seconds) and was stopped",
            ),
        ],
        id="an attempt over its time limit",
    ),
    pytest.param(
        {"retries": 1},
        [
            (1, pod_update("u1", "Running", running=True)),
            (9, pod_update("u1", "Failed", exit_code=137, reason="Evicted", message=EVICTED)),
            (10, pod_update("u2", "Running", running=True)),
            (11, pod_update("u2", "Succeeded", exit_code=0)),
        ],
        [
            FollowLog("pod-u1", "u1"),
            AttemptFailed(1, f"attempt 1 of 2 was evicted from its node ({EVICTED})"),
            AttemptStarted(2),
            FollowLog("pod-u2", "u2"),
            succeeded(2),
        ],
        id="an evicted pod is a failed attempt naming the eviction, and the retry can succeed",
    ),
    pytest.param(
        {},
        [
            (1, pod_update("u1", "Failed", reason="UnexpectedAdmissionError", message="no device")),
            Answer(" (last warnings: FailedMount: secret x not found)"),
        ],
        [
            FollowLog("pod-u1", "u1"),
            ReadWarnings(("pod-u1",)),
            failed(
                1,
                "attempt 1 of 1 failed: UnexpectedAdmissionError no device "
                "(last warnings: FailedMount: secret x not found)",
            ),
        ],
        id="a pod that failed before its container started is explained by its warning events",
    ),
    pytest.param(
        {"retries": 2},
        [
            (1, pod_update("u1", "Running", running=True)),
            (2, pod_update("u1", "Failed", exit_code=1)),
            (3, job_update("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")),
        ],
        [
            FollowLog("pod-u1", "u1"),
            AttemptFailed(1, "attempt 1 of 3 failed with exit code 1, Error"),
            failed(1, "attempt 1 of 3 failed with exit code 1, Error"),
        ],
        id="the Job controller giving up early: the last attempt's reason",
    ),
    pytest.param(
        {},
        [(3, job_update("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"))],
        [failed(1, "the Job failed: DeadlineExceeded: Job was active longer than specified deadline")],
        id="the Job failing before any pod was seen: the Job's own reason",
    ),
    pytest.param(
        {},
        [(1, pod_update("u1", "Running", running=True)), (3, job_update("Complete"))],
        [FollowLog("pod-u1", "u1"), succeeded(1)],
        id="the Job complete before its pod's status arrives",
    ),
    pytest.param(
        {},
        [(0, pod_update("u1", unschedulable=NO_CPU))],
        [failed(1, f"pod pod-u1 cannot be scheduled: {NO_CPU}", delete_job=True)],
        id="an unschedulable pod fails the stage at once without grace, and the Job is deleted",
    ),
    pytest.param(
        {"unschedulable_grace": 30},
        [
            (0, pod_update("u1", unschedulable=NO_CPU)),
            (10, pod_update("u1", unschedulable=NO_CPU)),  # seen again: the grace still runs from 0
            Tick(29.999),
            Tick(30),
        ],
        [failed(1, f"pod pod-u1 cannot be scheduled: {NO_CPU}", delete_job=True)],
        id="an unschedulable pod fails the stage exactly when its grace runs out",
    ),
    pytest.param(
        {"unschedulable_grace": 30},
        [
            (0, pod_update("u1", unschedulable=NO_CPU)),
            (20, pod_update("u1", "Pending", waiting=("ContainerCreating", ""))),
            Tick(40),
            (41, pod_update("u1", "Running", running=True)),
            (42, pod_update("u1", "Succeeded", exit_code=0)),
        ],
        [FollowLog("pod-u1", "u1"), succeeded(1)],
        id="a pod scheduled within its grace goes on",
    ),
    pytest.param(
        {"pull_grace": 60},
        [
            (0, pod_update("u1", waiting=NEVER_PULL)),
        ],
        [
            failed(
                1,
                "pod pod-u1: ErrImageNeverPull: the image is not present on the node and imagePullPolicy "
                f"forbids pulling it ({NEVER_PULL[1]})",
                delete_job=True,
            )
        ],
        id="an image that can never be pulled fails at once whatever the pull grace",
    ),
    pytest.param(
        {},
        [(0, pod_update("u1", waiting=PULL_FAILED))],
        [
            failed(
                1,
                f"pod pod-u1: ErrImagePull: the image cannot be pulled ({PULL_FAILED[1]})",
                delete_job=True,
            )
        ],
        id="a failing image pull fails at once without a pull grace",
    ),
    pytest.param(
        {"pull_grace": 60},
        [
            (0, pod_update("u1", waiting=PULL_FAILED)),
            (10, pod_update("u1", waiting=PULL_BACKOFF)),
            (25, pod_update("u1", waiting=PULL_FAILED)),
            (30, pod_update("u1", "Running", running=True)),
            Tick(60),
            (31, pod_update("u1", "Succeeded", exit_code=0)),
        ],
        [FollowLog("pod-u1", "u1"), succeeded(1)],
        id="an image pull that recovers within its grace: the stage runs",
    ),
    pytest.param(
        {"pull_grace": 60},
        [
            (0, pod_update("u1", waiting=PULL_FAILED)),
            (10, pod_update("u1", waiting=PULL_BACKOFF)),
            Tick(59.5),
            Tick(60),
        ],
        [
            failed(
                1,
                f"pod pod-u1: ImagePullBackOff: the image cannot be pulled ({PULL_BACKOFF[1]})",
                delete_job=True,
            )
        ],
        id="an image pull still failing when its grace runs out fails the stage with the latest reason",
    ),
    pytest.param(
        {},
        [
            (0, pod_update("u1", type="ADDED")),
            (0, pod_update("u1", type="DELETED", waiting=NEVER_PULL)),
            (1, job_update(None)),
        ],
        [],
        id="a deleted pod and a Job still running decide nothing",
    ),
]


@pytest.mark.parametrize(("options", "steps", "expected"), CASES)
def test_job_progress(options: dict[str, Any], steps: list[Step], expected: list[Action]) -> None:
    assert play(progress(**options), steps) == expected


def test_the_deadline_is_the_earliest_grace_and_none_once_decided() -> None:
    job = progress(unschedulable_grace=30, pull_grace=10)
    assert job.deadline() is None
    play(job, [(5, pod_update("u1", unschedulable=NO_CPU)), (7, pod_update("u2", waiting=PULL_FAILED))])
    assert job.deadline() == 17
    play(job, [(8, pod_update("u2", "Running", running=True))])
    assert job.deadline() == 35
    play(job, [Tick(35)])
    assert job.result is not None and job.deadline() is None


def test_after_the_outcome_only_the_open_logs_matter() -> None:
    job = progress()
    play(job, [(1, pod_update("u1", "Running", running=True)), (2, pod_update("u1", "Succeeded"))])
    assert job.open_logs == {"u1"}
    after = play(
        job,
        [
            (2, LogText("u1", "last words")),
            (2, session_exit("u1", 0)),
            (3, pod_update("u2", "Failed", exit_code=1)),
            Tick(1000),
            (3, LogEnd("u1")),
        ],
    )
    assert after == [Log("last words")]
    assert job.open_logs == frozenset()
    assert job.result == StageResult(StageState.SUCCEEDED, 1)


def test_a_read_must_be_answered_before_anything_else_is_observed() -> None:
    job = progress()
    assert play(job, [(1, pod_update("u1", "Failed"))])[-1] == ReadWarnings(("pod-u1",))
    with pytest.raises(AssertionError, match="resume"):
        job.observe(pod_update("u1", "Failed"), 2)
