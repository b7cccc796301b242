"""How the service's runs are named in Slack: commit links per provider, triggers as users say them."""

from __future__ import annotations

import pytest

from chatops.views import commit_url, trigger_of
from gitops.secret import Secret
from gitops.settings import RepositorySettings

SHA = "0123456789abcdef0123456789abcdef01234567"


def repository(provider: str, api_base: str, name: str) -> RepositorySettings:
    return RepositorySettings(
        url=f"https://example.invalid/{name}.git", provider=provider, name=name, api_base=api_base,
        webhook_secret=Secret("s3cr3t"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("provider", "api_base", "name", "expected"),
    [
        (
            "github",
            "https://api.github.com",
            "acme/pipelines",
            f"https://github.com/acme/pipelines/commit/{SHA}",
        ),
        ("github", "https://ghe.acme.io/api/v3", "ml/train", f"https://ghe.acme.io/ml/train/commit/{SHA}"),
        (
            "gitlab",
            "https://gitlab.com/api/v4",
            "group/sub/proj",
            f"https://gitlab.com/group/sub/proj/-/commit/{SHA}",
        ),
    ],
)
def test_commit_links(provider: str, api_base: str, name: str, expected: str) -> None:
    assert commit_url(repository(provider, api_base, name), SHA) == expected
    assert commit_url(None, SHA) == ""


def test_triggers_as_users_say_them() -> None:
    assert trigger_of("webhook", "refs/heads/main") == "push"
    assert trigger_of("webhook", "refs/tags/v1.2") == "tag"
    assert trigger_of("manual", "refs/heads/main") == "api"
    assert trigger_of("slack:ada", "refs/heads/main") == "slack:ada"
