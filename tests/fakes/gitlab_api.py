"""A fake GitLab REST API for commit statuses, as strict as gitlab.com about what it accepts.

``POST {prefix}/api/v4/projects/{id or url-encoded path}/statuses/{sha}``; ``prefix`` is ``""`` or a
relative URL root such as ``/gitlab``. Accepted statuses are kept per sha, in order, in ``statuses``.
Posting the pending or running state an open status already has answers 400
"Cannot transition status via :X from :Y".
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from ._server import (
    Answer,
    FakeApiServer,
    RecordedRequest,
    is_http_url,
    parse_json_object,
    rate_limit_headers,
)

STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
DESCRIPTION_LIMIT = 255
# The state machine event GitLab names in its "Cannot transition" message, per target state.
_EVENTS = {
    "pending": "enqueue",
    "running": "run",
    "success": "success",
    "failed": "drop",
    "canceled": "cancel",
    "skipped": "skip",
}

_PATH = re.compile(r"^/api/v4/projects/(?P<project>[^/?]+)/statuses/(?P<sha>[^/?]+)$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class GitLabStatus:
    project: str
    """The project's path, whether the call named it by path or by id."""
    sha: str
    state: str
    name: str
    ref: str | None
    description: str | None
    target_url: str | None


class FakeGitLab(FakeApiServer):
    def __init__(
        self,
        token: str = "glpat-fake-token-0123456789",
        prefix: str = "",
        projects: dict[str, int] | None = None,
    ) -> None:
        """``projects`` maps paths to ids; any path is accepted when it is ``None``."""
        super().__init__()
        self.token = token
        self.prefix = prefix.rstrip("/")
        self.projects = projects
        self.statuses: dict[str, list[GitLabStatus]] = {}
        self._current: dict[tuple[str, str, str, str | None], str] = {}
        self._ids = 0
        self._state_lock = threading.Lock()

    @property
    def api_base(self) -> str:
        """The base to give a client: it appends ``/api/v4`` itself."""
        return self.base_url + self.prefix

    def rate_limit_next(
        self, times: int = 1, *, retry_after: float | None = None, reset_at: float | None = None
    ) -> None:
        headers = rate_limit_headers(retry_after, reset_at, prefix="RateLimit-", limit=2000)
        self.respond_next(429, b"Retry later\n", headers, times)

    def accepted(self, sha: str) -> list[GitLabStatus]:
        with self._state_lock:
            return list(self.statuses.get(sha, []))

    def _project(self, segment: str) -> str | None:
        if "/" in segment:  # an unencoded path: GitLab routes it elsewhere and finds nothing
            return None
        decoded = unquote(segment)
        if self.projects is None:
            return decoded if decoded.isdigit() or "/" in decoded else None
        if decoded.isdigit():
            by_id = {number: path for path, number in self.projects.items()}
            return by_id.get(int(decoded))
        return decoded if decoded in self.projects else None

    def handle(self, request: RecordedRequest) -> Answer:
        path = request.raw_path.split("?", 1)[0]
        if not path.startswith(self.prefix + "/"):
            return self.reject(request, Answer(404, {"error": "404 Not Found"}))
        match = _PATH.match(path[len(self.prefix) :])
        if match is None or request.method != "POST":
            return self.reject(request, Answer(404, {"error": "404 Not Found"}))
        private_token = request.headers.get("private-token")
        bearer = request.headers.get("authorization")
        if private_token != self.token and bearer != f"Bearer {self.token}":
            return self.reject(request, Answer(401, {"message": "401 Unauthorized"}))
        project = self._project(match["project"])
        if project is None:
            return self.reject(request, Answer(404, {"message": "404 Project Not Found"}))
        body = request_fields(request)
        if isinstance(body, Answer):
            return self.reject(request, body)
        sha = unquote(match["sha"])
        if not _SHA.match(sha):
            return self.reject(request, Answer(404, {"message": "404 Commit Not Found"}))
        problem = _field_problem(body)
        if problem is not None:
            return self.reject(request, Answer(400, problem))
        state: str = body["state"]
        name: str = body["name"] if "name" in body else body["context"]
        ref: str | None = body.get("ref")
        description: str | None = body.get("description")
        target_url: str | None = body.get("target_url")
        key = (project, sha, name, ref)
        with self._state_lock:
            # GitLab updates the open (pending or running) status of that name and ref, and starts a
            # new one after a finished one; an open status cannot move to the state it already has.
            current = self._current.get(key)
            if current == state and current in ("pending", "running"):
                message = (
                    f"Cannot transition status via :{_EVENTS[state]} from :{current} "
                    f'(Reason(s): Status cannot transition via "{_EVENTS[state]}")'
                )
                return self.reject(request, Answer(400, {"message": message}))
            self._current[key] = state
            status = GitLabStatus(project, sha, state, name, ref, description, target_url)
            self.statuses.setdefault(sha, []).append(status)
            self._ids += 1
            number = self._ids
        return Answer(201, _status_json(status, number))


def request_fields(request: RecordedRequest) -> dict[str, Any] | Answer:
    """The request's fields, from JSON or a form as GitLab takes both; or the answer refusing it."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = parse_json_object(request)
        if body is None:
            return Answer(400, {"error": "The provided content-type 'application/json' is not supported."})
        return body
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(request.body.decode("utf-8", "replace")))
    return Answer(415, {"error": "unsupported content type"})


def _field_problem(body: dict[str, Any]) -> dict[str, Any] | None:
    """GitLab's 400 answer to the first field it refuses, or None when every field is valid."""
    state = body.get("state")
    if state is None:
        return {"error": "state is missing"}
    if state not in STATES:
        return {"error": "state does not have a valid value"}
    name = body.get("name", body.get("context"))
    if not isinstance(name, str) or not name:
        return {"message": {"name": ["can't be blank"]}}
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > DESCRIPTION_LIMIT):
        return {"message": {"description": [f"is too long (maximum is {DESCRIPTION_LIMIT} characters)"]}}
    target_url = body.get("target_url")
    if target_url is not None and not is_http_url(target_url):
        return {"message": {"target_url": ["is blocked: Only allowed schemes are http, https"]}}
    ref = body.get("ref")
    if ref is not None and (not isinstance(ref, str) or ref.startswith("refs/")):
        # Stricter than GitLab: it takes a branch or tag name, and a full ref name matches no
        # pipeline, so a client sending one has a bug.
        return {"message": {"ref": ["is not a branch or tag"]}}
    return None


def _status_json(status: GitLabStatus, number: int) -> dict[str, Any]:
    return {
        "id": number,
        "sha": status.sha,
        "ref": status.ref,
        "status": status.state,
        "name": status.name,
        "target_url": status.target_url,
        "description": status.description,
        "created_at": "2026-01-01T00:00:00.000Z",
        "started_at": None,
        "finished_at": None,
        "allow_failure": False,
        "coverage": None,
        "author": {"id": 1, "username": "bodywork-bot"},
    }
