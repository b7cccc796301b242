"""The service's own log: JSON lines with the run, environment and stage; plain text by default."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gitops.logs import ContextFilter, JsonFormatter, TextFormatter, run_context
from tests.fakes.github_api import FakeGitHub
from tests.gitops.conftest import GITHUB_SECRET
from tests.gitops.gitserver import GitHttpServer, free_port
from tests.gitops.helpers import (
    ZERO,
    SourceRepo,
    github_headers,
    github_push,
    github_repository,
    pipeline_files,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, stream


def test_a_json_record_carries_the_bound_run_and_the_named_stage() -> None:
    logger, stream = capture(JsonFormatter())
    logger.info("outside any run")
    with run_context(run_id="r-1", environment="production"):
        logger.info("stage %s finished", "train", extra={"stage": "train"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("it broke: \"quoted\"\nsecond line")
    first, second, third = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["time"].endswith("Z") and first["level"] == "info"
    assert second["message"] == "stage train finished"
    assert (second["run_id"], second["environment"], second["stage"]) == ("r-1", "production", "train")
    assert third["message"] == 'it broke: "quoted"\nsecond line' and "stage" not in third
    assert third["exception"].endswith("ValueError: boom")


def test_text_records_end_with_their_context() -> None:
    logger, stream = capture(TextFormatter())
    with run_context(run_id="r-2", environment="staging"):
        logger.warning("slow fetch")
    assert stream.getvalue().rstrip().endswith("WARNING test.logs." + logger.name.rsplit(".", 1)[1]
                                               + ": slow fetch [run_id=r-2 environment=staging]")


def test_bodywork_serve_logs_json_lines_with_one_flag(
    tmp_path: Path, git_http: GitHttpServer, github_repo: SourceRepo, fake_github: FakeGitHub,
    venv_cache: Path,
) -> None:
    config = tmp_path / "service.yaml"
    config.write_text(f"""
service:
  data_dir: {tmp_path / "data"}
  backend: local
  backend_options:
    cache_dir: {venv_cache}
repositories:
{github_repository(git_http.url("pipelines"), fake_github.api_base)}
""")
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    port = free_port()
    log = tmp_path / "service.log"
    environ = {"GH_SECRET": GITHUB_SECRET, "GH_TOKEN": fake_github.token, "PATH": "/usr/bin:/bin"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gitops.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
             "--port", str(port), "--log-format", "json"],
            env=environ, stdout=subprocess.DEVNULL, stderr=output,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until(lambda: _ready(client), timeout=30, what="the service")
            body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, sha)).encode()
            headers = github_headers(body, GITHUB_SECRET)
            answer = client.post("/webhooks/github", content=body, headers=headers)
            run_id = answer.json()["run_id"]
            wait_until(lambda: client.get(f"/api/runs/{run_id}").json()["state"] == "succeeded", timeout=60)
            wait_until(lambda: "succeeded: -" in log.read_text(), what="the run's last record")
    finally:
        process.terminate()
        process.wait(timeout=20)
    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    ours = [r for r in records if r.get("run_id") == run_id]
    assert {r["environment"] for r in ours} == {"pipelines"}
    stages = {r["stage"]: r["message"] for r in ours if "stage" in r}
    assert stages.keys() == {"prepare", "train"}
    assert stages["train"].startswith("stage train succeeded in ")
    started = f"run {run_id} of refs/heads/main at {sha[:10]} started"
    assert any(r["message"].startswith(started) for r in ours)


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False
