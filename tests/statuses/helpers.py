"""Builders shared by the commit-status tests."""

from __future__ import annotations

from typing import Any

from gitops.statuses import CommitStatus, StatusPublisher, StatusState, create_publisher
from tests.fakes.clock import FakeTime

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"
TARGET = "https://bodywork.example.com/runs/17"


def github_status(
    api_base: str,
    token: str,
    state: StatusState = StatusState.PENDING,
    **changes: Any,
) -> CommitStatus:
    fields: dict[str, Any] = {
        "provider": "github",
        "api_base": api_base,
        "repository": "octo-org/ml-pipeline",
        "token": token,
        "sha": SHA,
        "ref": "refs/heads/main",
        "context": "bodywork/pipeline",
        "state": state,
        "description": "Pipeline queued",
        "target_url": TARGET,
    }
    fields.update(changes)
    return CommitStatus(**fields)


def gitlab_status(
    api_base: str,
    token: str,
    state: StatusState = StatusState.PENDING,
    **changes: Any,
) -> CommitStatus:
    fields: dict[str, Any] = {
        "provider": "gitlab",
        "api_base": api_base,
        "repository": "data-team/models/churn",
        "token": token,
        "sha": SHA,
        "ref": "refs/heads/main",
        "context": "bodywork/pipeline",
        "state": state,
        "description": "Pipeline queued",
        "target_url": TARGET,
    }
    fields.update(changes)
    return CommitStatus(**fields)


def publisher(fake_time: FakeTime, **settings: Any) -> StatusPublisher:
    """No pacing, no jitter (each backoff is its full step), fake sleep, short timeouts."""
    options: dict[str, Any] = {
        "min_interval_seconds": 0.0,
        "request_timeout_seconds": 2.0,
        "clock": fake_time.clock,
        "wall_clock": fake_time.clock,
        "sleep": fake_time.sleep,
        "jitter": lambda: 1.0,
    }
    options.update(settings)
    return create_publisher(**options)
