"""Fake SaaS servers on loopback that validate requests as strictly as the real services (GitHub and
GitLab statuses, the Slack Web API and Slack's Socket Mode endpoint).

Each fake is a context manager (``with FakeGitHub() as fake:``) serving real HTTP on a free port;
``fixtures`` turns them into pytest fixtures.
"""

from .clock import FakeTime
from .github_api import FakeGitHub, GitHubStatus
from .gitlab_api import FakeGitLab, GitLabStatus
from .slack_api import FakeSlack
from .slack_socket import FakeSocketMode

__all__ = [
    "FakeGitHub",
    "FakeGitLab",
    "FakeSlack",
    "FakeSocketMode",
    "FakeTime",
    "GitHubStatus",
    "GitLabStatus",
]
