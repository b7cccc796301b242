"""A run's life in its namespace: preparing it (the namespace, the stage ServiceAccount, the run's code
as immutable ConfigMaps), what its pods need (settings, secrets), cleaning up after it, and tearing the
whole environment down."""

from __future__ import annotations

import base64
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runner.backends.base import RunContext, StageError, StageJob
from runner.backends.kubernetes import manifests as m
from runner.backends.kubernetes import status as st
from runner.backends.kubernetes import workloads as w
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.errors import Conflict
from runner.backends.kubernetes.packing import pack
from runner.backends.kubernetes.settings import KubernetesSettings
from runner.model import Stage

log = logging.getLogger(__name__)

_SUPPORT_DIR = Path(__file__).resolve().parent
_NOTEBOOK_EXECUTOR = _SUPPORT_DIR.parent.parent / "_stage_support" / "notebook.py"
# Source ConfigMaps younger than this are never pruned: a concurrent run may be about to use them.
_PRUNE_MIN_AGE_SECONDS = 600


def support_files() -> dict[str, str]:
    """The files of the bootstrap ConfigMap: the pod command and the notebook executor."""
    return {
        m.BOOTSTRAP_KEY: (_SUPPORT_DIR / "bootstrap.py").read_text(),
        m.NOTEBOOK_KEY: _NOTEBOOK_EXECUTOR.read_text(),
    }


@dataclass(frozen=True)
class PreparedRun:
    namespace: str
    identity: m.Identity
    code_config_maps: tuple[str, ...]  # the bootstrap first, then the source chunks in order


def prepare(api: KubeApi, settings: KubernetesSettings, run: RunContext, namespace: str) -> PreparedRun:
    """Makes sure the namespace and ServiceAccount exist and ships the run's checkout."""
    identity = m.Identity(run.pipeline.name, run.environment, run.run_id, run.commit)
    _ensure_namespace(api, namespace, identity)
    # Named by content (or fixed, like the service account): an existing one is the same.
    with contextlib.suppress(Conflict):
        api.create("ServiceAccount", m.service_account(namespace, identity), namespace)
    bootstrap = m.bootstrap_config_map(namespace, support_files())
    archive = pack(run.source_dir, max_chunks=settings.max_source_chunks)
    sources = m.source_config_maps(namespace, identity, archive.chunks(), archive.digest)
    for config_map in (bootstrap, *sources):
        with contextlib.suppress(Conflict):
            api.create("ConfigMap", config_map, namespace)
    names = tuple(st.name_of(c) for c in (bootstrap, *sources))
    log.info("run %s ships %d bytes of source in %s", run.run_id, len(archive.data), names[1:])
    return PreparedRun(namespace, identity, names)


def _ensure_namespace(api: KubeApi, namespace: str, identity: m.Identity) -> None:
    manifest = m.namespace(namespace, identity)
    existing = api.find("Namespace", namespace)
    if existing is None:
        try:
            api.create("Namespace", manifest)
            return
        except Conflict:
            existing = api.get("Namespace", namespace)
    if existing.get("status", {}).get("phase") == "Terminating":
        raise StageError(f"namespace {namespace} is being deleted; wait until it is gone and run again")
    labels = existing.get("metadata", {}).get("labels") or {}
    # The managed-by label says this tool created the namespace, so teardown may delete it: it is
    # never added to a namespace someone else made.
    wanted = {k: v for k, v in manifest["metadata"]["labels"].items() if k != m.MANAGED_BY}
    missing = {k: v for k, v in wanted.items() if k not in labels}
    if missing:
        api.merge_patch("Namespace", namespace, {"metadata": {"labels": missing}})


# ---- what a stage's pods need ------------------------------------------------------------------


def secrets_group(run: RunContext) -> str:
    """The pipeline's secrets_group, or "default" when it names none."""
    return run.pipeline.pipeline.secrets_group or "default"


def pod_settings(settings: KubernetesSettings, run: PreparedRun, job: StageJob) -> w.PodSettings:
    return w.PodSettings(
        image=settings.image_for(job.run.pipeline.pipeline.docker_image),
        image_pull_policy=settings.image_pull_policy,
        code_config_maps=run.code_config_maps,
        cache_host_path=settings.cache_host_path,
        secrets_group=secrets_group(job.run),
        gpu_resource=settings.gpu_resource,
        gpus=settings.gpus.get(job.stage.name, 0),
        artifacts_volume=_artifacts_volume(settings, run.namespace),
    )


