"""Pure builders of the Kubernetes objects the backend applies: plain dicts, no I/O, no client import.

Names are RFC 1123 DNS labels (at most 63 characters; a short hash keeps truncated names distinct) and
every object carries the labels in :func:`labels`, so the cluster can be listed and cleaned without the
service's store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.model import Stage, dns_label

Obj = dict[str, Any]

GROUP = "bodywork.dev"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "bodywork-gitops"
PIPELINE = f"{GROUP}/pipeline"
ENVIRONMENT = f"{GROUP}/environment"
STAGE = f"{GROUP}/stage"
RUN_ID = f"{GROUP}/run-id"
COMMIT = f"{GROUP}/commit"
ROLE = f"{GROUP}/role"  # source | bootstrap | batch | service
JOB = f"{GROUP}/job"
SECRET_GROUP = f"{GROUP}/secret-group"
SECRET_NAME = f"{GROUP}/secret-name"
COMMIT_ANNOTATION = f"{GROUP}/commit"

SERVICE_ACCOUNT = "bodywork-stage"
CONTAINER = "stage"
CODE_DIR = "/bodywork/code"
WORK_DIR = "/bodywork/work"
CACHE_DIR = "/bodywork/cache"
ARTIFACTS_DIR = "/bodywork/artifacts"
BOOTSTRAP_KEY = "bootstrap.py"
NOTEBOOK_KEY = "notebook.py"
SOURCE_KEY = "source.tar.gz"
# The bootstrap's first and last lines for a batch stage (see bootstrap.run_batch).
SESSION_PREFIX = "[bodywork] session "

_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_name(*parts: str, max_length: int = 63) -> str:
    """`parts` joined by '-' as a DNS label; when it must be cut, a hash of the whole keeps it unique."""
    full = "-".join(p for p in parts if p)
    label = dns_label(full, max_length=10_000)
    if len(label) <= max_length:
        return label
    suffix = short_hash(full)
    return f"{label[: max_length - len(suffix) - 1].rstrip('-')}-{suffix}"


def label_value(text: str) -> str:
    """`text` as a valid label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    value = _LABEL_VALUE_BAD.sub("-", text).strip("-_.")
    if len(value) > 63:
        value = f"{value[:56].rstrip('-_.')}-{short_hash(text)}"
    return value


def service_name(stage: str) -> str:
    """A Service name must start with a letter (RFC 1035); stage names may not."""
    name = dns_label(stage)
    return name if name[0].isalpha() else dns_name("s", name)


def secret_object_name(group: str, secret: str) -> str:
    """Bodywork's convention: the Secret object for secret `secret` of group `group`."""
    return dns_name(group, secret)


@dataclass(frozen=True)
class Identity:
    """Who an object belongs to: put on every object as labels."""

    pipeline: str
    environment: str
    run_id: str
    commit: str

    def labels(self, stage: str | None = None, role: str | None = None) -> dict[str, str]:
        result = {
            MANAGED_BY: MANAGER,
            PIPELINE: label_value(self.pipeline),
            ENVIRONMENT: label_value(self.environment),
            RUN_ID: label_value(self.run_id),
            COMMIT: label_value(self.commit),
        }
        if stage is not None:
            result[STAGE] = label_value(stage)
        if role is not None:
            result[ROLE] = role
        return result

    def stage_selector(self, stage: str) -> dict[str, str]:
        """Stable across runs and commits: what a Deployment and its Service select."""
        return {PIPELINE: label_value(self.pipeline), STAGE: label_value(stage)}


def namespace(name: str, identity: Identity) -> Obj:
    labels = {
        MANAGED_BY: MANAGER,
        PIPELINE: label_value(identity.pipeline),
        ENVIRONMENT: label_value(identity.environment),
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def service_account(namespace_name: str, identity: Identity) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": SERVICE_ACCOUNT,
            "namespace": namespace_name,
            "labels": {MANAGED_BY: MANAGER, PIPELINE: label_value(identity.pipeline)},
        },
        # Stage pods get no API token: a stage is user code and needs no access to the cluster.
        "automountServiceAccountToken": False,
    }


def bootstrap_config_map(namespace_name: str, files: Mapping[str, str]) -> Obj:
    """The stdlib-only bootstrap (and notebook executor) every stage pod runs; named by content."""
    digest = short_hash(json.dumps(dict(sorted(files.items()))), 10)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"bodywork-bootstrap-{digest}",
            "namespace": namespace_name,
            "labels": {MANAGED_BY: MANAGER, ROLE: "bootstrap"},
        },
        "immutable": True,
        "data": dict(files),
    }


def source_config_maps(
    namespace_name: str, identity: Identity, chunks: Sequence[str], digest: str
) -> list[Obj]:
    """The run's source archive (base64 `chunks`), one immutable ConfigMap per chunk.

    Named by pipeline, commit and content digest: a retry, a restart or a new replica of this run
    mounts exactly these bytes, whatever is pushed later.
    """
    base = dns_name(identity.pipeline, "src", identity.commit[:12], digest[:8], max_length=58)
    labels = identity.labels(role="source")
    maps = []
    for index, chunk in enumerate(chunks):
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"{base}-{index}",
                    "namespace": namespace_name,
                    "labels": labels,
                    "annotations": {COMMIT_ANNOTATION: identity.commit},
                },
                "immutable": True,
                "binaryData": {f"{SOURCE_KEY}.{index:03d}": chunk},
            }
        )
    return maps


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


def job_name(identity: Identity, stage: str) -> str:
    return dns_name(identity.pipeline, stage, identity.run_id)


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


def ingress_path(namespace_name: str, stage: str) -> str:
    """Bodywork's route: /NAMESPACE/STAGE/... reaches the service's / (nginx rewrite)."""
    return f"/{namespace_name}/{service_name(stage)}"


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


def secret(namespace_name: str, group: str, name: str, data: Mapping[str, str]) -> Obj:
    """Secret `name` of `group`; each key is the env var a stage reads it as."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_object_name(group, name),
            "namespace": namespace_name,
            "labels": {MANAGED_BY: MANAGER, SECRET_GROUP: label_value(group), SECRET_NAME: label_value(name)},
        },
        "stringData": dict(data),
    }
