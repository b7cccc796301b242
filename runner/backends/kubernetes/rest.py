"""The API server's REST conventions, pure: resources and their paths, selectors, the permissions the
code needs, and HTTP error answers (and watch ERROR events) as our error types. No I/O, no client import.

:data:`REQUIRED_PERMISSIONS` is the machine-readable list of the RBAC the backend needs (the Helm
chart's role is made from it); :data:`CLI_PERMISSIONS` adds what the ``bodywork secrets|services|
deployments`` commands need. ``tests/kubernetes/test_permissions.py`` derives the calls the code really
makes (every ``api.<method>("Kind", ...)`` through :data:`CALL_VERBS`) and checks that both lists, and
the RBAC section of docs/kubernetes.md, match them exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.backends.kubernetes.errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    PermanentError,
    TemporaryError,
)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    prefix: str  # "api/v1", "apis/batch/v1"
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        """The API group, as RBAC names it: "" for the core group, else e.g. "batch"."""
        parts = self.prefix.split("/")
        return parts[1] if parts[0] == "apis" else ""


RESOURCES: dict[str, Resource] = {
    "Namespace": Resource("api/v1", "namespaces", namespaced=False),
    "ServiceAccount": Resource("api/v1", "serviceaccounts"),
    "ConfigMap": Resource("api/v1", "configmaps"),
    "Secret": Resource("api/v1", "secrets"),
    "Service": Resource("api/v1", "services"),
    "Pod": Resource("api/v1", "pods"),
    "Event": Resource("api/v1", "events"),
    "Job": Resource("apis/batch/v1", "jobs"),
    "Deployment": Resource("apis/apps/v1", "deployments"),
    "ReplicaSet": Resource("apis/apps/v1", "replicasets"),
    "Ingress": Resource("apis/networking.k8s.io/v1", "ingresses"),
    "Lease": Resource("apis/coordination.k8s.io/v1", "leases"),
}

# The RBAC verbs each KubeApi method (and Watcher method) needs on the resource of its `kind` argument.
# A watch always lists first (see watching.Watcher), so it needs both.
CALL_VERBS: dict[str, tuple[str, ...]] = {
    "get": ("get",),
    "find": ("get",),
    "list_objects": ("list",),
    "create": ("create",),
    "replace": ("update",),
    "merge_patch": ("patch",),
    "json_patch": ("patch",),
    "delete": ("delete",),
    "watch": ("list", "watch"),
}
# Methods that read a pod's log take no kind: they need `get` on the pods/log subresource.
LOG_CALLS = ("read_log", "follow_log")


@dataclass(frozen=True, order=True)
class Permission:
    """One RBAC grant: `verb` on `resource` (a plural, or plural/subresource) of API `group`."""

    group: str
    resource: str
    verb: str


def permissions(table: Mapping[str, str]) -> frozenset[Permission]:
    """Permissions from {kind (or "pods/log"): "verb verb ..."}."""
    found: set[Permission] = set()
    for kind, verbs in table.items():
        if kind in RESOURCES:
            group, resource = RESOURCES[kind].group, RESOURCES[kind].plural
        else:
            group, resource = "", kind
        found.update(Permission(group, resource, verb) for verb in verbs.split())
    return frozenset(found)


REQUIRED_PERMISSIONS = permissions(
    {
        "Namespace": "get create patch delete",
        "ServiceAccount": "create",
        "ConfigMap": "create list delete",
        "Secret": "get create delete",  # get: a stage's secrets; create, delete: source tokens
        "Pod": "list watch",
        "pods/log": "get",
        "Event": "list",
        "Job": "create list watch delete",
        "Deployment": "get create update patch list watch delete",
        "Service": "get create patch list delete",
        "Ingress": "get create update patch list delete",
        "Lease": "get create update",
    }
)

CLI_PERMISSIONS = permissions(
    {
        "Namespace": "get create delete",
        "Secret": "get create update list delete",
        "Deployment": "get list delete",
        "Service": "list delete",
        "Ingress": "list delete",
        "Job": "list delete",
        "ConfigMap": "list delete",
    }
)


def policy_rules(granted: Iterable[Permission]) -> list[Obj]:
    """`granted` as the rules of an RBAC Role or ClusterRole, one per (group, resource)."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for permission in granted:
        verbs.setdefault((permission.group, permission.resource), set()).add(permission.verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs[group, resource])}
        for group, resource in sorted(verbs)
    ]


def path(kind: str, namespace: str | None, name: str | None = None) -> str:
    """The REST path of `kind` (in `namespace`, all namespaces when None), or of the object `name`."""
    resource = RESOURCES[kind]
    result = f"/{resource.prefix}"
    if resource.namespaced and namespace:
        result += f"/namespaces/{namespace}"
    result += f"/{resource.plural}"
    if name:
        result += f"/{name}"
    return result


def what(kind: str, name: str | None, namespace: str | None) -> str:
    """How an error names the object or list: "jobs j in namespace ns"."""
    resource = RESOURCES[kind]
    text = f"{resource.plural} {name}" if name else resource.plural
    return f"{text} in namespace {namespace}" if resource.namespaced and namespace else text


def selectors(labels: Mapping[str, str] | str | None, fields: str | None) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = []
    if labels:
        selector = labels if isinstance(labels, str) else ",".join(f"{k}={v}" for k, v in labels.items())
        query.append(("labelSelector", selector))
    if fields:
        query.append(("fieldSelector", fields))
    return query


_HTTP_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_TEMPORARY_STATUSES = {429, 500, 502, 503, 504}


def error_for(
    method: str, path: str, what: str, status: int, payload: str, retry_after: str | None = None
) -> KubeError:
    """Our error type for an HTTP error answer of the API server."""
    try:
        message = str(json.loads(payload).get("message", "")) or payload
    except (ValueError, AttributeError):
        message = payload
    verb = _HTTP_VERBS.get(method, method.lower())
    if status == 403:
        if method == "GET" and "watch=true" in path:
            verb = "watch"
        return Forbidden(
            f"forbidden: the credentials in use may not {verb} {what} ({message}); grant the verb "
            f"{verb!r} on this resource in the RBAC Role or ClusterRole bound to them",
            status=status,
            payload=payload,
        )
    if status == 401:
        return PermanentError(
            f"unauthorized: the API server rejected the credentials when trying to {verb} {what} "
            f"({message}); refresh the kubeconfig",
            status=status,
            payload=payload,
        )
    if status == 404:
        return NotFound(f"not found: {what} ({message})", status=status, payload=payload)
    if status == 409:
        return Conflict(f"conflict on {what}: {message}", status=status, payload=payload)
    if status == 410:
        return Gone(f"gone: {message}", status=status, payload=payload, delay=0.0)
    if status in (400, 422):
        return Invalid(f"the API server refused to {verb} {what}: {message}", status=status, payload=payload)
    if status in _TEMPORARY_STATUSES:
        try:
            delay = float(retry_after) if retry_after else 1.0
        except ValueError:
            delay = 1.0
        return TemporaryError(
            f"the API server answered {status} to {verb} {what}: {message}",
            status=status,
            payload=payload,
            delay=delay,
        )
    return PermanentError(
        f"the API server answered {status} to {verb} {what}: {message}", status=status, payload=payload
    )


def parse_event(line: str) -> Obj:
    """One watch event (``type`` and ``object``); an ERROR event is raised as our error type."""
    event: Obj = json.loads(line)
    if event.get("type") == "ERROR":
        status = event.get("object", {})
        code = int(status.get("code", 500))
        raise error_for("GET", "watch=true", "a watch", code, json.dumps(status))
    return event
