"""The web tests use the service fixtures of tests/gitops; the clients they open (tests/web/clients.py) are
closed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fixtures import fake_github, fake_gitlab
from tests.gitops.conftest import git_http, git_root, github_repo, make_service, venv_cache
from tests.web.clients import close_clients

__all__ = ["fake_github", "fake_gitlab", "git_http", "git_root", "github_repo", "make_service", "venv_cache"]


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_clients()
