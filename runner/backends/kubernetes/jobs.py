"""Batch stages as Jobs: create the Job, follow it with :class:`.job_progress.JobProgress` until the
outcome is decided, deliver the rest of the logs, and delete the Job when it would otherwise go on
(a stuck pod, a cancelled run)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from runner.backends.base import StageJob, StageResult
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.driving import Driver, shielded
from runner.backends.kubernetes.errors import KubeError
from runner.backends.kubernetes.job_progress import JobFinished, JobProgress
from runner.backends.kubernetes.manifests import JOB
from runner.backends.kubernetes.observations import LogEnd, LogText
from runner.backends.kubernetes.settings import KubernetesSettings
from runner.backends.kubernetes.watching import Watcher

log = logging.getLogger(__name__)

Obj = dict[str, Any]


async def run_job(
    api: KubeApi, settings: KubernetesSettings, job: StageJob, namespace: str, manifest: Obj
) -> StageResult:
    """Runs the Job `manifest` for `job` in `namespace`; its outcome."""
    assert job.stage.batch is not None
    name = manifest["metadata"]["name"]
    progress = JobProgress(
        max_attempts=job.stage.batch.retries + 1,
        unschedulable_grace=settings.unschedulable_grace_seconds,
        pull_grace=settings.image_pull_grace_seconds,
    )
    job.attempt_started(1)
    async with Watcher(api) as watcher:
        watcher.watch("Pod", namespace, labels={JOB: name})
        watcher.watch("Job", namespace, fields=f"metadata.name={name}")
        driver = Driver(api, watcher, namespace, job)
        try:
            await asyncio.to_thread(api.create, "Job", manifest, namespace)
            finished = await driver.drive(progress)
            assert isinstance(finished, JobFinished)
            await _drain_logs(driver, progress, settings.log_drain_seconds)
        except BaseException:
            watcher.close()
            await shielded(asyncio.to_thread(delete_job, api, namespace, name))
            raise
        if finished.delete_job:
            await asyncio.to_thread(delete_job, api, namespace, name)
        return finished.result


async def _drain_logs(driver: Driver, progress: JobProgress, seconds: float) -> None:
    """Delivers the rest of the followed logs (they end with their containers), for up to `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while progress.open_logs:
        item = await driver.watcher.next(max(0.0, deadline - loop.time()))
        if item is None:
            break
        if isinstance(item, LogText | LogEnd):
            await driver.perform(progress, progress.observe(item, loop.time()))


def delete_job(api: KubeApi, namespace: str, name: str) -> None:
    """Deletes the Job and its pods; a failure is logged, not raised (the stage's outcome stands)."""
    try:
        api.delete("Job", name, namespace, propagation="Background")
    except KubeError as error:
        log.warning("could not delete Job %s/%s: %s", namespace, name, error)
