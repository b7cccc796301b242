"""The fakes refuse what the real services refuse, with the same codes and error shapes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fakes.github_api import FakeGitHub
from tests.fakes.gitlab_api import FakeGitLab

from .helpers import SHA

pytestmark = pytest.mark.timeout(10)

GOOD_GITHUB = {"state": "success", "context": "ci", "description": "ok", "target_url": "https://x.io/1"}
GOOD_GITLAB = {"state": "success", "name": "ci", "description": "ok", "target_url": "https://x.io/1"}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, verify=False, trust_env=False) as client:  # plain http on loopback
        yield client


def _github_post(
    client: httpx.Client,
    fake: FakeGitHub,
    body: Any = None,
    *,
    path: str = f"/repos/o/r/statuses/{SHA}",
    auth: str | None = "default",
) -> httpx.Response:
    headers = {"User-Agent": "test"}
    if auth is not None:
        headers["Authorization"] = f"Bearer {fake.token}" if auth == "default" else auth
    return client.post(fake.api_base + path, json=GOOD_GITHUB if body is None else body, headers=headers)


def test_github_accepts_a_good_status(client: httpx.Client, fake_github: FakeGitHub) -> None:
    answer = _github_post(client, fake_github)
    assert answer.status_code == 201 and answer.json()["state"] == "success"
    assert [s.state for s in fake_github.accepted(SHA)] == ["success"]
    assert fake_github.rejected == []


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"state": "running"}, "state", "state is not included in the list"),
        ({"description": "d" * 141}, "description", "description is too long (maximum is 140 characters)"),
        ({"target_url": "not a url"}, "target_url", "target_url is not a valid URL"),
        ({"context": ""}, "context", "context can't be blank"),
    ],
)
def test_github_validation_failures(
    client: httpx.Client, fake_github: FakeGitHub, change: dict[str, str], field: str, message: str
) -> None:
    answer = _github_post(client, fake_github, {**GOOD_GITHUB, **change})
    assert answer.status_code == 422
    body = answer.json()
    assert body["message"] == "Validation Failed"
    assert body["errors"] == [{"resource": "Status", "code": "custom", "field": field, "message": message}]
    assert fake_github.accepted(SHA) == []
    assert [r.status for r in fake_github.rejected] == [422]


def test_github_authentication(client: httpx.Client, fake_github: FakeGitHub) -> None:
    assert _github_post(client, fake_github, auth=None).json() == {"message": "Requires authentication"}
    wrong = _github_post(client, fake_github, auth="Bearer nope")
    assert (wrong.status_code, wrong.json()["message"]) == (401, "Bad credentials")
    assert _github_post(client, fake_github, auth=f"token {fake_github.token}").status_code == 201


def test_github_paths_shas_and_bodies(client: httpx.Client, fake_github: FakeGitHub) -> None:
    assert _github_post(client, fake_github, path=f"/repos/o/statuses/{SHA}").status_code == 404
    assert _github_post(client, fake_github, path=f"/api/v3/repos/o/r/statuses/{SHA}").status_code == 404
    bad_sha = _github_post(client, fake_github, path="/repos/o/r/statuses/main")
    assert bad_sha.status_code == 422 and "No commit found for SHA: main" in bad_sha.text
    not_json = client.post(
        fake_github.api_base + f"/repos/o/r/statuses/{SHA}",
        content=b"state=success",
        headers={"Authorization": f"Bearer {fake_github.token}", "User-Agent": "t"},
    )
    assert (not_json.status_code, not_json.json()["message"]) == (400, "Problems parsing JSON")
    no_agent = client.post(
        fake_github.api_base + f"/repos/o/r/statuses/{SHA}",
        json=GOOD_GITHUB,
        headers={"Authorization": f"Bearer {fake_github.token}", "User-Agent": ""},
    )
    assert no_agent.status_code == 403
    assert len(fake_github.rejected) == 5 and fake_github.accepted(SHA) == []


def test_github_scripted_answers_come_first(client: httpx.Client, fake_github: FakeGitHub) -> None:
    fake_github.rate_limit_next(status=403, reset_at=1_800_000_060)
    fake_github.rate_limit_next(retry_after=5)
    fake_github.fail_next(1, status=502)
    first, second, third, fourth = (_github_post(client, fake_github) for _ in range(4))
    assert first.status_code == 403
    assert first.headers["x-ratelimit-remaining"] == "0"
    assert first.headers["x-ratelimit-reset"] == "1800000060"
    assert (second.status_code, second.headers["retry-after"]) == (429, "5")
    assert third.status_code == 502 and fourth.status_code == 201
    assert len(fake_github.scripted) == 3 and fake_github.rejected == []


def _gitlab_post(
    client: httpx.Client,
    fake: FakeGitLab,
    body: Any = None,
    *,
    project: str = "group%2Fsub%2Fname",
    token: str | None = "default",
) -> httpx.Response:
    headers = {} if token is None else {"PRIVATE-TOKEN": fake.token if token == "default" else token}
    url = f"{fake.api_base}/api/v4/projects/{project}/statuses/{SHA}"
    return client.post(url, json=GOOD_GITLAB if body is None else body, headers=headers)


def test_gitlab_accepts_a_good_status_then_refuses_the_same_state(
    client: httpx.Client, fake_gitlab: FakeGitLab
) -> None:
    running = {**GOOD_GITLAB, "state": "running"}
    assert _gitlab_post(client, fake_gitlab, running).status_code == 201
    again = _gitlab_post(client, fake_gitlab, running)
    assert again.status_code == 400
    assert again.json()["message"].startswith("Cannot transition status via :run from :running")
    assert _gitlab_post(client, fake_gitlab).status_code == 201
    assert _gitlab_post(client, fake_gitlab).status_code == 201  # a finished status: a new one starts
    assert [s.state for s in fake_gitlab.accepted(SHA)] == ["running", "success", "success"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"state": "failure"}, "state does not have a valid value"),
        ({"description": "d" * 256}, "is too long (maximum is 255 characters)"),
        ({"target_url": "ftp://x.io"}, "Only allowed schemes are http, https"),
        ({"name": ""}, "can't be blank"),
        ({"ref": "refs/heads/main"}, "is not a branch or tag"),
    ],
)
def test_gitlab_validation_failures(
    client: httpx.Client, fake_gitlab: FakeGitLab, change: dict[str, str], fragment: str
) -> None:
    answer = _gitlab_post(client, fake_gitlab, {**GOOD_GITLAB, **change})
    assert answer.status_code == 400 and fragment in answer.text
    assert fake_gitlab.accepted(SHA) == [] and len(fake_gitlab.rejected) == 1


def test_gitlab_paths_and_tokens(client: httpx.Client, fake_gitlab: FakeGitLab) -> None:
    assert _gitlab_post(client, fake_gitlab, token=None).status_code == 401
    assert _gitlab_post(client, fake_gitlab, token="glpat-wrong").status_code == 401
    assert _gitlab_post(client, fake_gitlab, project="group/sub/name").status_code == 404
    assert _gitlab_post(client, fake_gitlab, project="name-without-group").status_code == 404
    missing_state = _gitlab_post(client, fake_gitlab, {"name": "ci"})
    assert (missing_state.status_code, missing_state.json()) == (400, {"error": "state is missing"})
    assert fake_gitlab.accepted(SHA) == [] and len(fake_gitlab.rejected) == 5


def test_gitlab_hang_is_released_on_close(client: httpx.Client) -> None:
    with FakeGitLab() as fake:
        fake.hang_next()
        with pytest.raises(httpx.ReadTimeout):
            client.post(
                f"{fake.api_base}/api/v4/projects/1/statuses/{SHA}",
                json=GOOD_GITLAB,
                headers={"PRIVATE-TOKEN": fake.token},
                timeout=0.2,
            )


def test_unexpected_rejections_lists_every_refused_call_not_expected(
    client: httpx.Client, fake_github: FakeGitHub
) -> None:
    """What the end-to-end tests' teardown check (tests/gitops/conftest.py) reads."""
    assert _github_post(client, fake_github).status_code == 201
    assert fake_github.unexpected_rejections() == []

    assert _github_post(client, fake_github, auth="Bearer wrong-token").status_code == 401
    assert _github_post(client, fake_github, {**GOOD_GITHUB, "state": "done"}).status_code == 422

    unexpected = fake_github.unexpected_rejections()
    assert [text.split(" -> ")[1][:8] for text in unexpected] == ["HTTP 401", "HTTP 422"]
    assert unexpected[0].startswith(f"POST /repos/o/r/statuses/{SHA} -> HTTP 401 ")
    assert fake_github.unexpected_rejections(("HTTP 401",)) == [unexpected[1]]
    assert fake_github.unexpected_rejections(("HTTP 401", "HTTP 422")) == []



def test_a_request_whose_sender_died_mid_body_is_no_request(fake_github: FakeGitHub) -> None:
    """A status POST cut short by a kill -9 of the service: GitHub never sees a request, so the fake
    neither records nor refuses one (it counts it, to say it happened)."""
    address = urlsplit(fake_github.api_base)
    assert address.hostname is not None and address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=5) as sender:
        sender.sendall(
            f"POST /repos/o/r/statuses/{SHA} HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n"
            f"Authorization: Bearer {fake_github.token}\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"state": "succ'.encode()
        )
    deadline = time.monotonic() + 5
    while fake_github.abandoned == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_github.abandoned == 1
    assert fake_github.rejected == [] and fake_github.requests == []
