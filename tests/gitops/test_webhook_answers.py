"""What the webhook endpoints answer to every kind of bad or uninteresting input: never a 5xx."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator

import pytest

from .conftest import GITHUB_SECRET, GITLAB_SECRET, ServiceFactory
from .helpers import ZERO, RunningService, github_headers, github_push, gitlab_headers, gitlab_push

pytestmark = pytest.mark.timeout(60)

SHA = "a" * 40


@pytest.fixture
def service(make_service: ServiceFactory) -> RunningService:
    return make_service(service_extra="  max_body_bytes: 4096")


def post_github(service: RunningService, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    answer = service.client.post("/webhooks/github", content=body, headers=headers)
    return answer.status_code, answer.json()


def test_github_signatures_are_checked_before_anything_is_parsed(service: RunningService) -> None:
    body = b"this is not json at all"
    headers = github_headers(body, GITHUB_SECRET)
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    wrong = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    sha1 = {**headers, "X-Hub-Signature-256": headers["X-Hub-Signature-256"][7:]}

    assert post_github(service, body, unsigned)[0] == 401
    assert post_github(service, body, wrong)[0] == 401
    assert post_github(service, body, sha1)[0] == 401
    status, answer = post_github(service, body, headers)
    assert status == 400 and "not valid JSON" in answer["error"]
    assert GITHUB_SECRET not in json.dumps(answer)


def test_github_ping_unknown_events_and_unconfigured_refs_answer_200_with_a_reason(
    service: RunningService,
) -> None:
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1,
                       "repository": {"full_name": "acme/pipelines"}}).encode()
    assert post_github(service, ping, github_headers(ping, GITHUB_SECRET, event="ping")) == (
        200, {"status": "pong", "repository": "acme/pipelines"},
    )
    issue = b'{"action": "opened"}'
    status, answer = post_github(service, issue, github_headers(issue, GITHUB_SECRET, event="issues"))
    assert status == 200 and answer["status"] == "ignored" and "'issues'" in answer["reason"]
    for ref in ("refs/heads/docs", "refs/tags/nightly"):
        body = json.dumps(github_push("acme/pipelines", ref, ZERO, SHA)).encode()
        status, answer = post_github(service, body, github_headers(body, GITHUB_SECRET))
        assert status == 200 and answer["status"] == "ignored", answer
    other = json.dumps(github_push("acme/other", "refs/heads/main", ZERO, SHA)).encode()
    status, answer = post_github(service, other, github_headers(other, GITHUB_SECRET))
    assert status == 200 and "not configured" in answer["reason"]
    assert service.client.get("/api/runs").json()["runs"] == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"after": SHA, "before": ZERO, "repository": {"full_name": "acme/pipelines"}}, "'ref'"),
        ({"ref": "refs/heads/main", "before": ZERO, "repository": {"full_name": "a/b"}}, "'after'"),
        ({"ref": "refs/heads/main", "before": ZERO, "after": SHA}, "'repository.full_name'"),
        ({"ref": 7, "before": ZERO, "after": SHA, "repository": {"full_name": "x"}}, "'ref' must be"),
        ({"ref": "refs/heads/main", "before": ZERO, "after": "zz", "repository": {"full_name": "x"}}, "40"),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_github_pushes_missing_fields_answer_400(
    service: RunningService, payload: object, message: str
) -> None:
    body = json.dumps(payload).encode()
    status, answer = post_github(service, body, github_headers(body, GITHUB_SECRET))
    assert status == 400
    assert message in answer["error"]


def test_form_encoded_github_webhooks_are_refused_with_the_fix(service: RunningService) -> None:
    body = b"payload=%7B%7D"
    headers = {**github_headers(body, GITHUB_SECRET), "Content-Type": "application/x-www-form-urlencoded"}
    status, answer = post_github(service, body, headers)
    assert status == 400 and "application/json" in answer["error"]


def test_a_body_above_the_limit_answers_413(service: RunningService) -> None:
    body = json.dumps({"padding": "x" * 5000}).encode()
    status, answer = post_github(service, body, github_headers(body, GITHUB_SECRET))
    assert status == 413 and "4096" in answer["error"]

    def chunks() -> Iterator[bytes]:
        yield body  # no Content-Length: the stream is counted

    answer2 = service.client.post(
        "/webhooks/github", content=chunks(), headers=github_headers(body, GITHUB_SECRET)
    )
    assert answer2.status_code == 413


def test_gitlab_tokens_events_and_fields(service: RunningService) -> None:
    body = json.dumps(gitlab_push("group/ml-project", "refs/heads/docs", ZERO, SHA)).encode()
    for token in ("", "wrong", GITLAB_SECRET + "x"):
        headers = gitlab_headers(token)
        if not token:
            del headers["X-Gitlab-Token"]
        assert service.client.post("/webhooks/gitlab", content=body, headers=headers).status_code == 401
    answer = service.client.post("/webhooks/gitlab", content=body, headers=gitlab_headers(GITLAB_SECRET))
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    note = b'{"object_kind": "note"}'
    answer = service.client.post(
        "/webhooks/gitlab", content=note, headers=gitlab_headers(GITLAB_SECRET, event="Note Hook")
    )
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    broken = b'{"object_kind": "push", "ref": "refs/heads/main"}'
    answer = service.client.post("/webhooks/gitlab", content=broken, headers=gitlab_headers(GITLAB_SECRET))
    assert answer.status_code == 400
    assert service.client.post("/webhooks/bitbucket", content=b"{}").status_code == 404


def test_the_api_rejects_bad_queries_and_unknown_runs(service: RunningService) -> None:
    client = service.client
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/api/runs", params={"state": "exploded"}).status_code == 400
    assert client.get("/api/runs", params={"limit": "lots"}).status_code == 400
    assert client.get("/api/runs/nope").status_code == 404
    assert client.get("/api/runs/nope/logs").status_code == 404
    assert client.get("/runs/nope").status_code == 404
    auth = {"Authorization": "Bearer manual-trigger-token-0815"}
    assert client.post("/api/runs", content=b"{", headers=auth).status_code == 400
    assert client.post("/api/runs", json={"repository": "acme/pipelines"}, headers=auth).status_code == 400
    unknown = {"repository": "x/y", "ref": "main"}
    assert client.post("/api/runs", json=unknown, headers=auth).status_code == 404
    answer = client.post("/api/runs", json={"repository": "acme/pipelines", "ref": "docs"}, headers=auth)
    assert answer.status_code == 400 and "matches neither" in answer.json()["error"]
    answer = client.post("/api/runs", json={"repository": "acme/pipelines", "ref": ""}, headers=auth)
    assert answer.status_code == 400
    assert answer.json()["error"] == "ref is empty; give a branch, a tag or a full ref"


def test_bodies_being_received_share_one_byte_budget(make_service: ServiceFactory) -> None:
    """Slow uploads cannot take the process's memory: past limits.max_buffered_bytes a body answers
    429, and the budget is free again once they are gone."""
    service = make_service(
        service_extra="  limits:\n    max_buffered_bytes: 100000\n    body_timeout_seconds: 20"
    )
    head = "POST /webhooks/gitlab HTTP/1.1\r\nHost: x\r\nContent-Length: 90000\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in gitlab_headers(GITLAB_SECRET).items()
    ) + "\r\n"

    def upload(size: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
        sock.sendall(head.encode() + b" " * size)
        return sock

    uploads = [upload(80_000), upload(80_000)]  # each most of the budget; the rest never comes
    readable, _, _ = select.select(uploads, [], [], 10)
    assert len(readable) == 1  # one holds its share and waits; the other is refused at once
    answer = readable[0].recv(4096)
    assert answer.startswith(b"HTTP/1.1 429"), answer
    assert b"retry-after: 5" in answer.lower()
    for sock in uploads:
        sock.close()
    body = json.dumps(gitlab_push("group/ml-project", "refs/heads/docs", ZERO, SHA)).encode()
    answers = [
        service.client.post("/webhooks/gitlab", content=body, headers=gitlab_headers(GITLAB_SECRET))
        for _ in range(50)
    ]  # once the hung-up uploads are noticed, the budget is back
    assert answers[-1].status_code == 200, answers[-1].text
