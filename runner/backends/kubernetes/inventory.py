"""What is deployed, read from the cluster's labels: services, secrets and deployments (a pipeline's
objects in one environment), and deleting them. Used by ``bodywork services|secrets|deployments``.

Secret values are never returned by anything here: only names, groups and keys.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.backends.kubernetes import manifests as m
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.errors import Conflict, NotFound

Obj = dict[str, Any]
_OURS = {m.MANAGED_BY: m.MANAGER}


def age(obj: Obj, now: float | None = None) -> str:
    """How long ago `obj` was created, as 45s, 12m, 5h or 3d."""
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "?"
    seconds = (now or time.time()) - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def _labels(obj: Obj) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


@dataclass(frozen=True)
class ServiceInfo:
    namespace: str
    name: str
    pipeline: str
    url: str
    ready: int
    replicas: int
    commit: str
    age: str
    ingress_path: str = ""


def list_services(api: KubeApi, namespace: str | None = None) -> list[ServiceInfo]:
    selector = {**_OURS, m.ROLE: "service"}
    deployments = api.list_objects("Deployment", namespace, labels=selector)["items"]
    services = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s
        for s in api.list_objects("Service", namespace, labels=selector)["items"]
    }
    ingresses = {
        (i["metadata"]["namespace"], i["metadata"]["name"])
        for i in api.list_objects("Ingress", namespace, labels=selector)["items"]
    }
    found = []
    for deployment in deployments:
        meta = deployment["metadata"]
        key = (meta["namespace"], meta["name"])
        service = services.get(key)
        port = service["spec"]["ports"][0]["port"] if service else None
        url = (
            f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local:{port}" if port else "(no Service)"
        )
        annotations = meta.get("annotations") or {}
        found.append(
            ServiceInfo(
                namespace=meta["namespace"],
                name=meta["name"],
                pipeline=_labels(deployment).get(m.PIPELINE, ""),
                url=url,
                ready=int(deployment.get("status", {}).get("readyReplicas", 0)),
                replicas=int(deployment["spec"].get("replicas", 0)),
                commit=annotations.get(m.COMMIT_ANNOTATION, _labels(deployment).get(m.COMMIT, "")),
                age=age(deployment),
                ingress_path=m.ingress_path(meta["namespace"], meta["name"]) if key in ingresses else "",
            )
        )
    return sorted(found, key=lambda s: (s.namespace, s.name))


def delete_service(api: KubeApi, namespace: str, name: str) -> list[str]:
    """Deletes the Deployment, Service and Ingress of service `name`; the kinds that existed."""
    deployment = api.find("Deployment", name, namespace)
    if deployment is not None and _labels(deployment).get(m.MANAGED_BY) != m.MANAGER:
        raise NotFound(
            f"Deployment {name} in namespace {namespace} is not managed by bodywork; not deleting it"
        )
    return [kind for kind in ("Ingress", "Service", "Deployment") if api.delete(kind, name, namespace)]


# ---- secrets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretInfo:
    namespace: str
    group: str
    name: str
    keys: tuple[str, ...]
    age: str


def ensure_namespace(api: KubeApi, namespace: str) -> None:
    if api.find("Namespace", namespace) is None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": _OURS}}
        with contextlib.suppress(Conflict):
            api.create("Namespace", body)


def create_secret(
    api: KubeApi, namespace: str, group: str, name: str, data: Mapping[str, str], *, replace: bool = False
) -> bool:
    """Creates (or with `replace`, replaces) the secret; True when it replaced one."""
    ensure_namespace(api, namespace)
    body = m.secret(namespace, group, name, data)
    try:
        api.create("Secret", body, namespace)
        return False
    except Conflict:
        if not replace:
            raise
    object_name = body["metadata"]["name"]
    existing = api.get("Secret", object_name, namespace)
    body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
    api.replace("Secret", object_name, body, namespace)
    return True


def list_secrets(api: KubeApi, namespace: str | None = None, group: str | None = None) -> list[SecretInfo]:
    selector: dict[str, str] = dict(_OURS)
    if group:
        selector[m.SECRET_GROUP] = m.label_value(group)
    found = []
    for secret in api.list_objects("Secret", namespace, labels=selector)["items"]:
        labels = _labels(secret)
        if m.SECRET_GROUP not in labels:
            continue
        found.append(
            SecretInfo(
                namespace=secret["metadata"]["namespace"],
                group=labels[m.SECRET_GROUP],
                name=labels.get(m.SECRET_NAME, secret["metadata"]["name"]),
                keys=tuple(sorted(secret.get("data") or {})),
                age=age(secret),
            )
        )
    return sorted(found, key=lambda s: (s.namespace, s.group, s.name))


def delete_secret(api: KubeApi, namespace: str, group: str, name: str) -> bool:
    return api.delete("Secret", m.secret_object_name(group, name), namespace)


# ---- deployments ---------------------------------------------------------------------------------


@dataclass
class DeploymentInfo:
    """A pipeline's objects in one environment (namespace)."""

    namespace: str
    pipeline: str
    services: list[str] = field(default_factory=list)
    jobs: int = 0
    commits: set[str] = field(default_factory=set)
    last_run: str = ""
    last_at: str = ""
    newest: float = 0.0


def list_deployments(api: KubeApi, namespace: str | None = None) -> list[DeploymentInfo]:
    found: dict[tuple[str, str], DeploymentInfo] = {}
    for kind in ("Deployment", "Job"):
        for obj in api.list_objects(kind, namespace, labels=_OURS)["items"]:
            labels = _labels(obj)
            key = (obj["metadata"]["namespace"], labels.get(m.PIPELINE, "?"))
            info = found.setdefault(key, DeploymentInfo(*key))
            if kind == "Deployment":
                info.services.append(obj["metadata"]["name"])
                info.commits.add(labels.get(m.COMMIT, "")[:12])
            else:
                info.jobs += 1
            created = obj["metadata"].get("creationTimestamp", "")
            stamp = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() if created else 0.0
            if stamp >= info.newest:
                info.newest, info.last_run, info.last_at = stamp, labels.get(m.RUN_ID, ""), age(obj)
                info.commits.add(labels.get(m.COMMIT, "")[:12])
    return sorted(found.values(), key=lambda d: (d.namespace, d.pipeline))


def delete_deployment(
    api: KubeApi, namespace: str, pipeline: str, *, with_namespace: bool = False
) -> dict[str, int]:
    """Deletes every object of `pipeline` in `namespace` (secrets excepted); counts per kind."""
    selector = {**_OURS, m.PIPELINE: m.label_value(pipeline)}
    deleted: dict[str, int] = {}
    for kind in m.DEPLOYMENT_KINDS:
        for obj in api.list_objects(kind, namespace, labels=selector)["items"]:
            if api.delete(kind, obj["metadata"]["name"], namespace):
                deleted[kind] = deleted.get(kind, 0) + 1
    if with_namespace and api.delete("Namespace", namespace):
        deleted["Namespace"] = 1
    return deleted
