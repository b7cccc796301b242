"""What a commit status is, and the pure rules that turn it into what each provider accepts.

No I/O here: values, the state mapping per provider, and text truncation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

PROVIDERS = ("github", "gitlab")
ELLIPSIS = "…"

GITHUB_DESCRIPTION_LIMIT = 140
GITLAB_DESCRIPTION_LIMIT = 255


class StatusState(StrEnum):
    """Our states; each provider maps them onto its own set (see the ``*_state`` functions)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self not in (StatusState.PENDING, StatusState.RUNNING)


@dataclass(frozen=True)
class CommitStatus:
    """One status to show on one commit. ``token`` never appears in ``repr`` or in any log line."""

    provider: str
    """``github`` or ``gitlab``."""
    api_base: str
    """GitHub: ``https://api.github.com`` or ``https://HOST/api/v3``; GitLab: ``https://gitlab.com``,
    a self-hosted base, or a base already ending in ``/api/v4``."""
    repository: str
    """GitHub ``owner/name``; GitLab ``group/sub/name`` or a numeric project id."""
    token: str = field(repr=False)
    sha: str
    ref: str
    """``refs/heads/main``, ``refs/tags/v1`` or a bare branch name; GitHub ignores it."""
    context: str
    state: StatusState
    description: str
    target_url: str

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(
                f"CommitStatus provider {self.provider!r} is not supported: use 'github' or 'gitlab'."
            )
        for name in ("api_base", "repository", "sha", "context"):
            if not getattr(self, name):
                raise ValueError(f"CommitStatus {name} is empty: give the {name} to report on.")
        if not isinstance(self.state, StatusState):
            object.__setattr__(self, "state", StatusState(self.state))

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """Statuses with the same key replace each other on the provider's side."""
        return (self.provider, self.api_base.rstrip("/"), self.repository, self.sha, self.context)

    @property
    def short_label(self) -> str:
        """For log lines: what and where, never the token."""
        return f"{self.context!r}={self.state.value} on {self.provider} {self.repository}@{self.sha[:12]}"


def truncate(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and an ellipsis, ``limit`` long."""
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _with_prefix(prefix: str, description: str, marker: str) -> str:
    if marker in description.lower():
        return description
    return f"{prefix}: {description}" if description else prefix


def github_state(state: StatusState) -> str:
    return {
        StatusState.PENDING: "pending",
        StatusState.RUNNING: "pending",
        StatusState.SUCCESS: "success",
        StatusState.FAILURE: "failure",
        StatusState.ERROR: "error",
        StatusState.CANCELED: "error",
    }[state]


def github_description(state: StatusState, description: str) -> str:
    """GitHub has no running or cancelled state: the description says it instead, within 140."""
    if state is StatusState.RUNNING:
        description = _with_prefix("Running", description, "running")
    elif state is StatusState.CANCELED:
        description = _with_prefix("Cancelled", description, "cancel")
    return truncate(description, GITHUB_DESCRIPTION_LIMIT)


def gitlab_state(state: StatusState) -> str:
    return {
        StatusState.PENDING: "pending",
        StatusState.RUNNING: "running",
        StatusState.SUCCESS: "success",
        StatusState.FAILURE: "failed",
        StatusState.ERROR: "failed",
        StatusState.CANCELED: "canceled",
    }[state]


def gitlab_description(description: str) -> str:
    return truncate(description, GITLAB_DESCRIPTION_LIMIT)


def gitlab_ref(ref: str) -> str:
    """GitLab wants the branch or tag name, not the full ``refs/...`` name."""
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref
