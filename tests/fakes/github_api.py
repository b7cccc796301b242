"""A fake GitHub REST API for commit statuses, as strict as github.com about what it accepts.

``POST {prefix}/repos/{owner}/{repo}/statuses/{sha}``; ``prefix`` is ``""`` (api.github.com) or
``/api/v3`` (Enterprise Server). Accepted statuses are kept per sha, in order, in ``statuses``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ._server import (
    Answer,
    FakeApiServer,
    RecordedRequest,
    is_http_url,
    parse_json_object,
    rate_limit_headers,
)

STATES = ("pending", "success", "failure", "error")
DESCRIPTION_LIMIT = 140
MAX_STATUSES_PER_CONTEXT = 1000
DOCS = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"

_PATH = re.compile(r"^/repos/(?P<owner>[^/?]+)/(?P<repo>[^/?]+)/statuses/(?P<sha>[^/?]+)$")
_LIST_PATH = re.compile(r"^/repos/(?P<owner>[^/?]+)/(?P<repo>[^/?]+)/commits/(?P<sha>[^/?]+)/statuses$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class GitHubStatus:
    repository: str
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    authorization: str
    user_agent: str


def _validation_failed(field: str, message: str) -> Answer:
    return Answer(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "Status", "code": "custom", "field": field, "message": message}],
            "documentation_url": DOCS,
        },
    )


class FakeGitHub(FakeApiServer):
    def __init__(
        self, token: str = "ghp_fake_token_0123456789", prefix: str = "", host: str = "127.0.0.1"
    ) -> None:
        super().__init__(host)
        self.token = token
        self.prefix = prefix.rstrip("/")
        self.statuses: dict[str, list[GitHubStatus]] = {}
        self._ids = 0
        self._state_lock = threading.Lock()

    @property
    def api_base(self) -> str:
        return self.base_url + self.prefix

    def rate_limit_next(
        self,
        times: int = 1,
        *,
        status: int = 429,
        retry_after: float | None = None,
        reset_at: float | None = None,
    ) -> None:
        """Answers like GitHub's primary (``reset_at``: remaining 0 and the reset epoch) or
        secondary (``retry_after``) rate limit."""
        headers = rate_limit_headers(retry_after, reset_at, prefix="X-RateLimit-", limit=5000, used=True)
        message = (
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            if retry_after is not None
            else "API rate limit exceeded for installation."
        )
        self.respond_next(status, {"message": message, "documentation_url": DOCS}, headers, times)

    def accepted(self, sha: str) -> list[GitHubStatus]:
        with self._state_lock:
            return list(self.statuses.get(sha, []))

    def handle(self, request: RecordedRequest) -> Answer:
        path = request.raw_path.split("?", 1)[0]
        if not path.startswith(self.prefix + "/"):
            return self.reject(request, Answer(404, {"message": "Not Found", "documentation_url": DOCS}))
        listing = _LIST_PATH.match(path[len(self.prefix) :])
        if listing is not None and request.method == "GET":
            return self._list(request, unquote(listing["sha"]))
        match = _PATH.match(path[len(self.prefix) :])
        if match is None or request.method != "POST":
            return self.reject(request, Answer(404, {"message": "Not Found", "documentation_url": DOCS}))
        if not request.headers.get("user-agent"):
            message = (
                "Request forbidden by administrative rules. "
                "Please make sure your request has a User-Agent header"
            )
            return self.reject(request, Answer(403, {"message": message}))
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return self.reject(request, Answer(401, {"message": "Requires authentication"}))
        if authorization not in (f"Bearer {self.token}", f"token {self.token}"):
            return self.reject(request, Answer(401, {"message": "Bad credentials"}))
        body = parse_json_object(request)
        if body is None:
            return self.reject(request, Answer(400, {"message": "Problems parsing JSON"}))
        sha = unquote(match["sha"])
        if not _SHA.match(sha):
            return self.reject(request, _validation_failed("sha", f"No commit found for SHA: {sha}"))
        state = body.get("state")
        if state not in STATES:
            return self.reject(request, _validation_failed("state", "state is not included in the list"))
        context = body.get("context")
        if not isinstance(context, str) or not context:
            return self.reject(request, _validation_failed("context", "context can't be blank"))
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            return self.reject(request, _validation_failed("description", "description is invalid"))
        if description is not None and len(description) > DESCRIPTION_LIMIT:
            message = f"description is too long (maximum is {DESCRIPTION_LIMIT} characters)"
            return self.reject(request, _validation_failed("description", message))
        target_url = body.get("target_url")
        if target_url is not None and not is_http_url(target_url):
            return self.reject(request, _validation_failed("target_url", "target_url is not a valid URL"))
        repository = f"{unquote(match['owner'])}/{unquote(match['repo'])}"
        with self._state_lock:
            same = [s for s in self.statuses.get(sha, []) if s.context == context]
            if len(same) >= MAX_STATUSES_PER_CONTEXT:
                message = "This SHA and context has reached the maximum number of statuses."
                return self.reject(request, _validation_failed("context", message))
            status = GitHubStatus(
                repository,
                sha,
                state,
                context,
                description,
                target_url,
                authorization,
                request.headers["user-agent"],
            )
            self.statuses.setdefault(sha, []).append(status)
            self._ids += 1
            number = self._ids
        return Answer(201, _status_json(status, number, self.api_base))

    def _list(self, request: RecordedRequest, sha: str) -> Answer:
        """``GET /repos/{owner}/{repo}/commits/{ref}/statuses``: newest first, as GitHub lists them."""
        if request.headers.get("authorization", "") not in (f"Bearer {self.token}", f"token {self.token}"):
            return self.reject(request, Answer(401, {"message": "Bad credentials"}))
        with self._state_lock:
            listed = list(reversed(self.statuses.get(sha, [])))
        return Answer(200, [_status_json(s, n, self.api_base) for n, s in enumerate(listed, 1)])


def _status_json(status: GitHubStatus, number: int, api_base: str) -> dict[str, Any]:
    return {
        "url": f"{api_base}/repos/{status.repository}/statuses/{status.sha}",
        "id": number,
        "node_id": f"SC_{number}",
        "state": status.state,
        "description": status.description,
        "target_url": status.target_url,
        "context": status.context,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "creator": {"login": "bodywork-bot", "id": 1},
    }
