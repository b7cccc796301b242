"""Service stages as a Deployment, a ClusterIP Service and maybe an Ingress: apply them, follow the
rollout with :class:`.rollout_progress.RolloutProgress`, and restore what was there before when the new
version does not get ready (or the run is cancelled)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from runner.backends.base import StageError, StageJob, StageResult
from runner.backends.kubernetes import manifests as m
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.driving import Driver, shielded
from runner.backends.kubernetes.errors import KubeError
from runner.backends.kubernetes.rollout_progress import RolloutFinished, RolloutProgress
from runner.backends.kubernetes.settings import KubernetesSettings
from runner.backends.kubernetes.watching import Watcher
from runner.events import StageState

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class ServiceObjects:
    """The objects a service stage applies (built by :mod:`.workloads`)."""

    deployment: Obj
    service: Obj
    ingress: Obj | None


@dataclass
class Applied:
    """What deploying a service changed, so that a rollback can restore it."""

    name: str
    generation: int
    previous_deployment: Obj | None
    service_created: bool
    previous_service: Obj | None
    ingress_created: bool
    previous_ingress: Obj | None


async def deploy(
    api: KubeApi,
    settings: KubernetesSettings,
    job: StageJob,
    identity: m.Identity,
    namespace: str,
    objects: ServiceObjects,
) -> StageResult:
    """Applies `objects` and waits for the rollout; rolled back (with the reason) when it fails."""
    applied = await asyncio.to_thread(apply, api, identity, job.stage.name, namespace, objects)
    try:
        problem = await _await_rollout(api, settings, job, identity, namespace, applied)
    except BaseException:
        await shielded(asyncio.to_thread(roll_back, api, namespace, applied))
        raise
    if problem is None:
        return StageResult(StageState.SUCCEEDED, 1)
    restored = await asyncio.to_thread(roll_back, api, namespace, applied)
    return StageResult(StageState.ROLLED_BACK, 1, f"{problem}; {restored}")


async def _await_rollout(
    api: KubeApi,
    settings: KubernetesSettings,
    job: StageJob,
    identity: m.Identity,
    namespace: str,
    applied: Applied,
) -> str | None:
    """None when every replica of the new version is ready, else why not."""
    service = job.stage.service
    assert service is not None
    progress = RolloutProgress(
        generation=applied.generation,
        replicas=service.replicas,
        limit_seconds=service.max_startup_time_seconds,
        started=asyncio.get_running_loop().time(),
        unschedulable_grace=settings.unschedulable_grace_seconds,
        pull_grace=settings.image_pull_grace_seconds,
    )
    new_pods = {**identity.stage_selector(job.stage.name), m.RUN_ID: m.label_value(identity.run_id)}
    async with Watcher(api) as watcher:
        watcher.watch("Deployment", namespace, fields=f"metadata.name={applied.name}")
        watcher.watch("Pod", namespace, labels=new_pods)
        finished = await Driver(api, watcher, namespace, job).drive(progress)
    assert isinstance(finished, RolloutFinished)
    return finished.problem


def apply(api: KubeApi, identity: m.Identity, stage: str, namespace: str, objects: ServiceObjects) -> Applied:
    """Creates or replaces the Deployment, Service and Ingress; what was there before."""
    deployment = objects.deployment
    name = deployment["metadata"]["name"]
    existing = api.find("Deployment", name, namespace)
    if existing is not None:
        owner = (existing["metadata"].get("labels") or {}).get(m.PIPELINE)
        if owner != m.label_value(identity.pipeline):
            raise StageError(
                f"stage {stage}: Deployment {name} in namespace {namespace} belongs to "
                f"pipeline {owner or '(none)'}; rename the stage or deploy to another namespace"
            )
        deployment["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        result = api.replace("Deployment", name, deployment, namespace)
    else:
        result = api.create("Deployment", deployment, namespace)
    generation = int(result["metadata"].get("generation", 1))

    previous_service = api.find("Service", name, namespace)
    if previous_service is None:
        api.create("Service", objects.service, namespace)
    else:
        patch = {
            "metadata": {"labels": objects.service["metadata"]["labels"]},
            "spec": {
                "selector": objects.service["spec"]["selector"],
                "ports": objects.service["spec"]["ports"],
            },
        }
        api.merge_patch("Service", name, patch, namespace)

    previous_ingress = api.find("Ingress", name, namespace)
    ingress = objects.ingress
    ingress_created = False
    if ingress is not None:
        if previous_ingress is None:
            api.create("Ingress", ingress, namespace)
            ingress_created = True
        else:
            ingress["metadata"]["resourceVersion"] = previous_ingress["metadata"]["resourceVersion"]
            api.replace("Ingress", name, ingress, namespace)
    elif previous_ingress is not None and _ours(previous_ingress, identity.pipeline):
        api.delete("Ingress", name, namespace)
    return Applied(
        name=name,
        generation=generation,
        previous_deployment=existing,
        service_created=previous_service is None,
        previous_service=previous_service,
        ingress_created=ingress_created,
        previous_ingress=previous_ingress,
    )


def roll_back(api: KubeApi, namespace: str, applied: Applied) -> str:
    """Restores what deploying changed; returns what it did, for the stage's reason."""
    name = applied.name
    done: list[str] = []
    try:
        done.append(_restore_deployment(api, namespace, applied))
        if applied.service_created:
            api.delete("Service", name, namespace)
        elif applied.previous_service is not None:
            old = applied.previous_service
            patch = {
                "metadata": {"labels": old["metadata"].get("labels")},
                "spec": {"selector": old["spec"].get("selector"), "ports": old["spec"].get("ports")},
            }
            api.merge_patch("Service", name, patch, namespace)
        if applied.ingress_created:
            api.delete("Ingress", name, namespace)
        elif applied.previous_ingress is not None:
            old_ingress = applied.previous_ingress
            if api.find("Ingress", name, namespace) is None:
                api.create("Ingress", _recreatable(old_ingress), namespace)
            else:
                api.merge_patch("Ingress", name, {"spec": old_ingress["spec"]}, namespace)
    except KubeError as error:
        done.append(f"the rollback failed: {error}")
        log.error("rolling back %s/%s failed: %s", namespace, name, error)
    return "; ".join(done)


def _restore_deployment(api: KubeApi, namespace: str, applied: Applied) -> str:
    name = applied.name
    previous = applied.previous_deployment
    if previous is None:
        api.delete("Deployment", name, namespace)
        return "removed the new Deployment (there was no previous version)"
    ops: list[Obj] = [
        {"op": "replace", "path": "/spec/template", "value": previous["spec"]["template"]},
        {"op": "replace", "path": "/spec/replicas", "value": previous["spec"].get("replicas", 1)},
        {"op": "replace", "path": "/metadata/labels", "value": previous["metadata"].get("labels", {})},
    ]
    api.json_patch("Deployment", name, ops, namespace)
    commit = (previous["metadata"].get("annotations") or {}).get(m.COMMIT_ANNOTATION, "")
    annotations = {"metadata": {"annotations": {m.COMMIT_ANNOTATION: commit}}}
    api.merge_patch("Deployment", name, annotations, namespace)
    return f"rolled back to the previous version (commit {commit[:12] or 'unknown'})"


def _ours(obj: Obj, pipeline: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels.get(m.MANAGED_BY) == m.MANAGER and labels.get(m.PIPELINE) == m.label_value(pipeline)


def _recreatable(obj: Obj) -> Obj:
    metadata = {
        k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels", "annotations")
    }
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": metadata,
        "spec": obj["spec"],
    }
