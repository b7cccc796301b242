"""The Kubernetes backend: batch stages as Jobs, service stages as Deployments + Services (+ Ingress).

One namespace per pipeline environment. Each run ships its checkout as immutable ConfigMaps named by
pipeline, commit and content digest, so every pod of the run (retries, restarts, new replicas) runs
exactly that commit, and no Git credentials ever reach a stage pod. Completion is seen through watches
(:mod:`.watching`), logs are followed live, and blocking client calls run in threads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from runner.backends.base import RunContext, StageError, StageJob, StageResult
from runner.backends.kubernetes import manifests as m
from runner.backends.kubernetes import status as st
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.errors import Conflict, KubeError
from runner.backends.kubernetes.inventory import delete_environment
from runner.backends.kubernetes.packing import pack
from runner.backends.kubernetes.settings import KubernetesSettings
from runner.backends.kubernetes.watching import Broken, LogEnd, LogText, Watcher
from runner.events import StageState
from runner.model import Stage, dns_label

log = logging.getLogger(__name__)

Obj = dict[str, Any]
T = TypeVar("T")

_SUPPORT_DIR = Path(__file__).resolve().parent
_NOTEBOOK_EXECUTOR = _SUPPORT_DIR.parent.parent / "_stage_support" / "notebook.py"
# Source ConfigMaps younger than this are never pruned: a concurrent run may be about to use them.
_PRUNE_MIN_AGE_SECONDS = 600
# Warning events that say nothing about why a pod does not start.
_NOISE_EVENTS = {"MissingClusterDNS"}


def support_files() -> dict[str, str]:
    """The files of the bootstrap ConfigMap: the pod command and the notebook executor."""
    return {
        m.BOOTSTRAP_KEY: (_SUPPORT_DIR / "bootstrap.py").read_text(),
        m.NOTEBOOK_KEY: _NOTEBOOK_EXECUTOR.read_text(),
    }


@dataclass
class _Run:
    namespace: str
    identity: m.Identity
    code_config_maps: tuple[str, ...]


@dataclass
class _Applied:
    """What deploying a service changed, so that a rollback can restore it."""

    name: str
    generation: int
    previous_deployment: Obj | None
    service_created: bool
    previous_service: Obj | None
    ingress_created: bool
    previous_ingress: Obj | None
    notes: list[str] = field(default_factory=list)


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, *, api: KubeApi | None = None, **options: Any) -> None:
        self.settings = KubernetesSettings.from_options(**options)
        self.api = api or KubeApi(
            kubeconfig=self.settings.kubeconfig,
            context=self.settings.context,
            in_cluster=self.settings.in_cluster,
            retry_delays=self.settings.api_retry_delays,
        )
        self._runs: dict[str, _Run] = {}

    # ---- the Backend protocol ----------------------------------------------------------------

    async def start_run(self, run: RunContext) -> None:
        self._runs[run.run_id] = await asyncio.to_thread(self._prepare, run)

    async def run_batch(self, job: StageJob) -> StageResult:
        run = self._run(job.run)
        stage = job.stage
        assert stage.batch is not None
        await self._resolve_secrets(job, run)
        manifest = m.job(
            run.namespace,
            run.identity,
            stage,
            job.env,
            self._pod_settings(run, job),
            ttl_seconds=self.settings.job_ttl_seconds,
        )
        name = manifest["metadata"]["name"]
        job.attempt_started(1)
        async with Watcher(self.api) as watcher:
            watcher.watch("Pod", run.namespace, labels={m.JOB: name})
            watcher.watch("Job", run.namespace, fields=f"metadata.name={name}")
            try:
                await asyncio.to_thread(self.api.create, "Job", manifest, run.namespace)
                result, stop = await self._follow_job(job, watcher, run.namespace, name)
            except BaseException:
                watcher.close()
                await _shielded(asyncio.to_thread(self._delete_job, run.namespace, name))
                raise
            if stop:
                await asyncio.to_thread(self._delete_job, run.namespace, name)
            return result

    async def deploy_service(self, job: StageJob) -> StageResult:
        run = self._run(job.run)
        stage = job.stage
        service = stage.service
        assert service is not None
        await self._resolve_secrets(job, run)
        pod = self._pod_settings(run, job)
        deployment = m.deployment(run.namespace, run.identity, stage, job.env, pod)
        cluster_service = m.cluster_service(run.namespace, run.identity, stage)
        ingress = (
            m.ingress(run.namespace, run.identity, stage, self.settings.ingress_class)
            if service.ingress
            else None
        )
        job.attempt_started(1)
        applied = await asyncio.to_thread(
            self._apply_service, run, stage, deployment, cluster_service, ingress
        )
        try:
            reason = await self._await_rollout(job, run, applied)
        except BaseException:
            await _shielded(asyncio.to_thread(self._roll_back, run.namespace, applied))
            raise
        if reason is None:
            return StageResult(StageState.SUCCEEDED, 1)
        restored = await asyncio.to_thread(self._roll_back, run.namespace, applied)
        return StageResult(StageState.ROLLED_BACK, 1, f"{reason}; {restored}")

    async def finish_run(self, run: RunContext, succeeded: bool) -> None:
        state = self._runs.pop(run.run_id, None)
        if state is None:
            return
        try:
            await asyncio.to_thread(self._clean_up, run, state, succeeded)
        except KubeError as error:  # clean-up must not turn a finished run into a crash
            log.warning("cleaning up after run %s failed: %s", run.run_id, error)

    async def teardown(self, environment: str) -> None:
        namespace = self.namespace_for(environment)
        try:
            deleted = await asyncio.to_thread(delete_environment, self.api, namespace)
        except KubeError as error:
            raise StageError(f"tearing down namespace {namespace} failed: {error}") from None
        log.info("tore down namespace %s: %s", namespace, deleted)

    async def close(self) -> None:
        self.api.close()

    # ---- preparing a run -----------------------------------------------------------------------

    def namespace_for(self, environment: str) -> str:
        return dns_label(self.settings.namespace or environment)

    def _run(self, run: RunContext) -> _Run:
        try:
            return self._runs[run.run_id]
        except KeyError:
            raise StageError(f"run {run.run_id} was not started on this backend (start_run first)") from None

    def _prepare(self, run: RunContext) -> _Run:
        namespace = self.namespace_for(run.environment)
        identity = m.Identity(run.pipeline.name, run.environment, run.run_id, run.commit)
        self._ensure_namespace(namespace, identity)
        self._create_or_keep("ServiceAccount", m.service_account(namespace, identity), namespace)
        bootstrap = m.bootstrap_config_map(namespace, support_files())
        self._create_or_keep("ConfigMap", bootstrap, namespace)
        archive = pack(run.source_dir, max_chunks=self.settings.max_source_chunks)
        sources = m.source_config_maps(namespace, identity, archive.chunks(), archive.digest)
        for config_map in sources:
            self._create_or_keep("ConfigMap", config_map, namespace)
        names = (bootstrap["metadata"]["name"], *(c["metadata"]["name"] for c in sources))
        log.info("run %s ships %d bytes of source in %s", run.run_id, len(archive.data), names[1:])
        return _Run(namespace, identity, names)

    def _ensure_namespace(self, namespace: str, identity: m.Identity) -> None:
        manifest = m.namespace(namespace, identity)
        existing = self.api.find("Namespace", namespace)
        if existing is None:
            try:
                self.api.create("Namespace", manifest)
                return
            except Conflict:
                existing = self.api.get("Namespace", namespace)
        if existing.get("status", {}).get("phase") == "Terminating":
            raise StageError(f"namespace {namespace} is being deleted; wait until it is gone and run again")
        labels = existing.get("metadata", {}).get("labels") or {}
        missing = {k: v for k, v in manifest["metadata"]["labels"].items() if k not in labels}
        if missing:
            self.api.merge_patch("Namespace", namespace, {"metadata": {"labels": missing}})

    def _create_or_keep(self, kind: str, body: Obj, namespace: str) -> None:
        # Named by content (or fixed, like the service account): an existing one is the same.
        with contextlib.suppress(Conflict):
            self.api.create(kind, body, namespace)

    def _pod_settings(self, run: _Run, job: StageJob) -> m.PodSettings:
        stage = job.stage
        pipeline = job.run.pipeline.pipeline
        gpus = self.settings.gpus.get(stage.name) or int(getattr(stage, "gpu_request", 0) or 0)
        return m.PodSettings(
            image=self.settings.image_for(pipeline.docker_image),
            image_pull_policy=self.settings.image_pull_policy,
            code_config_maps=run.code_config_maps,
            cache_host_path=self.settings.cache_host_path,
            secrets_group=secrets_group(job.run),
            gpu_resource=self.settings.gpu_resource,
            gpus=gpus,
            artifacts_volume=self._artifacts_volume(run.namespace),
        )

    def _artifacts_volume(self, namespace: str) -> Obj | None:
        if self.settings.artifacts_claim:
            return {"persistentVolumeClaim": {"claimName": self.settings.artifacts_claim}}
        if self.settings.artifacts_host_path:
            path = f"{self.settings.artifacts_host_path.rstrip('/')}/{namespace}"
            return {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}
        return None

    async def _resolve_secrets(self, job: StageJob, run: _Run) -> None:
        """Checks that every secret the stage names exists, and hands the values to the engine to mask."""
        if job.stage.secrets:
            values = await asyncio.to_thread(self._read_secrets, job.stage, secrets_group(job.run), run)
            job.secret_values.update(values)

    def _read_secrets(self, stage: Stage, group: str, run: _Run) -> set[str]:
        values: set[str] = set()
        for variable, secret in stage.secrets:
            name = m.secret_object_name(group, secret)
            obj = self.api.find("Secret", name, run.namespace)
            create = (
                f"`bodywork secrets create {secret} --group {group} --namespace {run.namespace} "
                f"--data {variable}=...`"
            )
            if obj is None:
                raise StageError(
                    f"stage {stage.name}: secret {secret!r} of group {group!r} (Secret {name}) does not "
                    f"exist in namespace {run.namespace}; create it with {create}"
                )
            data = obj.get("data") or {}
            if variable not in data:
                raise StageError(
                    f"stage {stage.name}: Secret {name} in namespace {run.namespace} has no key "
                    f"{variable!r} (it has {', '.join(sorted(data)) or 'none'}); add it with {create}"
                )
            values.add(base64.b64decode(data[variable]).decode("utf-8", errors="replace"))
        return values

    # ---- batch stages ----------------------------------------------------------------------------

    async def _follow_job(
        self, job: StageJob, watcher: Watcher, namespace: str, name: str
    ) -> tuple[StageResult, bool]:
        """Follows the Job's pods until it ends; returns the result and whether to delete the Job."""
        assert job.stage.batch is not None
        max_attempts = job.stage.batch.retries + 1
        attempts: dict[str, int] = {}
        ended: set[str] = set()
        open_logs: set[str] = set()
        unschedulable_since: dict[str, float] = {}
        sessions: dict[str, str] = {}  # pod uid -> the session its bootstrap printed first
        grace = self.settings.unschedulable_grace_seconds
        last_reason = ""
        last_unschedulable_reason = "a pod cannot be scheduled"
        loop = asyncio.get_running_loop()
        result: StageResult | None = None
        stop = False
        while result is None:
            timeout = None
            if unschedulable_since:
                timeout = max(0.0, min(unschedulable_since.values()) + grace - loop.time())
            item = await watcher.next(timeout)
            if item is None:
                result, stop = self._failed(len(attempts), last_unschedulable_reason), True
                break
            if isinstance(item, Broken):
                raise item.error
            if isinstance(item, LogText):
                if not item.line.startswith(m.SESSION_PREFIX):
                    job.log(item.line)
                elif code := _session_exit(sessions, item.key, item.line):
                    open_logs.discard(item.key)  # the report is the pod's last line
                    if code == "0":
                        result = StageResult(StageState.SUCCEEDED, attempts.get(item.key, 1))
                continue
            if isinstance(item, LogEnd):
                open_logs.discard(item.key)
                continue
            obj = item.obj
            if item.kind == "Job":
                outcome = st.job_outcome(obj)
                if outcome.finished and outcome.succeeded:
                    result = StageResult(StageState.SUCCEEDED, max(len(attempts), 1))
                elif outcome.finished:
                    result = self._failed(len(attempts), last_reason or f"the Job failed: {outcome.reason}")
                continue
            if item.type == "DELETED":
                continue
            uid = st.uid_of(obj)
            if uid not in attempts:
                attempts[uid] = len(attempts) + 1
                if attempts[uid] > 1:
                    job.attempt_started(attempts[uid])
            attempt = attempts[uid]
            phase = st.phase(obj)
            if (st.container_started(obj) or phase in ("Succeeded", "Failed")) and watcher.follow_log(
                namespace, st.name_of(obj), uid
            ):
                open_logs.add(uid)
            if phase == "Succeeded":
                result = StageResult(StageState.SUCCEEDED, attempt)
            elif phase == "Failed" and uid not in ended:
                ended.add(uid)
                unschedulable_since.pop(uid, None)
                last_reason = f"attempt {attempt} of {max_attempts} {st.failure_reason(obj)}"
                if not st.container_started(obj):
                    last_reason += await self._warnings(namespace, [st.name_of(obj)])
                if attempt < max_attempts:
                    job.attempt_failed(attempt, last_reason)
                else:
                    result = self._failed(attempt, last_reason)
            elif phase == "Pending":
                if problem := st.stuck(obj):
                    result, stop = self._failed(attempt, problem), True
                elif problem := st.unschedulable(obj):
                    last_unschedulable_reason = problem
                    unschedulable_since.setdefault(uid, loop.time())
                    if grace <= 0:
                        result, stop = self._failed(attempt, problem), True
                else:
                    unschedulable_since.pop(uid, None)
            else:
                unschedulable_since.pop(uid, None)
        await self._drain_logs(job, watcher, open_logs)
        return result, stop

    def _failed(self, attempts: int, reason: str) -> StageResult:
        return StageResult(StageState.FAILED, max(attempts, 1), reason)

    async def _drain_logs(self, job: StageJob, watcher: Watcher, open_logs: set[str]) -> None:
        """Delivers the rest of the followed logs (they end with their containers)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.log_drain_seconds
        while open_logs:
            item = await watcher.next(max(0.0, deadline - loop.time()))
            if item is None:
                break
            if isinstance(item, LogText):
                job.log(item.line)
            elif isinstance(item, LogEnd):
                open_logs.discard(item.key)

    def _delete_job(self, namespace: str, name: str) -> None:
        try:
            self.api.delete("Job", name, namespace, propagation="Background")
        except KubeError as error:
            log.warning("could not delete Job %s/%s: %s", namespace, name, error)

    # ---- service stages --------------------------------------------------------------------------

    def _apply_service(
        self, run: _Run, stage: Stage, deployment: Obj, cluster_service: Obj, ingress: Obj | None
    ) -> _Applied:
        namespace = run.namespace
        name = deployment["metadata"]["name"]
        existing = self.api.find("Deployment", name, namespace)
        if existing is not None:
            owner = (existing["metadata"].get("labels") or {}).get(m.PIPELINE)
            if owner != m.label_value(run.identity.pipeline):
                raise StageError(
                    f"stage {stage.name}: Deployment {name} in namespace {namespace} belongs to "
                    f"pipeline {owner or '(none)'}; rename the stage or deploy to another namespace"
                )
            deployment["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            result = self.api.replace("Deployment", name, deployment, namespace)
        else:
            result = self.api.create("Deployment", deployment, namespace)
        generation = int(result["metadata"].get("generation", 1))

        previous_service = self.api.find("Service", name, namespace)
        if previous_service is None:
            self.api.create("Service", cluster_service, namespace)
        else:
            patch = {
                "metadata": {"labels": cluster_service["metadata"]["labels"]},
                "spec": {
                    "selector": cluster_service["spec"]["selector"],
                    "ports": cluster_service["spec"]["ports"],
                },
            }
            self.api.merge_patch("Service", name, patch, namespace)

        previous_ingress = self.api.find("Ingress", name, namespace)
        ingress_created = False
        if ingress is not None:
            if previous_ingress is None:
                self.api.create("Ingress", ingress, namespace)
                ingress_created = True
            else:
                ingress["metadata"]["resourceVersion"] = previous_ingress["metadata"]["resourceVersion"]
                self.api.replace("Ingress", name, ingress, namespace)
        elif previous_ingress is not None and _ours(previous_ingress, run.identity.pipeline):
            self.api.delete("Ingress", name, namespace)
        return _Applied(
            name=name,
            generation=generation,
            previous_deployment=existing,
            service_created=previous_service is None,
            previous_service=previous_service,
            ingress_created=ingress_created,
            previous_ingress=previous_ingress,
        )

    async def _await_rollout(self, job: StageJob, run: _Run, applied: _Applied) -> str | None:
        """None when every replica of the new version is ready, else why not."""
        service = job.stage.service
        assert service is not None
        loop = asyncio.get_running_loop()
        limit = service.max_startup_time_seconds
        deadline = loop.time() + limit if limit > 0 else None
        grace = self.settings.unschedulable_grace_seconds
        pods: dict[str, Obj] = {}
        unschedulable_since: dict[str, float] = {}
        following: str | None = None
        recent: deque[str] = deque(maxlen=5)  # the last lines of the followed pod, for a crash reason
        selector = {
            **run.identity.stage_selector(job.stage.name),
            m.RUN_ID: m.label_value(run.identity.run_id),
        }
        async with Watcher(self.api) as watcher:
            watcher.watch("Deployment", run.namespace, fields=f"metadata.name={applied.name}")
            watcher.watch("Pod", run.namespace, labels=selector)
            while True:
                waits = [t for t in (deadline, *(s + grace for s in unschedulable_since.values())) if t]
                timeout = max(0.0, min(waits) - loop.time()) if waits else None
                item = await watcher.next(timeout)
                if item is None:
                    for uid, since in unschedulable_since.items():
                        if loop.time() >= since + grace:
                            return st.unschedulable(pods[uid]) or "a pod cannot be scheduled"
                    summary = "; ".join(st.pod_summary(p) for p in pods.values()) or "no pod was created"
                    warnings = await self._warnings(run.namespace, [st.name_of(p) for p in pods.values()])
                    return f"not ready within {limit} s (max_startup_time_seconds): {summary}{warnings}"
                if isinstance(item, Broken):
                    raise item.error
                if isinstance(item, LogText):
                    job.log(item.line)
                    if item.line.strip():
                        recent.append(item.line)
                    continue
                if isinstance(item, LogEnd) or item.type == "DELETED":
                    continue
                obj = item.obj
                if item.kind == "Deployment":
                    if st.rollout_done(obj, applied.generation, service.replicas):
                        return None
                    if problem := st.rollout_stalled(obj):
                        return problem
                    continue
                uid = st.uid_of(obj)
                pods[uid] = obj
                if following in (None, uid) and st.container_started(obj):
                    following = uid
                    watcher.follow_log(run.namespace, st.name_of(obj), uid)
                if problem := st.stuck(obj) or st.crashed(obj):
                    return await self._with_last_log(run.namespace, obj, problem, list(recent))
                if problem := st.unschedulable(obj):
                    unschedulable_since.setdefault(uid, loop.time())
                    if grace <= 0:
                        return problem
                else:
                    unschedulable_since.pop(uid, None)

    async def _warnings(self, namespace: str, pods: list[str]) -> str:
        """The latest Warning events of `pods` (sandbox, volume, probe failures), for a reason."""
        found: list[tuple[str, str]] = []
        for pod in pods[:3]:
            fields = f"involvedObject.kind=Pod,involvedObject.name={pod},type=Warning"
            try:
                listing = await asyncio.to_thread(self.api.list_objects, "Event", namespace, fields=fields)
            except KubeError:
                continue
            for event in listing.get("items") or []:
                if event.get("reason") in _NOISE_EVENTS:
                    continue
                stamp = str(event.get("lastTimestamp") or event.get("eventTime") or "")
                found.append((stamp, f"{event.get('reason', '')}: {str(event.get('message', ''))[:300]}"))
        if not found:
            return ""
        latest = sorted(found)[-2:]
        return " (last warnings: " + "; ".join(text for _, text in latest) + ")"

    async def _with_last_log(self, namespace: str, pod: Obj, problem: str, streamed: list[str]) -> str:
        """`problem`, with the last lines the crashed container printed (as streamed, else as kept)."""
        lines = streamed
        if not lines:
            try:
                text = await asyncio.to_thread(
                    self.api.read_log, namespace, st.name_of(pod), previous=True, tail_lines=5
                )
            except KubeError:
                text = ""  # the kubelet may have dropped the previous container's log already
            if not text.startswith("unable to retrieve container logs"):
                lines = [line for line in text.splitlines() if line.strip()]
        return f"{problem}; its last output: {' | '.join(lines)}" if lines else problem

    def _roll_back(self, namespace: str, applied: _Applied) -> str:
        """Restores what deploying changed; returns what it did, for the stage's reason."""
        name = applied.name
        done: list[str] = []
        try:
            previous = applied.previous_deployment
            if previous is not None:
                ops: list[Obj] = [
                    {"op": "replace", "path": "/spec/template", "value": previous["spec"]["template"]},
                    {"op": "replace", "path": "/spec/replicas", "value": previous["spec"].get("replicas", 1)},
                    {
                        "op": "replace",
                        "path": "/metadata/labels",
                        "value": previous["metadata"].get("labels", {}),
                    },
                ]
                self.api.json_patch("Deployment", name, ops, namespace)
                commit = (previous["metadata"].get("annotations") or {}).get(m.COMMIT_ANNOTATION, "")
                self.api.merge_patch(
                    "Deployment",
                    name,
                    {"metadata": {"annotations": {m.COMMIT_ANNOTATION: commit}}},
                    namespace,
                )
                done.append(f"rolled back to the previous version (commit {commit[:12] or 'unknown'})")
            else:
                self.api.delete("Deployment", name, namespace)
                done.append("removed the new Deployment (there was no previous version)")
            if applied.service_created:
                self.api.delete("Service", name, namespace)
            elif applied.previous_service is not None:
                old = applied.previous_service
                patch = {
                    "metadata": {"labels": old["metadata"].get("labels")},
                    "spec": {"selector": old["spec"].get("selector"), "ports": old["spec"].get("ports")},
                }
                self.api.merge_patch("Service", name, patch, namespace)
            if applied.ingress_created:
                self.api.delete("Ingress", name, namespace)
            elif applied.previous_ingress is not None:
                old_ingress = applied.previous_ingress
                current = self.api.find("Ingress", name, namespace)
                if current is None:
                    self.api.create("Ingress", _recreatable(old_ingress), namespace)
                else:
                    self.api.merge_patch("Ingress", name, {"spec": old_ingress["spec"]}, namespace)
        except KubeError as error:
            done.append(f"the rollback failed: {error}")
            log.error("rolling back %s/%s failed: %s", namespace, name, error)
        return "; ".join(done)

    # ---- after the run -----------------------------------------------------------------------

    def _clean_up(self, run: RunContext, state: _Run, succeeded: bool) -> None:
        namespace = state.namespace
        pipeline = m.label_value(run.pipeline.name)
        if succeeded:
            wanted = {m.label_value(s.name) for s in run.pipeline.service_stages()}
            selector = {m.MANAGED_BY: m.MANAGER, m.PIPELINE: pipeline}
            for deployment in self.api.list_objects("Deployment", namespace, labels=selector).get(
                "items", []
            ):
                labels = deployment["metadata"].get("labels") or {}
                if labels.get(m.STAGE) not in wanted:
                    self.remove_service(namespace, st.name_of(deployment))
        self._prune_sources(namespace, pipeline)

    def remove_service(self, namespace: str, name: str) -> list[str]:
        """Deletes a service's Deployment, Service and Ingress; returns the kinds that existed."""
        return [
            kind for kind in ("Deployment", "Service", "Ingress") if self.api.delete(kind, name, namespace)
        ]

    def _prune_sources(self, namespace: str, pipeline: str) -> None:
        """Deletes source ConfigMaps no Deployment or Job of the namespace refers to any more."""
        used: set[str] = set()
        for kind in ("Deployment", "Job"):
            for obj in self.api.list_objects(kind, namespace).get("items", []):
                for volume in obj["spec"]["template"]["spec"].get("volumes") or []:
                    for source in (volume.get("projected") or {}).get("sources") or []:
                        if "configMap" in source:
                            used.add(source["configMap"]["name"])
        selector = {m.PIPELINE: pipeline, m.ROLE: "source"}
        now = datetime.now(UTC)
        for config_map in self.api.list_objects("ConfigMap", namespace, labels=selector).get("items", []):
            name = st.name_of(config_map)
            created = _timestamp(config_map["metadata"].get("creationTimestamp"))
            if name in used or (now - created).total_seconds() < _PRUNE_MIN_AGE_SECONDS:
                continue
            self.api.delete("ConfigMap", name, namespace)


def _session_exit(sessions: dict[str, str], key: str, line: str) -> str | None:
    """The exit code a pod's bootstrap reported in `line`, or None (recording the session on first sight).

    The bootstrap prints a random session before any other code runs in the pod, then, when the stage
    process ends, the same session with its exit code: seeing it on the followed log tells the outcome
    seconds before the kubelet's pod status does. A line without the right session is ignored.
    """
    rest = line[len(m.SESSION_PREFIX) :].strip()
    if key not in sessions:
        sessions[key] = rest
        return None
    head, _, code = rest.rpartition(" exited with code ")
    if head == sessions[key] and code.lstrip("-").isdigit():
        return code
    return None


def secrets_group(run: RunContext) -> str:
    """The pipeline's secrets_group, or "default" when it names none."""
    return run.pipeline.pipeline.secrets_group or "default"


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


def _timestamp(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _shielded(work: Awaitable[T]) -> T:
    """Awaits clean-up work even when the task is being cancelled again meanwhile."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        return await task
