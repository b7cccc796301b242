"""Pure builders of the objects every run ships, and how all our objects are named and labelled.

Names are RFC 1123 DNS labels (at most 63 characters; a short hash keeps truncated names distinct) and
every object carries the labels of :class:`Identity`, so the cluster can be listed and cleaned without
the service's store. The pod template and the workloads that run it are in :mod:`.workloads`. Plain
dicts, no I/O, no client import.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.model import dns_label

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

# Kinds a deployment is made of, deleted in this order (workloads first, their code last).
DEPLOYMENT_KINDS = ("Ingress", "Service", "Deployment", "Job", "ConfigMap")

SERVICE_ACCOUNT = "bodywork-stage"
BOOTSTRAP_KEY = "bootstrap.py"
NOTEBOOK_KEY = "notebook.py"
SOURCE_KEY = "source.tar.gz"
# The keys of a run's source Secret when pods download their code from the service (see bootstrap).
SOURCE_URL_KEY, SOURCE_TOKEN_KEY, SOURCE_DIGEST_KEY = "source.url", "source.token", "source.sha256"
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
    base = source_name(identity, digest, max_length=58)
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


def source_name(identity: Identity, digest: str, max_length: int = 63) -> str:
    """The name of a run's source objects: pipeline, commit and content digest."""
    return dns_name(identity.pipeline, "src", identity.commit[:12], digest[:8], max_length=max_length)


def source_secret(namespace_name: str, identity: Identity, digest: str, url: str, token: str) -> Obj:
    """Where the run's pods download its code from (the service), with the token that opens it.

    A Secret, not a ConfigMap: the token is the run's credential. Named like the ConfigMaps (by commit
    and digest) and immutable, so every pod of the run fetches exactly these bytes.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": source_name(identity, digest),
            "namespace": namespace_name,
            "labels": identity.labels(role="source"),
            "annotations": {COMMIT_ANNOTATION: identity.commit},
        },
        "immutable": True,
        "stringData": {SOURCE_URL_KEY: url, SOURCE_TOKEN_KEY: token, SOURCE_DIGEST_KEY: digest},
    }


def job_name(identity: Identity, stage: str) -> str:
    return dns_name(identity.pipeline, stage, identity.run_id)


def ingress_path(namespace_name: str, stage: str) -> str:
    """Bodywork's route: /NAMESPACE/STAGE/... reaches the service's / (nginx rewrite)."""
    return f"/{namespace_name}/{service_name(stage)}"


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
