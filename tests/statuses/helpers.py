"""Builders shared by the commit-status tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gitops.statuses import CommitStatus, StatusPublisher, StatusState, create_publisher
from tests.fakes.clock import FakeTime

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"
TARGET = "https://bodywork.example.com/runs/17"


def commit_status(
    api_base: str,
    token: str,
    state: StatusState = StatusState.PENDING,
    **changes: Any,
) -> CommitStatus:
    """A queued status for SHA on main; ``changes`` set the provider and repository and override any field."""
    fields: dict[str, Any] = {
        "api_base": api_base,
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


def github_status(
    api_base: str,
    token: str,
    state: StatusState = StatusState.PENDING,
    **changes: Any,
) -> CommitStatus:
    return commit_status(
        api_base, token, state, **{"provider": "github", "repository": "octo-org/ml-pipeline", **changes}
    )


def gitlab_status(
    api_base: str,
    token: str,
    state: StatusState = StatusState.PENDING,
    **changes: Any,
) -> CommitStatus:
    return commit_status(
        api_base, token, state, **{"provider": "gitlab", "repository": "data-team/models/churn", **changes}
    )


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


async def until(condition: Callable[[], bool]) -> None:
    """Waits, yielding to the loop, until ``condition()`` holds; the scenario's timeout bounds it."""
    while not condition():
        await asyncio.sleep(0.01)
