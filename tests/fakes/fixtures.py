"""Pytest fixtures for the fake SaaS APIs; load with ``pytest_plugins = ["tests.fakes.fixtures"]``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .clock import FakeTime
from .github_api import FakeGitHub
from .gitlab_api import FakeGitLab


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """A running fake GitHub at ``fake_github.api_base`` accepting ``fake_github.token``."""
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def fake_gitlab() -> Iterator[FakeGitLab]:
    """A running fake GitLab at ``fake_gitlab.api_base`` accepting ``fake_gitlab.token``."""
    with FakeGitLab() as fake:
        yield fake


@pytest.fixture
def fake_time() -> FakeTime:
    """``fake_time.clock`` and ``fake_time.sleep`` for code that takes clock and sleep injections."""
    return FakeTime()
