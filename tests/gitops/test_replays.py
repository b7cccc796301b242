"""A captured webhook replayed cannot roll an environment back (issue 13, item 9)."""

from __future__ import annotations

import json

import pytest

from tests.fakes.github_api import FakeGitHub

from .conftest import GITHUB_SECRET, ServiceFactory
from .gitserver import GitHttpServer
from .helpers import ZERO, SourceRepo, github_headers, github_push, pipeline_files, wait_until

pytestmark = pytest.mark.timeout(120)


def test_the_same_signed_body_under_a_new_delivery_id_starts_no_second_run(
    make_service: ServiceFactory, github_repo: SourceRepo
) -> None:
    sha = github_repo.commit(pipeline_files(dag="prepare"))
    github_repo.push()
    service = make_service()
    body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, sha)).encode()
    first = service.client.post("/webhooks/github", content=body, headers=github_headers(body, GITHUB_SECRET))
    assert first.status_code == 202
    run_id = first.json()["run_id"]
    for _ in range(3):  # a fresh X-GitHub-Delivery each time, as an attacker would send it
        again = service.client.post(
            "/webhooks/github", content=body, headers=github_headers(body, GITHUB_SECRET)
        )
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "duplicate" and again.json()["run_id"] == run_id
    assert service.wait_for(run_id)["state"] == "succeeded"
    assert len(service.client.get("/api/runs").json()["runs"]) == 1


def test_a_push_that_is_no_longer_the_tip_does_not_deploy_over_the_newer_commit(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    old = github_repo.commit(pipeline_files(dag="prepare"), message="old")
    github_repo.push()
    new = github_repo.commit({"note.txt": "newer\n"}, message="new")
    github_repo.push()
    service = make_service()
    # A captured push of the old commit, replayed with a body the service has never seen.
    payload = github_push("acme/pipelines", "refs/heads/main", ZERO, old)
    payload["pusher"] = {"name": "someone-else", "email": "x@example.invalid"}
    body = json.dumps(payload).encode()
    headers = github_headers(body, GITHUB_SECRET)
    answer = service.client.post("/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 202
    run = service.wait_for(answer.json()["run_id"])

    assert run["state"] == "cancelled"
    assert run["reason"] == (
        f"not deployed: refs/heads/main now points at {new[:10]}, not at {old[:10]}; a push that is no "
        "longer the tip of its ref never deploys over a newer one"
    )
    assert run["stages"] == [] or all(s["state"] == "pending" for s in run["stages"])
    final = wait_until(lambda: [s for s in fake_github.accepted(old) if s.state == "error"])
    assert (final[-1].description or "").startswith("Cancelled: not deployed: refs/heads/main now points at")


def test_a_pushed_commit_is_fetched_once_with_its_tip_check(
    make_service: ServiceFactory, github_repo: SourceRepo, git_http: GitHttpServer
) -> None:
    """The tip check reads the refs the commit's own fetch brought, rather than fetching again."""
    sha = github_repo.commit(pipeline_files(dag="prepare"))
    github_repo.push()
    service = make_service()
    fetches_before = _fetches(git_http)
    run_id = service.push("refs/heads/main", sha, GITHUB_SECRET)
    assert service.wait_for(run_id)["state"] == "succeeded"
    assert _fetches(git_http) - fetches_before == 1


def _fetches(git_http: GitHttpServer) -> int:
    return sum(r.startswith("GET /pipelines.git/info/refs") for r in git_http.requests)
