"""The service fetching over SSH (key auth, known_hosts verified); secrets never leave the service;
`bodywork serve` refuses a bad config with every problem named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.github_api import FakeGitHub

from .conftest import API_TOKEN, GITHUB_SECRET, GITLAB_SECRET, ServiceFactory
from .gitserver import SshServer
from .helpers import ZERO, SourceRepo, github_headers, github_push, pipeline_files, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.mark.skipif(not SshServer.available(), reason="needs Debian's openssh-server (sshd)")
def test_a_push_is_fetched_over_ssh_with_the_host_key_verified(
    tmp_path: Path, make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    with SshServer(tmp_path / "ssh") as ssh:
        service = make_service(
            github_url=ssh.url(github_repo.bare),
            repo_extra=(
                f"    ssh_key_file: {ssh.folder / 'client_key'}\n"
                f"    known_hosts_file: {ssh.folder / 'known_hosts'}\n"
            ),
        )
        body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, sha)).encode()
        answer = service.client.post(
            "/webhooks/github", content=body, headers=github_headers(body, GITHUB_SECRET)
        )
        run = service.wait_for(answer.json()["run_id"])

    assert run["state"] == "succeeded", run["reason"]
    wait_until(lambda: [s.state for s in fake_github.accepted(sha)][-1:] == ["success"])


def test_secrets_appear_in_no_answer_log_or_store(
    tmp_path: Path, make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    github_repo.commit(pipeline_files())
    github_repo.push()
    service = make_service()
    missing = "9" * 40
    body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, missing)).encode()
    headers = github_headers(body, GITHUB_SECRET)
    answer = service.client.post("/webhooks/github", content=body, headers=headers)
    run_id = answer.json()["run_id"]
    service.wait_for(run_id)
    texts = [
        answer.text,
        service.client.get("/api/runs").text,
        service.client.get(f"/api/runs/{run_id}").text,
        service.client.get(f"/api/runs/{run_id}/logs").text,
        service.client.get(f"/runs/{run_id}").text,
        service.client.post("/api/runs", json={}, headers={"Authorization": "Bearer nope"}).text,
    ]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("store.sqlite3*"))
    for secret in (GITHUB_SECRET, GITLAB_SECRET, API_TOKEN, fake_github.token):
        assert all(secret not in text for text in texts)
        assert secret.encode() not in stored


def test_serve_refuses_an_invalid_config_naming_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("service:\n  port: eighty\nrepositories:\n  - provider: github\n")
    result = subprocess.run(
        [sys.executable, "-m", "gitops.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "service.port -> must be an integer, not 'eighty'" in result.stderr
    assert "repositories.0.url -> required: the repository's clone URL" in result.stderr
    assert "repositories.0.webhook_secret_env -> required" in result.stderr