def _artifacts_volume(settings: KubernetesSettings, namespace: str) -> w.Obj | None:
    if settings.artifacts_claim:
        return {"persistentVolumeClaim": {"claimName": settings.artifacts_claim}}
    if settings.artifacts_host_path:
        path = f"{settings.artifacts_host_path.rstrip('/')}/{namespace}"
        return {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}
    return None


def read_secrets(api: KubeApi, stage: Stage, group: str, namespace: str) -> set[str]:
    """The values of the secrets `stage` names (for the engine to mask); an error with the fix when one
    or a key of it is missing."""
    values: set[str] = set()
    for variable, secret in stage.secrets:
        name = m.secret_object_name(group, secret)
        obj = api.find("Secret", name, namespace)
        create = (
            f"`bodywork secrets create {secret} --group {group} --namespace {namespace} "
            f"--data {variable}=...`"
        )
        if obj is None:
            raise StageError(
                f"stage {stage.name}: secret {secret!r} of group {group!r} (Secret {name}) does not "
                f"exist in namespace {namespace}; create it with {create}"
            )
        data = obj.get("data") or {}
        if variable not in data:
            raise StageError(
                f"stage {stage.name}: Secret {name} in namespace {namespace} has no key "
                f"{variable!r} (it has {', '.join(sorted(data)) or 'none'}); add it with {create}"
            )
        values.add(base64.b64decode(data[variable]).decode("utf-8", errors="replace"))
    return values


# ---- after the run, and tearing down -----------------------------------------------------------


def clean_up(api: KubeApi, run: RunContext, namespace: str, succeeded: bool) -> None:
    """After a successful run: removes services no longer in the DAG. Always: prunes unused sources."""
    pipeline = m.label_value(run.pipeline.name)
    if succeeded:
        wanted = {m.label_value(s.name) for s in run.pipeline.service_stages()}
        selector = {m.MANAGED_BY: m.MANAGER, m.PIPELINE: pipeline}
        for deployment in api.list_objects("Deployment", namespace, labels=selector).get("items", []):
            labels = deployment["metadata"].get("labels") or {}
            if labels.get(m.STAGE) not in wanted:
                remove_service(api, namespace, st.name_of(deployment))
    _prune_sources(api, namespace, pipeline)


def remove_service(api: KubeApi, namespace: str, name: str) -> list[str]:
    """Deletes a service's Deployment, Service and Ingress; returns the kinds that existed."""
    return [kind for kind in ("Deployment", "Service", "Ingress") if api.delete(kind, name, namespace)]


def _prune_sources(api: KubeApi, namespace: str, pipeline: str) -> None:
    """Deletes source ConfigMaps no Deployment or Job of the namespace refers to any more."""
    used: set[str] = set()
    for kind in ("Deployment", "Job"):
        for obj in api.list_objects(kind, namespace).get("items", []):
            for volume in obj["spec"]["template"]["spec"].get("volumes") or []:
                for source in (volume.get("projected") or {}).get("sources") or []:
                    if "configMap" in source:
                        used.add(source["configMap"]["name"])
    selector = {m.PIPELINE: pipeline, m.ROLE: "source"}
    now = datetime.now(UTC)
    for config_map in api.list_objects("ConfigMap", namespace, labels=selector).get("items", []):
        name = st.name_of(config_map)
        created = _timestamp(config_map["metadata"].get("creationTimestamp"))
        if name in used or (now - created).total_seconds() < _PRUNE_MIN_AGE_SECONDS:
            continue
        api.delete("ConfigMap", name, namespace)


def _timestamp(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def delete_environment(api: KubeApi, namespace: str) -> dict[str, int]:
    """Deletes every object this tool made in `namespace`, then the namespace itself when this tool
    created it (a namespace someone else made is left, with their objects in it); counts per kind."""
    deleted: dict[str, int] = {}
    for kind in m.DEPLOYMENT_KINDS:
        for obj in api.list_objects(kind, namespace, labels={m.MANAGED_BY: m.MANAGER})["items"]:
            if api.delete(kind, obj["metadata"]["name"], namespace):
                deleted[kind] = deleted.get(kind, 0) + 1
    found = api.find("Namespace", namespace)
    labels = (found or {}).get("metadata", {}).get("labels") or {}
    if labels.get(m.MANAGED_BY) == m.MANAGER and api.delete("Namespace", namespace):
        deleted["Namespace"] = 1
    return deleted
