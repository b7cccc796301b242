"""A run's life in the service: its status (queue states included) and, for a failed run, what kind
of failure ended it.

The engine (:class:`runner.events.RunState`) only knows how a run it executed ended; queueing,
coalescing and restarts are the service's business, so their states live here. Both enums are stored
by value (the store binds them as SQL parameters).
"""

from __future__ import annotations

from enum import StrEnum

from runner.events import RunState


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)

    @classmethod
    def of_outcome(cls, state: RunState) -> RunStatus:
        """The status of a run the engine finished in `state`."""
        return cls(state.value)


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


class FailureKind(StrEnum):
    """Why a failed run failed; decides the commit status (``error`` for git, ``failure`` otherwise)."""

    GIT = "git"
    """The commit could not be fetched or checked out."""
    CONFIG = "config"
    """bodywork.yaml is invalid (the run's ``problems`` list says how)."""
    PIPELINE = "pipeline"
    """A stage or a teardown failed."""
    INTERRUPTED = "interrupted"
    """Restarts of the service interrupted the run more often than it is re-run."""
    UNCONFIGURED = "unconfigured"
    """The run's repository is no longer in the settings."""
    INTERNAL = "internal"
    """A bug in the service."""
