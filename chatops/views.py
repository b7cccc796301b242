"""The service's records as chatops' views, and the store as the notifier's source and memory.

Reads go through the store's read connection (never waiting for its writer); writes are queued for
its group commit and awaited without blocking the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from chatops.audit import AuditEntry
from chatops.model import CommitView, RunView, StageView
from chatops.notifier import MessageRef
from gitops.service import Service
from gitops.settings import RepositorySettings
from gitops.status import RunStatus
from gitops.store import RunRecord, StageRecord, Store

log = logging.getLogger(__name__)
SINK = "slack"
ATTACHED_LOG_LINES = 10_000


def web_base(repository: RepositorySettings) -> str:
    """Where the repository's pages are: its API base without the API path."""
    parts = urlsplit(repository.api_base)
    host = parts.netloc.removeprefix("api.") if parts.netloc == "api.github.com" else parts.netloc
    return f"{parts.scheme}://{host}"


def commit_url(repository: RepositorySettings | None, sha: str) -> str:
    if repository is None:
        return ""
    separator = "/-/commit/" if repository.provider == "gitlab" else "/commit/"
    return f"{web_base(repository)}/{repository.name}{separator}{sha}"


def trigger_of(trigger: str, ref: str) -> str:
    """What started a run, as users say it: push, tag, api, slack:<user>, schedule."""
    if trigger == "webhook":
        return "tag" if ref.startswith("refs/tags/") else "push"
    return "api" if trigger == "manual" else trigger


class ServiceViews:
    """Turns the service's runs into :class:`RunView` (with commit author and title from the mirror)."""

    def __init__(self, service: Service, mask: Callable[[str], str]) -> None:
        self.service = service
        self.mask = mask
        self._commits: dict[tuple[str, str], tuple[str, str]] = {}

    @property
    def store(self) -> Store:
        return self.service.require_store()

    def repository(self, run: RunRecord) -> RepositorySettings | None:
        return self.service.settings.repository(run.provider, run.repository_name)

    def _describe(self, repository: RepositorySettings | None, sha: str) -> tuple[str, str]:
        if repository is None or self.service.mirrors is None:
            return "", ""
        key = (repository.key, sha)
        if key not in self._commits:
            try:
                found = self.service.mirrors.describe_sync(repository, sha)
            except Exception:  # no mirror yet: the message simply goes without author and title
                found = None
            if found is None:
                return "", ""
            self._commits[key] = found
        return self._commits[key]

    def view(self, run_id: str) -> RunView | None:
        run = self.store.get(run_id)
        return None if run is None else self.of(run, self.store.stages(run_id))

    def of(self, run: RunRecord, stages: Sequence[StageRecord] = ()) -> RunView:
        repository = self.repository(run)
        # A queued run's commit may not be fetched yet; reading it costs a repository open on the loop.
        queued = run.state is RunStatus.QUEUED
        author, title = ("", "") if queued else self._describe(repository, run.commit)
        superseding = self.store.get(run.superseded_by) if run.superseded_by else None
        return RunView(
            id=run.id,
            repository=run.repository_name,
            environment=run.environment,
            ref=run.ref,
            commit=CommitView(run.commit, author, title, commit_url(repository, run.commit)),
            state=run.state.value,
            trigger=trigger_of(run.trigger, run.ref),
            url=self.service.reporter.target_url(run.id),
            action=run.action,
            reason=self.mask(run.reason),
            superseded_by=run.superseded_by,
            superseded_by_commit=superseding.commit if superseding else None,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            stages=tuple(
                StageView(
                    s.stage, s.kind or "batch", s.state, s.started_at, s.finished_at, self.mask(s.reason)
                )
                for s in _in_dag_order(run, stages)
            ),
        )

    def stage_log(self, run_id: str, stage: str) -> Sequence[str]:
        """The stage's log as attached to its thread reply: its last :data:`ATTACHED_LOG_LINES` lines."""
        return [line.line for line in self.store.log_tail(run_id, ATTACHED_LOG_LINES, stage)]

    def stage_log_length(self, run_id: str, stage: str) -> int:
        return self.store.count_logs(run_id, stage)


def _in_dag_order(run: RunRecord, stages: Sequence[StageRecord]) -> list[StageRecord]:
    order = {name: index for index, name in enumerate(name for step in run.steps for name in step)}
    return sorted(stages, key=lambda s: order.get(s.stage, len(order)))


class StoreMessageIds:
    """Message ids in the store (migration 3): a restart finds them. A log part is keyed by the run's
    interruptions, so a run re-run after a restart posts its stages' logs again."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _part(self, run_id: str, stage: str) -> str:
        run = self.store.get(run_id)
        return f"{run.interruptions if run else 0}:log:{stage}"

    def get(self, run_id: str) -> MessageRef | None:
        found = self.store.message(run_id, SINK)
        if found is None:
            return None
        prefix = self._part(run_id, "")
        posted = frozenset(p.removeprefix(prefix) for p in found.parts if p.startswith(prefix))
        return MessageRef(found.channel, found.ts, posted)

    async def put(self, run_id: str, channel: str, ts: str) -> None:
        await self.store.write(self.store.put_message, run_id, SINK, channel, ts)

    async def log_posted(self, run_id: str, stage: str) -> None:
        part = self._part(run_id, stage)
        await self.store.write(self.store.add_message_part, run_id, SINK, part)


class StoreAudit:
    """Audit entries into the store (in its next group commit, not awaited: never blocks)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, entry: AuditEntry) -> None:
        data: dict[str, Any] = entry.to_json()
        data.pop("at")
        self.store.submit(self.store.add_audit, entry.at, entry.user_id, entry.action, entry.outcome, data)
