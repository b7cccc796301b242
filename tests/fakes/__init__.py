"""Fake SaaS servers on loopback that validate requests as strictly as the real services.

Each fake is a context manager (``with FakeGitHub() as fake:``) serving real HTTP on a free port;
``fixtures`` turns them into pytest fixtures.
"""

from .clock import FakeTime
from .github_api import FakeGitHub, GitHubStatus
from .gitlab_api import FakeGitLab, GitLabStatus

__all__ = ["FakeGitHub", "FakeGitLab", "FakeTime", "GitHubStatus", "GitLabStatus"]
