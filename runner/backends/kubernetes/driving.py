"""Drives a progress reducer: waits for what the watches deliver (or for the reducer's next deadline),
feeds it, and performs the actions it decides. The only place the reducers meet the cluster and the
clock, shared by batch stages (:mod:`.jobs`) and service stages (:mod:`.services`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import Any, TypeVar

from runner.backends.base import StageJob
from runner.backends.kubernetes import status as st
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.errors import KubeError
from runner.backends.kubernetes.observations import Broken
from runner.backends.kubernetes.progress import (
    Action,
    AttemptFailed,
    AttemptStarted,
    Finished,
    FollowLog,
    Log,
    Progress,
    ReadPreviousLog,
    ReadWarnings,
)
from runner.backends.kubernetes.rollout_progress import LAST_LINES
from runner.backends.kubernetes.watching import Watcher

T = TypeVar("T")


class Driver:
    """Runs one reducer against one watcher, for one stage job in one namespace."""

    def __init__(self, api: KubeApi, watcher: Watcher, namespace: str, job: StageJob) -> None:
        self.api = api
        self.watcher = watcher
        self.namespace = namespace
        self.job = job

    async def drive(self, progress: Progress) -> Finished:
        """Observes until `progress` decides the outcome; a broken watch raises its error."""
        loop = asyncio.get_running_loop()
        while True:
            deadline = progress.deadline()
            item = await self.watcher.next(None if deadline is None else max(0.0, deadline - loop.time()))
            if isinstance(item, Broken):
                raise item.error
            now = loop.time()
            actions = progress.tick(now) if item is None else progress.observe(item, now)
            if finished := await self.perform(progress, actions):
                return finished

    async def perform(self, progress: Progress, actions: list[Action]) -> Finished | None:
        """Performs `actions` in order (reads answered through ``progress.resume``); the outcome, if any."""
        pending = deque(actions)
        finished: Finished | None = None
        while pending:
            match pending.popleft():
                case Log(line):
                    self.job.log(line)
                case FollowLog(pod, key):
                    self.watcher.follow_log(self.namespace, pod, key)
                case AttemptStarted(attempt):
                    self.job.attempt_started(attempt)
                case AttemptFailed(attempt, reason):
                    self.job.attempt_failed(attempt, reason)
                case ReadWarnings(pods):
                    pending.extend(progress.resume(await self.warnings(pods)))
                case ReadPreviousLog(pod):
                    pending.extend(progress.resume(await self.previous_log(pod)))
                case Finished() as outcome:
                    finished = outcome
        return finished

    async def warnings(self, pods: tuple[str, ...]) -> str:
        """The latest Warning events of `pods` (sandbox, volume, probe failures), for a reason."""
        events: list[dict[str, Any]] = []
        for pod in pods:
            fields = f"involvedObject.kind=Pod,involvedObject.name={pod},type=Warning"
            try:
                listing = await asyncio.to_thread(
                    self.api.list_objects, "Event", self.namespace, fields=fields
                )
            except KubeError:
                continue
            events += listing.get("items") or []
        return st.warnings_text(events)

    async def previous_log(self, pod: str) -> str:
        """The last lines the pod's previous container printed, as the kubelet kept them."""
        try:
            return await asyncio.to_thread(
                self.api.read_log, self.namespace, pod, previous=True, tail_lines=LAST_LINES
            )
        except KubeError:
            return ""  # the kubelet may have dropped the previous container's log already


async def shielded(work: Awaitable[T]) -> T:
    """Awaits clean-up work even when the task is being cancelled again meanwhile."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        return await task
