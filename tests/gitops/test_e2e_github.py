"""End to end on loopback: signed GitHub webhooks -> the service under uvicorn -> Git over smart HTTP
-> the local backend running print stages -> statuses on the strict fake GitHub API."""

from __future__ import annotations

import json

import pytest

from tests.fakes.github_api import FakeGitHub

from .conftest import GITHUB_SECRET, ServiceFactory
from .helpers import ZERO, SourceRepo, github_headers, github_push, pipeline_files, wait_until

pytestmark = pytest.mark.timeout(120)


def push(service, repo: SourceRepo, ref: str, before: str, after: str, **kw):  # type: ignore[no-untyped-def]
    payload = github_push("acme/pipelines", ref, before, after, **kw)
    body = json.dumps(payload).encode()
    return service.client.post("/webhooks/github", content=body, headers=github_headers(body, GITHUB_SECRET))


def statuses(fake: FakeGitHub, sha: str) -> list[tuple[str, str, str]]:
    return [(s.context, s.state, s.description or "") for s in fake.accepted(sha)]


def test_a_push_to_main_runs_the_commit_and_reports_every_state(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    service = make_service()

    answer = push(service, github_repo, "refs/heads/main", ZERO, sha)

    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run_id"]
    run = service.wait_for(run_id)
    assert run["state"] == "succeeded", (run["reason"], run["problems"])
    assert run["commit"] == sha
    assert run["environment"] == "pipelines"
    assert run["namespace"] == "demo"
    assert run["trigger"] == "webhook"
    assert [(s["stage"], s["state"], s["attempts"]) for s in run["stages"]] == [
        ("prepare", "succeeded", 1),
        ("train", "succeeded", 1),
    ]
    assert all(s["duration"] is not None for s in run["stages"])
    logs = service.client.get(f"/api/runs/{run_id}/logs").json()["lines"]
    assert {"stage": "train", "line": "stage train says hello"} in [
        {"stage": x["stage"], "line": x["line"]} for x in logs
    ]
    wait_until(lambda: statuses(fake_github, sha)[-1:] and statuses(fake_github, sha)[-1][1] == "success")
    seen = statuses(fake_github, sha)
    assert [s[1] for s in seen] == ["pending"] * 4 + ["success"], seen
    assert {s[0] for s in seen} == {"bodywork/pipelines"}
    assert seen[0][2].startswith("Queued")
    assert seen[1][2] == "Running: fetching " + sha[:10]
    assert "stage prepare" in seen[2][2] and "stage train" in seen[3][2]
    assert seen[4][2].startswith("Deployed pipelines")
    assert {s.target_url for s in fake_github.accepted(sha)} == {
        f"http://bodywork.example.invalid/runs/{run_id}"
    }
    assert not fake_github.rejected
    page = service.client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert "stage train says hello" in page.text and 'class="stage succeeded"' in page.text
