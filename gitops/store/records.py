"""What the store holds, as immutable records, and how a row of ``runs`` becomes one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gitops.status import FailureKind, RunStatus


@dataclass(frozen=True)
class NewRun:
    repository: str
    """The repository's settings key, ``provider:name``."""
    provider: str
    ref: str
    commit: str
    environment: str
    namespace: str | None
    preview: bool
    action: str
    trigger: str
    delivery_id: str = ""

    def queued(self, run_id: str, created_at: float) -> RunRecord:
        """The record of this run as :meth:`~gitops.store.Store.accept` inserts it (the columns it
        leaves to their defaults as they are in the schema)."""
        return RunRecord(
            id=run_id, repository=self.repository, provider=self.provider, ref=self.ref,
            commit=self.commit, environment=self.environment, namespace=self.namespace,
            preview=self.preview, action=self.action, trigger=self.trigger,
            delivery_id=self.delivery_id, state=RunStatus.QUEUED, reason="", problems=[], pipeline="",
            steps=[], superseded_by=None, interruptions=0, created_at=created_at, started_at=None,
            finished_at=None,
        )


@dataclass(frozen=True)
class RunRecord:
    id: str
    repository: str
    provider: str
    ref: str
    commit: str
    environment: str
    namespace: str | None
    preview: bool
    action: str
    trigger: str
    delivery_id: str
    state: RunStatus
    reason: str
    problems: list[str]
    pipeline: str
    steps: list[list[str]]
    superseded_by: str | None
    interruptions: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    failure: FailureKind | None = None
    """What kind of failure ended a failed run (None for any other state)."""
    message: str = ""
    """The commit's message, once the commit is fetched."""

    @property
    def repository_name(self) -> str:
        return self.repository.split(":", 1)[1]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["failure"] = self.failure.value if self.failure else None
        data["repository"] = self.repository_name
        return data


@dataclass(frozen=True)
class StageRecord:
    stage: str
    kind: str
    state: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    reason: str
    url: str = ""
    """Where a deployed service stage answers; empty for a batch stage."""

    @property
    def duration(self) -> float | None:
        ended = self.finished_at
        return (ended - self.started_at) if ended and self.started_at else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = self.duration
        return data


@dataclass(frozen=True)
class LogRecord:
    id: int
    stage: str
    line: str
    at: float


@dataclass(frozen=True)
class MessageRecord:
    """Where a run's message is in a chat `sink` (``slack``), and which of its parts were posted."""

    channel: str
    ts: str
    parts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: float
    entry: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, **self.entry}


@dataclass(frozen=True)
class Accepted:
    run: RunRecord
    duplicate: bool
    superseded: list[RunRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Recovered:
    requeued: list[RunRecord]
    failed: list[RunRecord]


RUN_COLUMNS = (
    "id, repository, provider, ref, commit_sha, environment, namespace, preview, action, trigger, "
    "delivery_id, state, reason, problems, pipeline, steps, superseded_by, interruptions, created_at, "
    "started_at, finished_at, failure, message"
)


def run_from_row(row: Sequence[Any]) -> RunRecord:
    """A :class:`RunRecord` from a row selected as :data:`RUN_COLUMNS`."""
    return RunRecord(
        id=row[0], repository=row[1], provider=row[2], ref=row[3], commit=row[4], environment=row[5],
        namespace=row[6], preview=bool(row[7]), action=row[8], trigger=row[9], delivery_id=row[10],
        state=RunStatus(row[11]), reason=row[12], problems=json.loads(row[13]), pipeline=row[14],
        steps=json.loads(row[15]), superseded_by=row[16], interruptions=row[17], created_at=row[18],
        started_at=row[19], finished_at=row[20], failure=FailureKind(row[21]) if row[21] else None,
        message=row[22],
    )
