"""A restart of the service loses no run: queued runs survive it and the interrupted one is re-run."""

from __future__ import annotations

import json
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

pytestmark = pytest.mark.timeout(180)

SLOW = 'import time\nprint("working", flush=True)\ntime.sleep({seconds})\nprint("done", flush=True)\n'


def _config(
    tmp_path: Path, git_http: GitHttpServer, fake_github: FakeGitHub, venv_cache: Path, reruns: int
) -> Path:
    config = tmp_path / "service.yaml"
    config.write_text(f"""
service:
  data_dir: {tmp_path / "data"}
  public_url: http://bodywork.example.invalid
  status_min_interval_seconds: 0
  max_concurrent_runs: 1
  restart_reruns: {reruns}
  backend: local
  backend_options:
    cache_dir: {venv_cache}
repositories:
{github_repository(git_http.url("pipelines"), fake_github.api_base)}
""")
    return config


def _push(service: ServiceProcess, ref: str, sha: str) -> str:
    body = json.dumps(github_push("acme/pipelines", ref, ZERO, sha)).encode()
    headers = github_headers(body, GITHUB_SECRET)
    answer = service.client.post("/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


@pytest.mark.parametrize("how", ["kill", "terminate"])
def test_queued_and_running_runs_survive_a_restart(
    tmp_path: Path,
    git_http: GitHttpServer,
    github_repo: SourceRepo,
    fake_github: FakeGitHub,
    venv_cache: Path,
    how: str,
) -> None:
    main_sha = github_repo.commit(pipeline_files(scripts={"prepare.py": SLOW.format(seconds=2)}))
    github_repo.push()
    branches = {}
    for name in ("feature/a", "feature/b"):
        github_repo.commit(pipeline_files(name=name.replace("/", "-")), branch=name)
        branches[name] = github_repo.commit({"note.txt": name}, branch=name)
        github_repo.push(name)
    config = _config(tmp_path, git_http, fake_github, venv_cache, reruns=1)
    environ = {"GH_SECRET": GITHUB_SECRET, "GH_TOKEN": fake_github.token}
    port = free_port()
    service = ServiceProcess(config, port, environ, tmp_path / "service.log").start()
    try:
        running = _push(service, "refs/heads/main", main_sha)
        wait_until(
            lambda: any(s["state"] == "running" for s in service.run(running)["stages"]),
            what="the first stage to run",
        )
        queued = [_push(service, f"refs/heads/{name}", sha) for name, sha in branches.items()]
        assert [service.run(r)["state"] for r in queued] == ["queued", "queued"]

        service.kill() if how == "kill" else service.stop()

        service = ServiceProcess(config, port, environ, tmp_path / "service.log").start()
        for run_id in [running, *queued]:
            wait_until(
                lambda: service.run(run_id)["state"] not in ("queued", "running"),  # noqa: B023
                timeout=60, what=f"run {run_id} to finish",
            )
        runs = {r: service.run(r) for r in [running, *queued]}
        assert {r: d["state"] for r, d in runs.items()} == dict.fromkeys(runs, "succeeded"), runs
        assert runs[running]["interruptions"] == 1
        assert all(runs[r]["interruptions"] == 0 for r in queued)
        logs = service.client.get(f"/api/runs/{running}/logs").json()["lines"]
        assert any("restarted while this run was running" in x["line"] for x in logs)
        assert [x["line"] for x in logs if x["stage"] == "prepare"][-2:] == ["working", "done"]
        wait_until(lambda: [s.state for s in fake_github.accepted(main_sha)][-1:] == ["success"])
        descriptions = [s.description or "" for s in fake_github.accepted(main_sha)]
        assert any(d.startswith("Queued again: the service restarted") for d in descriptions), descriptions
        for sha in branches.values():
            wait_until(lambda: [s.state for s in fake_github.accepted(sha)][-1:] == ["success"])  # noqa: B023
    finally:
        service.stop()


def test_a_run_interrupted_more_often_than_allowed_is_failed_with_the_reason(
    tmp_path: Path,
    git_http: GitHttpServer,
    github_repo: SourceRepo,
    fake_github: FakeGitHub,
    venv_cache: Path,
) -> None:
    sha = github_repo.commit(pipeline_files(scripts={"prepare.py": SLOW.format(seconds=30)}))
    github_repo.push()
    config = _config(tmp_path, git_http, fake_github, venv_cache, reruns=0)
    environ = {"GH_SECRET": GITHUB_SECRET, "GH_TOKEN": fake_github.token}
    port = free_port()
    service = ServiceProcess(config, port, environ, tmp_path / "service.log").start()
    try:
        run_id = _push(service, "refs/heads/main", sha)
        wait_until(lambda: service.run(run_id)["state"] == "running", what="the run to start")
        service.kill()
        service = ServiceProcess(config, port, environ, tmp_path / "service.log").start()
        run = service.run(run_id)
        assert run["state"] == "failed"
        assert run["reason"].startswith("interrupted by a restart of the service")
        wait_until(lambda: [s.state for s in fake_github.accepted(sha)][-1:] == ["failure"])
    finally:
        service.stop()
