"""GitHub commit statuses: the request to send and what an answer means. Pure, no I/O.

``POST {api_base}/repos/{owner}/{repo}/statuses/{sha}``; ``api_base`` is ``https://api.github.com``
or ``https://HOST/api/v3`` on Enterprise Server.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from gitops.statuses.api import (
    ApiRequest,
    ApiResponse,
    Delivered,
    Outcome,
    Rejected,
    Retry,
    excerpt,
    exhausted_quota,
    rate_limited,
)
from gitops.statuses.model import CommitStatus, github_description, github_state

API_VERSION = "2022-11-28"


def api_root(api_base: str) -> str:
    base = api_base.rstrip("/")
    # The web address of github.com is a common slip for its API address.
    if base in ("https://github.com", "https://www.github.com"):
        return "https://api.github.com"
    return base


def build_request(status: CommitStatus, user_agent: str) -> ApiRequest:
    owner, _, name = status.repository.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(
            f"GitHub repository {status.repository!r} is not 'owner/name': "
            "give the repository's full name, as in its URL."
        )
    path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/statuses/{quote(status.sha, safe='')}"
    body: dict[str, str] = {
        "state": github_state(status.state),
        "description": github_description(status.state, status.description),
        "context": status.context,
    }
    if status.target_url:
        body["target_url"] = status.target_url
    headers = {
        "Authorization": f"Bearer {status.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": user_agent,
    }
    return ApiRequest("POST", api_root(status.api_base) + path, body, headers)


def build_check(status: CommitStatus, user_agent: str) -> ApiRequest:
    """The call that lists the commit's latest statuses: did a call that timed out go through?"""
    sent = build_request(status, user_agent)
    owner, _, name = status.repository.partition("/")
    path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/commits/{quote(status.sha, safe='')}"
    return ApiRequest("GET", f"{api_root(status.api_base)}{path}/statuses?per_page=100", {}, sent.headers)


def already_applied(response: ApiResponse, status: CommitStatus) -> bool:
    """Whether the newest status of `status`'s context, in the answer to :func:`build_check`, is it."""
    if not 200 <= response.status_code < 300:
        return False
    try:
        listed = json.loads(response.text)
    except ValueError:
        return False
    expected = build_request(status, "").json
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict) and item.get("context") == status.context:
            return all(item.get(k) == expected.get(k) for k in ("state", "description", "target_url"))
    return False


def _is_rate_limited(response: ApiResponse) -> bool:
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    if response.header("retry-after") is not None or exhausted_quota(response):
        return True
    return "rate limit" in response.json_message().lower()  # the secondary rate limit


def classify(response: ApiResponse, now: float, secrets: tuple[str, ...] = ()) -> Outcome:
    """``now`` is the wall clock in epoch seconds, to read ``X-RateLimit-Reset``."""
    code = response.status_code
    if 200 <= code < 300:
        return Delivered()
    body = excerpt(response.text, secrets)
    if _is_rate_limited(response):
        return rate_limited(response, now, body)
    if code >= 500 or code == 408:
        return Retry(f"HTTP {code} {body}")
    return Rejected(f"HTTP {code} {body}")
