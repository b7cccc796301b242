"""Pure builders of the workloads: the stage pod template, and the Job, Deployment, Service and Ingress
that run and expose it. Plain dicts, no I/O, no client import.

Every stage pod runs the bootstrap from the code volume (the run's immutable ConfigMaps), as the
ServiceAccount without an API token; see docs/kubernetes.md for why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.backends.kubernetes.manifests import (
    BOOTSTRAP_KEY,
    COMMIT_ANNOTATION,
    JOB,
    SERVICE_ACCOUNT,
    Identity,
    ingress_path,
    job_name,
    secret_object_name,
    service_name,
)
from runner.model import Stage

Obj = dict[str, Any]

CONTAINER = "stage"
CODE_DIR = "/bodywork/code"
WORK_DIR = "/bodywork/work"
CACHE_DIR = "/bodywork/cache"
ARTIFACTS_DIR = "/bodywork/artifacts"


@dataclass(frozen=True)
class PodSettings:
    """What the pod template needs beyond the stage itself."""

    image: str
    image_pull_policy: str
    code_config_maps: tuple[str, ...]  # bootstrap first, then the source chunks in order
    cache_host_path: str | None
    secrets_group: str
    # The volume shared by every stage of the environment (BODYWORK_ARTIFACTS_DIR), e.g.
    # {"hostPath": {...}} or {"persistentVolumeClaim": {"claimName": ...}}; None: none.
    artifacts_volume: Obj | None = None
    gpu_resource: str = "nvidia.com/gpu"
    gpus: int = 0
    # The run's source Secret (URL, token, digest) when pods download their code from the service.
    code_secret: str | None = None


def _resources(stage: Stage, settings: PodSettings) -> Obj:
    requests: dict[str, str] = {}
    if stage.cpu_request > 0:
        requests["cpu"] = f"{stage.cpu_request:g}"
    if stage.memory_request_mb > 0:
        requests["memory"] = f"{stage.memory_request_mb}Mi"
    resources: Obj = {"requests": requests}
    if settings.gpus > 0:
        # Extended resources are requested through limits (the request then equals the limit).
        resources["limits"] = {settings.gpu_resource: str(settings.gpus)}
    return resources


def _env(stage: Stage, env: Mapping[str, str], settings: PodSettings) -> list[Obj]:
    module = stage.executable_module_path
    values = {
        **env,
        "BODYWORK_STAGE": stage.name,
        "BODYWORK_STAGE_KIND": stage.kind.value,
        "BODYWORK_MODULE": module,
        "BODYWORK_ARGS": json.dumps(list(stage.args)),
        "BODYWORK_REQUIREMENTS": json.dumps(list(stage.requirements)),
        "BODYWORK_CODE_DIR": CODE_DIR,
        "BODYWORK_WORK_DIR": WORK_DIR,
        "BODYWORK_CACHE_DIR": CACHE_DIR,
        "PYTHONUNBUFFERED": "1",
    }
    if settings.artifacts_volume is not None:
        values["BODYWORK_ARTIFACTS_DIR"] = ARTIFACTS_DIR
    result: list[Obj] = [{"name": k, "value": v} for k, v in values.items()]
    for variable, secret in stage.secrets:
        result.append(
            {
                "name": variable,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": secret_object_name(settings.secrets_group, secret),
                        "key": variable,
                    }
                },
            }
        )
    return result


def _volumes(settings: PodSettings) -> list[Obj]:
    bootstrap, *chunks = settings.code_config_maps
    sources: list[Obj] = [{"configMap": {"name": bootstrap}}]
    sources += [{"configMap": {"name": name}} for name in chunks]
    if settings.code_secret:
        sources.append({"secret": {"name": settings.code_secret}})
    cache: Obj = (
        {"hostPath": {"path": settings.cache_host_path, "type": "DirectoryOrCreate"}}
        if settings.cache_host_path
        else {"emptyDir": {}}
    )
    volumes = [
        {"name": "code", "projected": {"sources": sources}},
        {"name": "work", "emptyDir": {}},
        {"name": "cache", **cache},
    ]
    if settings.artifacts_volume is not None:
        volumes.append({"name": "artifacts", **settings.artifacts_volume})
    return volumes


def _container(stage: Stage, env: Mapping[str, str], settings: PodSettings) -> Obj:
    mounts = [
        {"name": "code", "mountPath": CODE_DIR, "readOnly": True},
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "cache", "mountPath": CACHE_DIR},
    ]
    if settings.artifacts_volume is not None:
        mounts.append({"name": "artifacts", "mountPath": ARTIFACTS_DIR})
    return {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python3", "-u", f"{CODE_DIR}/{BOOTSTRAP_KEY}"],
        "env": _env(stage, env, settings),
        "resources": _resources(stage, settings),
        "volumeMounts": mounts,
    }


def _pod_spec(stage: Stage, env: Mapping[str, str], settings: PodSettings) -> Obj:
    return {
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "containers": [_container(stage, env, settings)],
        "volumes": _volumes(settings),
    }


def job(
    namespace_name: str,
    identity: Identity,
    stage: Stage,
    env: Mapping[str, str],
    settings: PodSettings,
    *,
    ttl_seconds: int | None = 3600,
) -> Obj:
    """A batch stage: `retries` -> backoffLimit, the time limit per attempt -> activeDeadlineSeconds."""
    assert stage.batch is not None
    name = job_name(identity, stage.name)
    labels = identity.labels(stage.name, "batch")
    pod_labels = {**labels, JOB: name}
    pod_spec = {**_pod_spec(stage, env, settings), "restartPolicy": "Never"}
    if stage.batch.max_completion_time_seconds > 0:
        pod_spec["activeDeadlineSeconds"] = stage.batch.max_completion_time_seconds
    spec: Obj = {
        "backoffLimit": stage.batch.retries,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": {COMMIT_ANNOTATION: identity.commit}},
            "spec": pod_spec,
        },
    }
    if ttl_seconds is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace_name,
            "labels": labels,
            "annotations": {COMMIT_ANNOTATION: identity.commit},
        },
        "spec": spec,
    }


def deployment(
    namespace_name: str, identity: Identity, stage: Stage, env: Mapping[str, str], settings: PodSettings
) -> Obj:
    """A service stage. maxUnavailable 0: the previous version keeps answering until the new is ready."""
    assert stage.service is not None
    service = stage.service
    labels = identity.labels(stage.name, "service")
    container = _container(stage, env, settings)
    container["ports"] = [{"name": "http", "containerPort": service.port, "protocol": "TCP"}]
    container["readinessProbe"] = {
        "tcpSocket": {"port": service.port},
        "periodSeconds": 1,
        "failureThreshold": 3,
        "successThreshold": 1,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": service_name(stage.name),
            "namespace": namespace_name,
            "labels": labels,
            "annotations": {COMMIT_ANNOTATION: identity.commit},
        },
        "spec": {
            "replicas": service.replicas,
            "selector": {"matchLabels": identity.stage_selector(stage.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "progressDeadlineSeconds": max(service.max_startup_time_seconds, 1) + 60,
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": labels, "annotations": {COMMIT_ANNOTATION: identity.commit}},
                "spec": {**_pod_spec(stage, env, settings), "containers": [container]},
            },
        },
    }


def cluster_service(namespace_name: str, identity: Identity, stage: Stage) -> Obj:
    assert stage.service is not None
    port = stage.service.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(stage.name),
            "namespace": namespace_name,
            "labels": identity.labels(stage.name, "service"),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": identity.stage_selector(stage.name),
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def ingress(namespace_name: str, identity: Identity, stage: Stage, ingress_class: str) -> Obj:
    assert stage.service is not None
    name = service_name(stage.name)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace_name,
            "labels": identity.labels(stage.name, "service"),
            "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/$2"},
        },
        "spec": {
            "ingressClassName": ingress_class,
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": f"{ingress_path(namespace_name, stage.name)}(/|$)(.*)",
                                "pathType": "ImplementationSpecific",
                                "backend": {
                                    "service": {"name": name, "port": {"number": stage.service.port}}
                                },
                            }
                        ]
                    }
                }
            ],
        },
    }
