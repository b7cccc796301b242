"""GitLab commit statuses: the request to send and what an answer means. Pure, no I/O.

``POST {base}/api/v4/projects/{id or url-encoded path}/statuses/{sha}``; ``base`` is
``https://gitlab.com``, a self-hosted base (with its relative URL root, if any), or a base that already
ends in ``/api/v4``.
"""

from __future__ import annotations

from urllib.parse import quote

from gitops.statuses.api import (
    ApiRequest,
    ApiResponse,
    Delivered,
    Outcome,
    Rejected,
    Retry,
    excerpt,
    rate_limited,
)
from gitops.statuses.model import CommitStatus, gitlab_description, gitlab_ref, gitlab_state

# GitLab's answer when the status already has the state we post, e.g.
# "Cannot transition status via :run from :running (Reason(s): Status cannot transition via "run")".
ALREADY_APPLIED_MARKER = "cannot transition status"


def api_root(api_base: str) -> str:
    base = api_base.rstrip("/")
    return base if base.endswith("/api/v4") else base + "/api/v4"


def project_id(repository: str) -> str:
    """A numeric id as it is; a ``group/sub/name`` path URL-encoded as one path segment."""
    repository = repository.strip("/")
    return repository if repository.isdigit() else quote(repository, safe="")


def build_request(status: CommitStatus, user_agent: str) -> ApiRequest:
    path = f"/projects/{project_id(status.repository)}/statuses/{quote(status.sha, safe='')}"
    body: dict[str, str] = {
        "state": gitlab_state(status.state),
        "name": status.context,
        "description": gitlab_description(status.description),
    }
    if status.target_url:
        body["target_url"] = status.target_url
    if status.ref:
        body["ref"] = gitlab_ref(status.ref)
    headers = {"PRIVATE-TOKEN": status.token, "User-Agent": user_agent, "Accept": "application/json"}
    return ApiRequest("POST", api_root(status.api_base) + path, body, headers)


def classify(response: ApiResponse, now: float, secrets: tuple[str, ...] = ()) -> Outcome:
    """``now`` is the wall clock in epoch seconds, to read ``RateLimit-Reset``."""
    code = response.status_code
    if 200 <= code < 300:
        return Delivered()
    body = excerpt(response.text, secrets)
    if code == 400 and ALREADY_APPLIED_MARKER in response.json_message().lower():
        return Delivered(already_applied=True)
    if code == 429:
        return rate_limited(response, now, body)
    if code >= 500 or code in (408, 409):  # 409: a concurrent update of the same status
        return Retry(f"HTTP {code} {body}")
    return Rejected(f"HTTP {code} {body}")
