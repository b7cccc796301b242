"""What the pages show, computed from records and settings: pure, no HTTP and no templates.

The templates (``gitops/web/templates``) only lay these values out; the live updates
(:mod:`gitops.web.live`) send the same values as JSON, so a page and its updates never disagree.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

from gitops.settings import RepositorySettings, Settings
from gitops.status import RunStatus
from gitops.store import LogRecord, RunRecord, StageRecord

PAGE_SIZE = 25
TRIGGERS = ("webhook", "manual", "schedule")


@dataclass(frozen=True)
class StageView:
    name: str
    state: str
    kind: str
    attempts: int
    duration: str
    reason: str
    url: str


def stage_views(run: RunRecord, stages: Sequence[StageRecord]) -> list[list[StageView]]:
    """The run's DAG, step by step, each stage with its state (``pending`` before it started)."""
    by_name = {s.stage: s for s in stages}
    steps = []
    for step in run.steps:
        views = []
        for name in step:
            record = by_name.get(name)
            if record is None:
                views.append(StageView(name, "pending", "", 0, "", "", ""))
            else:
                views.append(StageView(
                    name, record.state, record.kind, record.attempts, duration_text(record.duration),
                    record.reason, record.url,
                ))
        steps.append(views)
    return steps


def run_state(run: RunRecord, stages: Sequence[StageRecord]) -> dict[str, Any]:
    """What a live update of the run page carries (everything but the log lines)."""
    return {
        "state": run.state.value,
        "final": run.state.is_final,
        "headline": headline(run, stages),
        "duration": duration_text(_run_seconds(run)),
        "started": time_text(run.started_at),
        "finished": time_text(run.finished_at),
        "stages": [asdict(view) for step in stage_views(run, stages) for view in step],
    }


LogLine = tuple[int, int, str, str]
"""(number in the run's log, line id, stage, text): plain tuples, the template's fastest access."""


class LogLines:
    """A run's log lines for its page, read from the store while the page is being sent.

    Iterating yields the lines of `stage` that contain `search` (all of them by default), at most
    `limit` lines of the log read in batches; afterwards :attr:`count`, :attr:`last_id` and
    :attr:`truncated` say how much of the log was read (the template uses them below the log)."""

    def __init__(
        self, fetch: Callable[[int, int], Sequence[LogRecord]], stage: str = "", search: str = "",
        limit: int = 10_000, batch: int = 2_000,
    ) -> None:
        """`fetch(after, limit)`: the lines after line id `after`, oldest first."""
        self._fetch = fetch
        self.stage, self.search = stage, search
        self.limit, self.batch = limit, batch
        self.count = 0
        self.last_id = 0
        self.truncated = False

    def __iter__(self) -> Iterator[LogLine]:
        needle = self.search.lower()
        while self.count < self.limit:
            lines = self._fetch(self.last_id, min(self.batch, self.limit - self.count))
            for x in lines:
                self.count += 1
                stage = x.stage or "service"
                if (not self.stage or stage == self.stage) and (not needle or needle in x.line.lower()):
                    yield (self.count, x.id, stage, x.line)
            if not lines:
                return
            self.last_id = lines[-1].id
        self.truncated = bool(self._fetch(self.last_id, 1))


def headline(run: RunRecord, stages: Sequence[StageRecord] = ()) -> str:
    """The one sentence at the top of a run page: why it failed, or where it stands."""
    if run.state is RunStatus.FAILED:
        kind = f" ({run.failure.value})" if run.failure else ""
        return f"Failed{kind}: {run.reason}" if run.reason else f"Failed{kind}"
    if run.state in (RunStatus.CANCELLED, RunStatus.SUPERSEDED):
        return f"{run.state.value.capitalize()}: {run.reason}" if run.reason else run.state.value.capitalize()
    if run.state is RunStatus.SUCCEEDED:
        done = "Torn down" if run.action == "teardown" else "Deployed"
        return f"{done} {run.environment}"
    if run.state is RunStatus.QUEUED:
        return "Waiting in the queue"
    return _progress(run, stages)


def _progress(run: RunRecord, stages: Sequence[StageRecord]) -> str:
    """``Running step 2 of 3: train, evaluate`` (or ``Running``, before the DAG is known)."""
    running = {s.stage for s in stages if s.state == "running"}
    for number, step in enumerate(run.steps, 1):
        names = [name for name in step if name in running]
        if names:
            return f"Running step {number} of {len(run.steps)}: {', '.join(names)}"
    return "Running"


