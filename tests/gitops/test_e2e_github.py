"""End to end on loopback: signed GitHub webhooks -> the service under uvicorn -> Git over smart HTTP
-> the local backend running print stages -> statuses on the strict fake GitHub API."""

from __future__ import annotations

import json

import markupsafe
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
    for query, expected in (
        ({"pipeline": "demo"}, [run_id]),
        ({"environment": "pipelines", "state": "succeeded"}, [run_id]),
        ({"pipeline": "other"}, []),
        ({"state": "failed"}, []),
    ):
        listed = service.client.get("/api/runs", params=query).json()["runs"]
        assert [r["id"] for r in listed] == expected, query
    text = service.client.get(f"/api/runs/{run_id}/logs", params={"format": "text"}).text
    assert "[prepare] stage prepare says hello\n" in text
    page = service.client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert "stage train says hello" in page.text and 'class="stage succeeded"' in page.text


SLOW_STAGE = 'import time\nprint("working", flush=True)\ntime.sleep({seconds})\nprint("done", flush=True)\n'


def test_a_failing_stage_fails_the_run_and_the_commit_status(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    files = pipeline_files(scripts={"train.py": 'import sys\nprint("boom", flush=True)\nsys.exit(3)\n'})
    sha = github_repo.commit(files)
    github_repo.push()
    service = make_service()

    run_id = push(service, github_repo, "refs/heads/main", ZERO, sha).json()["run_id"]
    run = service.wait_for(run_id)

    assert run["state"] == "failed"
    assert "stage train failed" in run["reason"]
    states = {s["stage"]: s["state"] for s in run["stages"]}
    assert states == {"prepare": "succeeded", "train": "failed"}
    wait_until(lambda: [s.state for s in fake_github.accepted(sha)][-1:] == ["failure"], what="failure")
    seen = statuses(fake_github, sha)
    assert [s[1] for s in seen] == ["pending", "pending", "pending", "pending", "failure"], seen
    assert seen[-1][2].startswith("Failed")
    assert len(seen[-1][2]) <= 140
    assert not fake_github.rejected


def test_a_burst_of_pushes_runs_only_the_newest_commit_and_marks_the_others_superseded(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    first = github_repo.commit(pipeline_files(scripts={"prepare.py": SLOW_STAGE.format(seconds=2)}))
    github_repo.push()
    service = make_service()
    first_run = push(service, github_repo, "refs/heads/main", ZERO, first).json()["run_id"]
    service.wait_for(first_run, ("running",))
    burst = []
    before = first
    for index in range(3):
        sha = github_repo.commit(pipeline_files(), message=f"burst {index}")
        github_repo.push()
        burst.append((sha, push(service, github_repo, "refs/heads/main", before, sha).json()["run_id"]))
        before = sha

    newest_sha, newest_run = burst[-1]
    newest = service.wait_for(newest_run)
    first_done = service.wait_for(first_run)
    assert newest["state"] == first_done["state"] == "succeeded"
    # One environment: the newest run started only after the first one finished.
    assert newest["started_at"] >= first_done["finished_at"]
    for sha, run_id in burst[:-1]:
        run = service.run(run_id)
        assert run["state"] == "superseded", run
        assert run["superseded_by"] is not None
        assert run["stages"] == []
        wait_until(lambda: len(fake_github.accepted(sha)) == 2, what="superseded status")  # noqa: B023
        seen = statuses(fake_github, sha)
        assert [s[1] for s in seen] == ["pending", "error"], seen
        assert seen[1][2].startswith("Cancelled: Superseded by")
    superseded_by = {service.run(r)["superseded_by"] for _, r in burst[:-1]}
    assert superseded_by <= {burst[1][1], newest_run}
    wait_until(lambda: [s.state for s in fake_github.accepted(newest_sha)][-1:] == ["success"])
    listed = service.client.get("/api/runs", params={"state": "superseded"}).json()["runs"]
    assert {r["id"] for r in listed} == {r for _, r in burst[:-1]}


def test_an_invalid_bodywork_yaml_fails_at_once_naming_the_first_problems(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    files = pipeline_files()
    files["bodywork.yaml"] = files["bodywork.yaml"].replace("cpu_request: 0.1", "cpu_request: lots")
    files["bodywork.yaml"] = files["bodywork.yaml"].replace("  name: demo\n", "")
    sha = github_repo.commit(files)
    github_repo.push()
    service = make_service()

    run_id = push(service, github_repo, "refs/heads/main", ZERO, sha).json()["run_id"]
    run = service.wait_for(run_id)

    assert run["state"] == "failed"
    assert len(run["problems"]) >= 3, run["problems"]
    assert run["stages"] == []
    wait_until(lambda: [s.state for s in fake_github.accepted(sha)][-1:] == ["failure"])
    seen = statuses(fake_github, sha)
    assert [s[1] for s in seen] == ["pending", "pending", "failure"], seen
    assert seen[-1][2].startswith("Invalid bodywork.yaml: " + run["problems"][0][:20])
    assert len(seen[-1][2]) <= 140
    page = service.client.get(f"/runs/{run_id}").text
    for problem in run["problems"]:
        assert str(markupsafe.escape(problem)) in page


def test_a_redelivered_webhook_never_starts_a_second_run(
    make_service: ServiceFactory, github_repo: SourceRepo
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    service = make_service()
    body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, sha)).encode()
    headers = github_headers(body, GITHUB_SECRET, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")

    first = service.client.post("/webhooks/github", content=body, headers=headers)
    service.wait_for(first.json()["run_id"])
    again = service.client.post("/webhooks/github", content=body, headers=headers)

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["run_id"] == first.json()["run_id"]
    assert len(service.client.get("/api/runs").json()["runs"]) == 1


def test_an_annotated_tag_runs_the_commit_it_points_at(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    tag_object = github_repo.annotated_tag("v1.0.0", sha)
    assert tag_object != sha
    service = make_service()

    answer = push(service, github_repo, "refs/tags/v1.0.0", ZERO, tag_object, head_commit=sha)
    run = service.wait_for(answer.json()["run_id"])

    assert run["state"] == "succeeded"
    assert run["commit"] == sha
    assert run["ref"] == "refs/tags/v1.0.0"
    assert run["environment"] == "pipelines"
    ignored = push(service, github_repo, "refs/tags/nightly", ZERO, tag_object, head_commit=sha)
    assert ignored.status_code == 200
    assert "deploy_tags" in ignored.json()["reason"]


def test_a_webhook_that_arrives_before_its_commit_is_fetchable_is_retried(
    make_service: ServiceFactory, github_repo: SourceRepo
) -> None:
    github_repo.commit(pipeline_files(), message="first")
    github_repo.push()
    service = make_service()
    sha = github_repo.commit(pipeline_files(dag="prepare"), message="not pushed yet")

    run_id = push(service, github_repo, "refs/heads/main", ZERO, sha).json()["run_id"]
    service.wait_for(run_id, ("running",))
    github_repo.push()
    run = service.wait_for(run_id)

    assert run["state"] == "succeeded", run["reason"]
    assert [s["stage"] for s in run["stages"]] == ["prepare"]


def test_a_commit_that_never_arrives_fails_the_run_with_an_error_status(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    github_repo.commit(pipeline_files())
    github_repo.push()
    service = make_service()
    missing = "1234567890" * 4

    run = service.wait_for(push(service, github_repo, "refs/heads/main", ZERO, missing).json()["run_id"])

    assert run["state"] == "failed"
    assert f"commit {missing} is not fetchable after 4 attempts" in run["reason"]
    wait_until(lambda: [s.state for s in fake_github.accepted(missing)][-1:] == ["error"])


def test_manual_trigger_and_cancel_need_the_token(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    sha = github_repo.commit(pipeline_files(scripts={"prepare.py": SLOW_STAGE.format(seconds=30)}))
    github_repo.push()
    service = make_service()
    body = {"repository": "acme/pipelines", "ref": "main"}

    assert service.client.post("/api/runs", json=body).status_code == 401
    assert service.client.post(
        "/api/runs", json=body, headers={"Authorization": "Bearer wrong"}
    ).status_code == 401
    auth = {"Authorization": "Bearer manual-trigger-token-0815"}
    answer = service.client.post("/api/runs", json=body, headers=auth)
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run_id"]
    assert answer.json()["commit"] == sha
    wait_until(
        lambda: any(s["state"] == "running" for s in service.run(run_id)["stages"]), what="stage running"
    )
    assert service.client.post(f"/api/runs/{run_id}/cancel").status_code == 401
    cancelled = service.client.post(f"/api/runs/{run_id}/cancel", headers=auth)
    assert cancelled.status_code == 202
    run = service.wait_for(run_id, timeout=20)

    assert run["state"] == "cancelled"
    assert run["trigger"] == "manual"
    assert {s["stage"]: s["state"] for s in run["stages"]}["prepare"] == "cancelled"
    wait_until(lambda: [s.state for s in fake_github.accepted(sha)][-1:] == ["error"])
    assert statuses(fake_github, sha)[-1][2].startswith("Cancelled")
    assert service.client.post(f"/api/runs/{run_id}/cancel", headers=auth).status_code == 202
    assert service.client.post("/api/runs/nope/cancel", headers=auth).status_code == 404


def test_max_concurrent_runs_bounds_runs_of_different_environments(
    make_service: ServiceFactory, github_repo: SourceRepo
) -> None:
    shas = {}
    for branch in ("feature/one", "feature/two", "feature/three"):
        slow = {"prepare.py": SLOW_STAGE.format(seconds=1)}
        github_repo.commit(pipeline_files(dag="prepare", scripts=slow), branch=branch)
        shas[branch] = github_repo.commit({"x.txt": branch}, branch=branch)
        github_repo.push(branch)
    service = make_service(max_concurrent=2)

    runs = [
        push(service, github_repo, f"refs/heads/{b}", ZERO, sha).json()["run_id"]
        for b, sha in shas.items()
    ]
    done = [service.wait_for(r) for r in runs]

    assert [r["state"] for r in done] == ["succeeded"] * 3, [r["reason"] for r in done]
    assert len({r["environment"] for r in done}) == 3
    intervals = sorted((r["started_at"], r["finished_at"]) for r in done)
    # The first two ran together; the third started only when one of them had finished.
    assert intervals[1][0] < intervals[0][1]
    assert intervals[2][0] >= min(intervals[0][1], intervals[1][1])


@pytest.mark.parametrize("trouble", ["hang", "fail"])
def test_a_status_api_that_hangs_or_fails_never_holds_up_the_run(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub, trouble: str
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    if trouble == "hang":
        fake_github.hang_next(times=50)
    else:
        fake_github.fail_next(times=50, status=502)
    service = make_service()

    run = service.wait_for(push(service, github_repo, "refs/heads/main", ZERO, sha).json()["run_id"],
                           timeout=20)

    assert run["state"] == "succeeded"
    assert service.client.get("/readyz").status_code == 200
