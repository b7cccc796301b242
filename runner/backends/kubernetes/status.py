"""Pure readings of pod, Job and Deployment status dicts: what state they are in and why. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

# Container waiting reasons that will not resolve by waiting: fail at once, with the reason.
_STUCK_WAITING = {
    "ErrImageNeverPull": "the image is not present on the node and imagePullPolicy forbids pulling it",
    "ImagePullBackOff": "the image cannot be pulled",
    "ErrImagePull": "the image cannot be pulled",
    "InvalidImageName": "the image name is invalid",
    "CreateContainerConfigError": "the container cannot be configured (a missing Secret or key?)",
    "CreateContainerError": "the container cannot be created",
    "RunContainerError": "the container cannot be started",
    "CrashLoopBackOff": "the container keeps crashing",
}
# Of those, the ones a registry hiccup (a timeout, a rate limit) causes too: the kubelet keeps retrying,
# so they are given `image_pull_grace_seconds` to recover.
_PULL_ERRORS = {"ErrImagePull", "ImagePullBackOff"}
# Warning events that say nothing about why a pod does not start.
_NOISE_EVENTS = {"MissingClusterDNS"}


def name_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", "?"))


def uid_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("uid", ""))


def phase(pod: Obj) -> str:
    return str(pod.get("status", {}).get("phase", "Pending"))


def _container_statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status", {})
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def container_started(pod: Obj) -> bool:
    """True once the container runs or ran: its log can be read from then on."""
    for container in _container_statuses(pod):
        state = container.get("state", {})
        if "running" in state or "terminated" in state or container.get("restartCount", 0) > 0:
            return True
    return False


def unschedulable(pod: Obj) -> str | None:
    """The scheduler's reason when it cannot place the pod (insufficient CPU or memory, ...)."""
    for condition in pod.get("status", {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return f"pod {name_of(pod)} cannot be scheduled: {condition.get('message', 'Unschedulable')}"
    return None


def stuck(pod: Obj) -> str | None:
    """Why the pod can never start (image, configuration, crash loop), or None."""
    for container in _container_statuses(pod):
        waiting = container.get("state", {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in _STUCK_WAITING:
            message = waiting.get("message", "")
            text = f"pod {name_of(pod)}: {reason}: {_STUCK_WAITING[reason]}"
            if reason == "CrashLoopBackOff":
                text += f" ({last_termination(container)})"
            elif message:
                text += f" ({message})"
            return text
    return None


def pull_may_recover(pod: Obj) -> bool:
    """True when what the pod waits for is an image pull that the kubelet retries (it may succeed)."""
    reasons = {
        (container.get("state", {}).get("waiting") or {}).get("reason", "")
        for container in _container_statuses(pod)
    }
    stuck_reasons = reasons & set(_STUCK_WAITING)
    return bool(stuck_reasons) and stuck_reasons <= _PULL_ERRORS


def crashed(pod: Obj) -> str | None:
    """For a service: the container exited and was restarted at least once."""
    for container in _container_statuses(pod):
        if container.get("restartCount", 0) > 0:
            return (
                f"pod {name_of(pod)}: the container exited and was restarted "
                f"{container['restartCount']} time(s) ({last_termination(container)})"
            )
    return None


def last_termination(container: Obj) -> str:
    terminated = (container.get("lastState") or {}).get("terminated") or (
        (container.get("state") or {}).get("terminated") or {}
    )
    if not terminated:
        return "no exit status yet"
    text = f"exit code {terminated.get('exitCode', '?')}"
    if terminated.get("reason"):
        text += f", {terminated['reason']}"
    if terminated.get("message"):
        text += f": {str(terminated['message']).strip()[:300]}"
    return text


def failure_reason(pod: Obj) -> str:
    """Why a pod in phase Failed failed."""
    status = pod.get("status", {})
    if status.get("reason") == "Evicted":
        return f"was evicted from its node ({status.get('message') or 'no message'})"
    if status.get("reason") == "DeadlineExceeded":
        limit = pod.get("spec", {}).get("activeDeadlineSeconds")
        return f"exceeded its time limit of {limit} s (max_completion_time_seconds) and was stopped"
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            if terminated.get("reason") == "OOMKilled":
                return "was killed for using more memory than the node allows (OOMKilled)"
            return f"failed with {last_termination(container)}"
    if status.get("reason") or status.get("message"):
        return f"failed: {status.get('reason', '')} {status.get('message', '')}".strip()
    return "failed"


@dataclass(frozen=True)
class JobOutcome:
    finished: bool
    succeeded: bool = False
    reason: str = ""


def job_outcome(job: Obj) -> JobOutcome:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobOutcome(True, True)
        if condition.get("type") == "Failed":
            reason = condition.get("reason", "Failed")
            return JobOutcome(True, False, f"{reason}: {condition.get('message', '')}".strip(": "))
    return JobOutcome(False)


def rollout_done(deployment: Obj, generation: int, replicas: int) -> bool:
    """Every replica runs the new template and is available; no old pod remains."""
    status = deployment.get("status", {})
    if int(status.get("observedGeneration", 0)) < generation:
        return False
    if replicas == 0:
        return int(status.get("replicas", 0)) == 0
    return (
        int(status.get("updatedReplicas", 0)) >= replicas
        and int(status.get("availableReplicas", 0)) >= replicas
        and int(status.get("readyReplicas", 0)) >= replicas
        and int(status.get("replicas", 0)) == replicas
    )


def rollout_stalled(deployment: Obj) -> str | None:
    for condition in deployment.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return f"the rollout made no progress: {condition.get('message', '')}"
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return f"pods cannot be created: {condition.get('message', '')}"
    return None


def pod_summary(pod: Obj) -> str:
    """One line on a pod for a timeout message: phase, readiness and what its container waits for."""
    parts = [f"pod {name_of(pod)} {phase(pod)}"]
    if reason := unschedulable(pod):
        return reason
    for container in _container_statuses(pod):
        state = container.get("state", {})
        if waiting := state.get("waiting"):
            parts.append(f"waiting: {waiting.get('reason', '')} {waiting.get('message', '')}".strip())
        elif "running" in state:
            parts.append("running, ready" if container.get("ready") else "running, not ready")
        if container.get("restartCount"):
            parts.append(f"{container['restartCount']} restart(s)")
    return ", ".join(parts)


def warnings_text(events: list[Obj]) -> str:
    """The latest two Warning `events` (sandbox, volume, probe failures) as a suffix for a reason."""
    found: list[tuple[str, str]] = []
    for event in events:
        if event.get("reason") in _NOISE_EVENTS:
            continue
        stamp = str(event.get("lastTimestamp") or event.get("eventTime") or "")
        found.append((stamp, f"{event.get('reason', '')}: {str(event.get('message', ''))[:300]}"))
    if not found:
        return ""
    latest = sorted(found)[-2:]
    return " (last warnings: " + "; ".join(text for _, text in latest) + ")"