def _run_seconds(run: RunRecord) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return run.finished_at - run.started_at


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def time_text(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ref_name(ref: str) -> str:
    """``main`` for ``refs/heads/main``, ``v1.2`` for ``refs/tags/v1.2``."""
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


_API_SUFFIX = re.compile(r"/api/v[34]$")


def web_base(repository: RepositorySettings) -> str:
    """The provider's web address of the repository (from its API root)."""
    base = _API_SUFFIX.sub("", repository.api_base.rstrip("/"))
    base = base.replace("://api.github.com", "://github.com")
    return f"{base}/{repository.name}"


def commit_url(repository: RepositorySettings | None, sha: str) -> str | None:
    """The commit's page on GitHub or GitLab, or None for an unknown repository or no commit."""
    if repository is None or not re.fullmatch(r"[0-9a-f]{40}", sha) or sha == "0" * 40:
        return None
    separator = "/-/commit/" if repository.provider == "gitlab" else "/commit/"
    return web_base(repository) + separator + sha


class FilterError(ValueError):
    """A filter of the runs list is not one of the values it can take."""


@dataclass(frozen=True)
class RunFilters:
    """The runs list's filters and page, from the query string (empty: no filter)."""

    repository: str = ""
    environment: str = ""
    branch: str = ""
    state: str = ""
    trigger: str = ""
    page: int = 1
    choices: Mapping[str, Sequence[str]] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> RunFilters:
        state = query.get("state", "").strip()
        if state and state not in {s.value for s in RunStatus}:
            raise FilterError(f"state {state!r} is not one of {', '.join(s.value for s in RunStatus)}")
        page = query.get("page", "1").strip() or "1"
        if not page.isdigit() or not 1 <= int(page) <= 100_000:
            raise FilterError(f"page must be a positive integer, not {page!r}")
        return cls(
            repository=query.get("repository", "").strip(),
            environment=query.get("environment", "").strip(),
            branch=query.get("branch", "").strip(),
            state=state,
            trigger=query.get("trigger", "").strip(),
            page=int(page),
        )

    def store_query(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`gitops.store.Store.list_runs` for this page (one run more than
        a page, so that the page knows whether another follows)."""
        return {
            "repository": self.repository or None,
            "environment": self.environment or None,
            "ref": self.branch or None,
            "state": RunStatus(self.state) if self.state else None,
            "trigger": self.trigger or None,
            "limit": PAGE_SIZE + 1,
            "offset": (self.page - 1) * PAGE_SIZE,
        }

    def link(self, page: int) -> str:
        """The query string of `page` with these filters."""
        values = {k: v for k, v in self.active().items()}
        if page > 1:
            values["page"] = str(page)
        return "?" + urlencode(values) if values else "?"

    def active(self) -> dict[str, str]:
        names = ("repository", "environment", "branch", "state", "trigger")
        return {name: getattr(self, name) for name in names if getattr(self, name)}


def filter_choices(
    settings: Settings, environments: Sequence[str], triggers: Sequence[str]
) -> dict[str, list[str]]:
    """The values the runs list's drop-downs offer."""
    return {
        "repository": sorted({r.name for r in settings.repositories}),
        "environment": sorted(environments),
        "state": [s.value for s in RunStatus],
        "trigger": sorted({*TRIGGERS, *triggers}),
    }


@dataclass(frozen=True)
class ScheduleView:
    """An environment's schedule as its page shows it."""

    cron: str
    timezone: str
    next_fire: float | None
    suspended: bool = False
    source: str = ""
    last_fire: float | None = None
    last_outcome: str = ""


@dataclass(frozen=True)
class EnvironmentView:
    name: str
    latest: RunRecord
    deployed: RunRecord | None
    """The last successful deploy (None when nothing succeeded yet or it was torn down since)."""
    services: list[StageView]
    schedule: ScheduleView | None
    runs: list[RunRecord]


def deployed_run(runs: Sequence[RunRecord]) -> RunRecord | None:
    """Of an environment's runs (newest first), the one whose deploy is in place now."""
    for run in runs:
        if run.state is RunStatus.SUCCEEDED:
            return run if run.action != "teardown" else None
    return None
