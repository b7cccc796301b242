"""The web tests use the service fixtures of tests/gitops."""

from __future__ import annotations

from tests.fakes.fixtures import fake_github, fake_gitlab
from tests.gitops.conftest import git_http, git_root, github_repo, make_service, venv_cache

__all__ = ["fake_github", "fake_gitlab", "git_http", "git_root", "github_repo", "make_service", "venv_cache"]
