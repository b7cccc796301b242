"""The publisher's settings, what it reports about each status, and the journal that keeps statuses
durable. Pure values and a protocol; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gitops.statuses.model import CommitStatus


@dataclass(frozen=True)
class PublisherSettings:
    min_interval_seconds: float | None = None
    """Seconds between two calls to the same host; ``None``: 1.0 for GitHub, 0.2 for GitLab."""
    max_attempts: int | None = None
    """Calls per status before giving up, rate-limited ones included; ``None``: no limit, a status is
    retried for as long as it is the latest of its commit and context, up to ``max_age_seconds``."""
    max_age_seconds: float = 24 * 3600.0
    """A status not delivered this long after it was queued is given up."""
    backoff_base_seconds: float = 1.0
    """First exponential backoff (5xx, connection errors, rate limits without a reset header)."""
    backoff_max_seconds: float = 600.0
    """Cap of one exponential backoff step, before jitter."""
    max_retry_wait_seconds: float = 3600.0
    """A provider that asks for a longer wait (``Retry-After``, a rate-limit reset) gets no retry;
    GitHub's primary rate limit resets within the hour."""
    request_timeout_seconds: float = 10.0
    """Connect, read and write timeout of one call."""
    max_queued: int = 10_000
    """Statuses waiting in memory at once; more are kept only in the journal (sent after a restart)."""
    history: int = 1000
    """Delivered, failed and superseded statuses kept for inspection (the newest): memory stays flat."""
    user_agent: str = "bodywork-gitops"


@dataclass(frozen=True)
class Delivery:
    status: CommitStatus
    attempts: int
    already_applied: bool = False
    """The provider already showed this status: GitLab answered that it had this state, or a call
    that timed out had gone through (GitHub's list of statuses said so)."""


@dataclass(frozen=True)
class Failure:
    status: CommitStatus
    reason: str
    """Why it was not delivered: an HTTP code with an excerpt of the answer, never the token."""
    attempts: int


class StatusJournal(Protocol):
    """Where statuses wait durably until they are delivered, so that a restart loses none.

    Called on the publisher's event loop; implementations must not block (the store's writes are
    group-committed, the fsync in a thread)."""

    def record(self, status: CommitStatus) -> None:
        """`status` is the one to deliver for its commit and context (it replaces any older one)."""

    def settle(self, status: CommitStatus, outcome: str, reason: str = "") -> None:
        """`status` was ``delivered``, ``rejected`` or ``expired``: it no longer waits."""

    def pending(self) -> list[CommitStatus]:
        """What still waits, oldest first (read once, when the publisher starts)."""
        ...
