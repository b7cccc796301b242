"""End to end with GitLab webhooks and the strict fake GitLab API; preview environments and teardown."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.fakes._server import RecordedRequest
from tests.fakes.gitlab_api import FakeGitLab, request_fields

from .conftest import GITLAB_SECRET, ServiceFactory
from .gitserver import free_port
from .helpers import ZERO, RunningService, SourceRepo, gitlab_headers, gitlab_push, pipeline_files, wait_until

TRANSITION_REFUSED = (
    'Cannot transition status via :run from :running (Reason(s): Status cannot transition via "run")'
)

pytestmark = [
    pytest.mark.timeout(120),
    # GitLab refuses a second 'running' for a status that is already running; the service sends its
    # progress that way and counts the refusal as applied (gitops/statuses/gitlab.py).
    pytest.mark.expected_rejections("Cannot transition status via :run from :running"),
]


def _sent_state(request: RecordedRequest) -> object:
    fields = request_fields(request)
    return fields.get("state") if isinstance(fields, dict) else None


def push(service: RunningService, ref: str, before: str, after: str, **kw: object) -> httpx.Response:
    body = json.dumps(gitlab_push("group/ml-project", ref, before, after, **kw)).encode()  # type: ignore[arg-type]
    return service.client.post("/webhooks/gitlab", content=body, headers=gitlab_headers(GITLAB_SECRET))


def test_a_gitlab_push_runs_and_reports_pending_running_success(
    make_service: ServiceFactory, gitlab_repo: SourceRepo, fake_gitlab: FakeGitLab
) -> None:
    sha = gitlab_repo.commit(pipeline_files(name="ml"))
    gitlab_repo.push()
    service = make_service()

    answer = push(service, "refs/heads/main", ZERO, sha)
    assert answer.status_code == 202, answer.text
    run = service.wait_for(answer.json()["run_id"])

    assert run["state"] == "succeeded", (run["reason"], run["problems"])
    assert run["environment"] == "ml-project"
    wait_until(lambda: [s.state for s in fake_gitlab.accepted(sha)][-1:] == ["success"])
    seen = fake_gitlab.accepted(sha)
    # GitLab refuses a second 'running' (400 "Cannot transition"): the progress updates after the
    # first are answered that way and count as applied, so the accepted sequence is:
    assert [s.state for s in seen] == ["pending", "running", "success"]
    assert seen[1].description == "Running: fetching " + sha[:10]
    assert {s.name for s in seen} == {"bodywork/ml-project"}
    assert {s.ref for s in seen} == {"main"}
    assert {s.project for s in seen} == {"group/ml-project"}
    # Every 'running' after the first was refused as a repeated transition, and nothing else was.
    running_calls = [r for r in fake_gitlab.requests if _sent_state(r) == "running"]
    refusals = [r.answer.body["message"] for r in fake_gitlab.rejected]
    assert refusals == [TRANSITION_REFUSED] * (len(running_calls) - 1)


def test_a_preview_branch_gets_its_own_environment_and_deleting_it_tears_it_down(
    make_service: ServiceFactory, gitlab_repo: SourceRepo, fake_gitlab: FakeGitLab
) -> None:
    port = free_port()
    server = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'preview')\n"
        "    def log_message(self, *a):\n"
        "        pass\n"
        "print('serving', flush=True)\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    files = pipeline_files(name="ml", dag="prepare >> api", scripts={"api.py": server})
    files["bodywork.yaml"] = files["bodywork.yaml"].replace(
        "  api:\n    executable_module_path: api.py\n    cpu_request: 0.1\n    memory_request_mb: 64\n"
        "    batch:\n      max_completion_time_seconds: 30\n      retries: 0\n",
        "  api:\n    executable_module_path: api.py\n    cpu_request: 0.1\n    memory_request_mb: 64\n"
        f"    service:\n      max_startup_time_seconds: 20\n      replicas: 1\n      port: {port}\n"
        "      ingress: false\n",
    )
    branch = "review/Add_A_Very.Long-Feature_Name_That_Goes_On_And_On_For_Quite_A_While_Really"
    sha = gitlab_repo.commit(files, branch=branch)
    gitlab_repo.push(branch)
    service = make_service()

    run = service.wait_for(push(service, f"refs/heads/{branch}", ZERO, sha).json()["run_id"])

    assert run["state"] == "succeeded", (run["reason"], run["problems"])
    environment = run["environment"]
    assert environment.startswith("ml-project-review-add-a-very-long-feature")
    assert len(environment) <= 63 and run["namespace"] == environment
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "preview"

    gitlab_repo.delete_branch(branch)
    answer = push(service, f"refs/heads/{branch}", sha, ZERO)
    assert answer.status_code == 202, answer.text
    teardown = service.wait_for(answer.json()["run_id"])

    assert teardown["state"] == "succeeded"
    assert teardown["action"] == "teardown"
    assert teardown["environment"] == environment

    def stopped() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
        except httpx.TransportError:
            return True
        return False

    wait_until(stopped, what="the preview service to stop")
    wait_until(lambda: [s.state for s in fake_gitlab.accepted(sha)][-1:] == ["success"])
    assert any("Torn down" in (s.description or "") for s in fake_gitlab.accepted(sha))


def test_deleting_the_deploy_branch_or_an_unconfigured_branch_is_ignored_with_a_reason(
    make_service: ServiceFactory,
) -> None:
    service = make_service()
    for ref in ("refs/heads/main", "refs/heads/random"):
        answer = push(service, ref, "a" * 40, ZERO)
        assert answer.status_code == 200
        assert answer.json()["status"] == "ignored"
    assert service.client.get("/api/runs").json()["runs"] == []
    time.sleep(0)


@pytest.mark.parametrize("broken", ["stage", "config"])
def test_gitlab_failed_runs_report_failed(
    make_service: ServiceFactory, gitlab_repo: SourceRepo, fake_gitlab: FakeGitLab, broken: str
) -> None:
    files = pipeline_files(name="ml")
    if broken == "stage":
        files["train.py"] = "raise SystemExit(4)\n"
    else:
        yaml = files["bodywork.yaml"]
        files["bodywork.yaml"] = yaml.replace("memory_request_mb: 64", "memory_request_mb: -1")
    sha = gitlab_repo.commit(files)
    gitlab_repo.push()
    service = make_service()

    run = service.wait_for(push(service, "refs/heads/main", ZERO, sha).json()["run_id"])

    assert run["state"] == "failed"
    wait_until(lambda: [s.state for s in fake_gitlab.accepted(sha)][-1:] == ["failed"])
    seen = fake_gitlab.accepted(sha)
    assert [s.state for s in seen] == ["pending", "running", "failed"]
    prefix = "Failed" if broken == "stage" else "Invalid bodywork.yaml: "
    assert (seen[-1].description or "").startswith(prefix)
    assert len(seen[-1].description or "") <= 255


def test_gitlab_superseded_runs_report_canceled(
    make_service: ServiceFactory, gitlab_repo: SourceRepo, fake_gitlab: FakeGitLab
) -> None:
    slow = 'import time\ntime.sleep(2)\nprint("done", flush=True)\n'
    first = gitlab_repo.commit(pipeline_files(name="ml", scripts={"prepare.py": slow}))
    gitlab_repo.push()
    service = make_service()
    first_run = push(service, "refs/heads/main", ZERO, first).json()["run_id"]
    service.wait_for(first_run, ("running",))
    middle = gitlab_repo.commit({"a.txt": "1"})
    newest = gitlab_repo.commit({"a.txt": "2"})
    gitlab_repo.push()
    middle_run = push(service, "refs/heads/main", first, middle).json()["run_id"]
    newest_run = push(service, "refs/heads/main", middle, newest).json()["run_id"]

    assert service.wait_for(newest_run)["state"] == "succeeded"
    assert service.run(middle_run)["state"] == "superseded"
    wait_until(lambda: [s.state for s in fake_gitlab.accepted(middle)] == ["pending", "canceled"])
    assert (fake_gitlab.accepted(middle)[-1].description or "").startswith("Superseded by " + newest[:10])
    wait_until(lambda: [s.state for s in fake_gitlab.accepted(newest)][-1:] == ["success"])
