"""A run's life in its namespace: preparing it (the namespace, the stage ServiceAccount, the run's code
as immutable ConfigMaps, or on the service's shelf behind a Secret with the run's token), what its pods
need (settings, secrets), cleaning up after it, and tearing the whole environment down."""

from __future__ import annotations

import base64
import contextlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runner.backends.base import RunContext, StageError, StageJob
from runner.backends.kubernetes import manifests as m
from runner.backends.kubernetes import status as st
from runner.backends.kubernetes import workloads as w
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.errors import Conflict, NotFound
from runner.backends.kubernetes.packing import pack, pack_to_file
from runner.backends.kubernetes.settings import KubernetesSettings
from runner.backends.kubernetes.shelf import SourceShelf
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
    code_secret: str | None = None  # the run's source Secret when pods download from the service


def shelf_of(settings: KubernetesSettings) -> SourceShelf | None:
    """The service's shelf of source archives, when pods download their code from the service."""
    return SourceShelf(Path(settings.source_dir)) if settings.source_url and settings.source_dir else None


def prepare(api: KubeApi, settings: KubernetesSettings, run: RunContext, namespace: str) -> PreparedRun:
    """Makes sure the namespace and ServiceAccount exist and ships the run's checkout."""
    identity = m.Identity(run.pipeline.name, run.environment, run.run_id, run.commit)
    if settings.manage_namespaces:
        _ensure_namespace(api, namespace, identity)
    # Named by content (or fixed, like the service account): an existing one is the same.
    try:
        with contextlib.suppress(Conflict):
            api.create("ServiceAccount", m.service_account(namespace, identity), namespace)
    except NotFound:
        raise StageError(
            f"namespace {namespace} does not exist; create it first (this backend does not manage "
            "namespaces: manage_namespaces is false)"
        ) from None
    bootstrap = m.bootstrap_config_map(namespace, support_files())
    with contextlib.suppress(Conflict):
        api.create("ConfigMap", bootstrap, namespace)
    shelf = shelf_of(settings)
    if shelf is not None:
        secret = _shelve(api, settings, shelf, run, namespace, identity)
        return PreparedRun(namespace, identity, (st.name_of(bootstrap),), secret)
    archive = pack(run.source_dir, max_chunks=settings.max_source_chunks)
    sources = m.source_config_maps(namespace, identity, archive.chunks(), archive.digest)
    for config_map in sources:
        with contextlib.suppress(Conflict):
            api.create("ConfigMap", config_map, namespace)
    names = tuple(st.name_of(c) for c in (bootstrap, *sources))
    log.info("run %s ships %d bytes of source in %s", run.run_id, len(archive.data), names[1:])
    return PreparedRun(namespace, identity, names)


def _shelve(
    api: KubeApi,
    settings: KubernetesSettings,
    shelf: SourceShelf,
    run: RunContext,
    namespace: str,
    identity: m.Identity,
) -> str:
    """Puts the run's archive on the service's shelf; its URL and token go to the pods in a Secret."""
    assert settings.source_url is not None
    with tempfile.TemporaryDirectory(dir=shelf.folder) as work:
        packed = Path(work) / "source.tar.gz"
        digest = pack_to_file(run.source_dir, packed)
        name = m.source_name(identity, digest)
        shelved = shelf.put(namespace, name, packed)
    url = f"{settings.source_url.rstrip('/')}/sources/{namespace}/{name}"
    secret = m.source_secret(namespace, identity, digest, url, shelf.token(namespace, name))
    with contextlib.suppress(Conflict):
        api.create("Secret", secret, namespace)
    log.info("run %s serves %d bytes of source as %s", run.run_id, shelved.stat().st_size, name)
    return name


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
        code_secret=run.code_secret,
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


def clean_up(
    api: KubeApi, settings: KubernetesSettings, run: RunContext, namespace: str, succeeded: bool
) -> None:
    """After a successful run: removes services no longer in the DAG. Always: prunes unused sources."""
    pipeline = m.label_value(run.pipeline.name)
    if succeeded:
        wanted = {m.label_value(s.name) for s in run.pipeline.service_stages()}
        selector = {m.MANAGED_BY: m.MANAGER, m.PIPELINE: pipeline}
        for deployment in api.list_objects("Deployment", namespace, labels=selector).get("items", []):
            labels = deployment["metadata"].get("labels") or {}
            if labels.get(m.STAGE) not in wanted:
                remove_service(api, namespace, st.name_of(deployment))
    _prune_sources(api, namespace, pipeline, shelf_of(settings))


def remove_service(api: KubeApi, namespace: str, name: str) -> list[str]:
    """Deletes a service's Deployment, Service and Ingress; returns the kinds that existed."""
    return [kind for kind in ("Deployment", "Service", "Ingress") if api.delete(kind, name, namespace)]


def _prune_sources(api: KubeApi, namespace: str, pipeline: str, shelf: SourceShelf | None) -> None:
    """Deletes source ConfigMaps, and source Secrets with their shelved archives, that no Deployment or
    Job of the namespace refers to any more (a deleted Secret's token stops opening its archive)."""
    used: set[str] = set()
    for kind in ("Deployment", "Job"):
        for obj in api.list_objects(kind, namespace).get("items", []):
            for volume in obj["spec"]["template"]["spec"].get("volumes") or []:
                for source in (volume.get("projected") or {}).get("sources") or []:
                    used.update(source[k]["name"] for k in ("configMap", "secret") if k in source)
    selector = {m.PIPELINE: pipeline, m.ROLE: "source"}
    now = datetime.now(UTC)
    for config_map in api.list_objects("ConfigMap", namespace, labels=selector).get("items", []):
        name = st.name_of(config_map)
        created = _timestamp(config_map["metadata"].get("creationTimestamp"))
        if name in used or (now - created).total_seconds() < _PRUNE_MIN_AGE_SECONDS:
            continue
        api.delete("ConfigMap", name, namespace)
    if shelf is not None:
        _prune_shelf(api, namespace, shelf, used, now.timestamp())


def _prune_shelf(api: KubeApi, namespace: str, shelf: SourceShelf, used: set[str], now: float) -> None:
    # The shelf knows which source Secrets it made: the service never lists Secrets.
    for name in shelf.names(namespace):
        if name in used or now - shelf.path(namespace, name).stat().st_mtime < _PRUNE_MIN_AGE_SECONDS:
            continue
        api.delete("Secret", name, namespace)
        shelf.remove(namespace, name)


def _timestamp(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def delete_environment(api: KubeApi, settings: KubernetesSettings, namespace: str) -> dict[str, int]:
    """Deletes every object this tool made in `namespace`, then the namespace itself when this tool
    created it (a namespace someone else made is left, with their objects in it); counts per kind."""
    deleted: dict[str, int] = {}
    for kind in m.DEPLOYMENT_KINDS:
        for obj in api.list_objects(kind, namespace, labels={m.MANAGED_BY: m.MANAGER})["items"]:
            if api.delete(kind, obj["metadata"]["name"], namespace):
                deleted[kind] = deleted.get(kind, 0) + 1
    shelf = shelf_of(settings)
    if shelf is not None:
        for name in shelf.names(namespace):
            if api.delete("Secret", name, namespace):
                deleted["Secret"] = deleted.get("Secret", 0) + 1
        shelf.remove_namespace(namespace)
    if not settings.manage_namespaces:
        return deleted
    found = api.find("Namespace", namespace)
    labels = (found or {}).get("metadata", {}).get("labels") or {}
    if labels.get(m.MANAGED_BY) == m.MANAGER and api.delete("Namespace", namespace):
        deleted["Namespace"] = 1
    return deleted
