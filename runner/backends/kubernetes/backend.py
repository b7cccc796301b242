"""The Kubernetes backend: batch stages as Jobs, service stages as Deployments + Services (+ Ingress).

One namespace per pipeline environment. Each run ships its checkout as immutable ConfigMaps named by
pipeline, commit and content digest, so every pod of the run (retries, restarts, new replicas) runs
exactly that commit, and no Git credentials ever reach a stage pod. This module is the
:class:`~runner.backends.base.Backend` facade: a run's preparation and clean-up are in :mod:`.runs`,
batch stages in :mod:`.jobs`, service stages in :mod:`.services`; the services it runs are listed and
deleted through :mod:`.inventory` (the ``ServiceInventory`` capability, as ``bodywork services`` does).
Blocking client calls run in threads.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from runner.backends.base import RemovedService, RunContext, StageError, StageJob, StageResult
from runner.backends.kubernetes import inventory, jobs, runs, services
from runner.backends.kubernetes import workloads as w
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.errors import KubeError
from runner.backends.kubernetes.settings import KubernetesSettings
from runner.model import dns_label

log = logging.getLogger(__name__)


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
        self._runs: dict[str, runs.PreparedRun] = {}

    def namespace_for(self, environment: str) -> str:
        """The namespace a run deployed into `environment` uses: the setting ``namespace`` when it fixes
        one for every environment, else the environment's own (as a DNS label)."""
        return dns_label(self.settings.namespace or environment)

    async def start_run(self, run: RunContext) -> None:
        namespace = self.namespace_for(run.environment)
        prepared = await asyncio.to_thread(runs.prepare, self.api, self.settings, run, namespace)
        self._runs[run.run_id] = prepared

    async def run_batch(self, job: StageJob) -> StageResult:
        run = await self._stage_run(job)
        manifest = w.job(
            run.namespace,
            run.identity,
            job.stage,
            job.env,
            runs.pod_settings(self.settings, run, job),
            ttl_seconds=self.settings.job_ttl_seconds,
        )
        return await jobs.run_job(self.api, self.settings, job, run.namespace, manifest)

    async def deploy_service(self, job: StageJob) -> StageResult:
        run = await self._stage_run(job)
        stage = job.stage
        assert stage.service is not None
        pod = runs.pod_settings(self.settings, run, job)
        ingress = w.ingress(run.namespace, run.identity, stage, self.settings.ingress_class)
        objects = services.ServiceObjects(
            deployment=w.deployment(run.namespace, run.identity, stage, job.env, pod),
            service=w.cluster_service(run.namespace, run.identity, stage),
            ingress=ingress if stage.service.ingress else None,
        )
        job.attempt_started(1)
        return await services.deploy(self.api, self.settings, job, run.identity, run.namespace, objects)

    async def finish_run(self, run: RunContext, succeeded: bool) -> None:
        prepared = self._runs.pop(run.run_id, None)
        if prepared is None:
            return
        try:
            await asyncio.to_thread(
                runs.clean_up, self.api, self.settings, run, prepared.namespace, succeeded
            )
        except KubeError as error:  # clean-up must not turn a finished run into a crash
            log.warning("cleaning up after run %s failed: %s", run.run_id, error)

    async def teardown(self, environment: str) -> None:
        namespace = self.namespace_for(environment)
        try:
            deleted = await asyncio.to_thread(runs.delete_environment, self.api, self.settings, namespace)
        except KubeError as error:
            raise StageError(f"tearing down namespace {namespace} failed: {error}") from None
        log.info("tore down namespace %s: %s", namespace, deleted)

    async def close(self) -> None:
        self.api.close()

    # -- the service inventory (runner.backends.base.ServiceInventory) ------------------------------

    async def list_services(self) -> set[tuple[str, str]]:
        """(namespace, name) of every bodywork service stage in the cluster (every namespace the
        credentials may list). Raises KubeError when the API cannot say."""
        found = await asyncio.to_thread(inventory.list_services, self.api)
        return {(service.namespace, service.name) for service in found}

    async def remove_service(self, namespace: str, name: str) -> RemovedService | None:
        """Deletes the Deployment, Service and Ingress of service `name`, as ``bodywork services delete``
        does; None when none of them existed. Raises NotFound for a Deployment bodywork does not
        manage, KubeError when the API refuses."""
        kinds = await asyncio.to_thread(inventory.delete_service, self.api, namespace, name)
        return RemovedService(namespace, name, tuple(kinds)) if kinds else None

    def source_archive(self, namespace: str, name: str, token: str) -> Path | None:
        """The archive a stage pod downloads (`token` from the run's Secret `name`); None once the run's
        objects are gone. Raises PermissionError for a token that does not open it. Blocking."""
        shelf = runs.shelf_of(self.settings)
        if shelf is None:
            return None
        try:
            if not shelf.opens(namespace, name, token):
                raise PermissionError(f"the token does not open the sources {namespace}/{name}")
            archive = shelf.find(namespace, name)
        except ValueError:  # not an object name: nothing of ours
            return None
        # The run's Secret is what makes its token valid: pruned or torn down, the token stops working.
        if archive is None or self.api.find("Secret", name, namespace) is None:
            return None
        return archive

    async def _stage_run(self, job: StageJob) -> runs.PreparedRun:
        """The run `job` belongs to, after checking that the secrets its stage names exist (and handing
        their values to the engine to mask)."""
        try:
            run = self._runs[job.run.run_id]
        except KeyError:
            raise StageError(
                f"run {job.run.run_id} was not started on this backend (start_run first)"
            ) from None
        if job.stage.secrets:
            group = runs.secrets_group(job.run)
            values = await asyncio.to_thread(runs.read_secrets, self.api, job.stage, group, run.namespace)
            job.secret_values.update(values)
        return run
