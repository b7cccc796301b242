"""A final commit status survives an API outage and a SIGKILL of the service (issue 13, item 7)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.fakes.github_api import FakeGitHub

from .conftest import GITHUB_SECRET
from .gitserver import GitHttpServer, free_port
from .helpers import (
    ZERO,
    ServiceProcess,
    SourceRepo,
    github_headers,
    github_push,
    github_repository,
    pipeline_files,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def _outbox(data_dir: Path, sha: str) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "store.sqlite3") as db:
        rows = db.execute("SELECT state, outcome FROM status_outbox WHERE sha = ?", (sha,)).fetchall()
    return [(str(state), str(outcome)) for state, outcome in rows]


def test_the_final_status_is_delivered_after_an_outage_and_a_kill(
    tmp_path: Path, git_http: GitHttpServer, github_repo: SourceRepo, fake_github: FakeGitHub,
    venv_cache: Path,
) -> None:
    sha = github_repo.commit(pipeline_files(dag="prepare"))
    github_repo.push()
    config = tmp_path / "service.yaml"
    config.write_text(f"""
service:
  data_dir: {tmp_path / "data"}
  public_url: http://bodywork.example.invalid
  status_min_interval_seconds: 0
  backend: local
  backend_options:
    cache_dir: {venv_cache}
repositories:
{github_repository(git_http.url("pipelines"), fake_github.api_base)}
""")
    environ = {"GH_SECRET": GITHUB_SECRET, "GH_TOKEN": fake_github.token}
    port = free_port()
    fake_github.fail_next(100_000, status=500)  # the API is down for the whole first life
    service = ServiceProcess(config, port, environ, tmp_path / "service.log").start()
    try:
        body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, sha)).encode()
        headers = github_headers(body, GITHUB_SECRET)
        answer = service.client.post("/webhooks/github", content=body, headers=headers)
        run_id = answer.json()["run_id"]
        wait_until(lambda: service.run(run_id)["state"] == "succeeded", timeout=60, what="the run")
        wait_until(lambda: _outbox(tmp_path / "data", sha) == [("success", "pending")],
                   what="the final status in the outbox")
        service.kill()
        assert fake_github.accepted(sha) == []

        fake_github.clear_script()  # the API is back
        service = ServiceProcess(config, port, environ, tmp_path / "service.log").start()
        wait_until(lambda: [s.state for s in fake_github.accepted(sha)] == ["success"], timeout=30,
                   what="the final status to be delivered after the restart")
        wait_until(lambda: _outbox(tmp_path / "data", sha) == [("success", "delivered")])
        assert (fake_github.accepted(sha)[0].description or "").startswith("Deployed pipelines")
    finally:
        service.stop()
