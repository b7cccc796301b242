"""A final commit status survives an API outage and a SIGKILL of the service (issue 13, item 7)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.fakes.github_api import FakeGitHub

from .conftest import GITHUB_SECRET, ProcessFactory
from .helpers import SourceRepo, pipeline_files, wait_until

pytestmark = pytest.mark.timeout(120)


def _outbox(data_dir: Path, sha: str) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "store.sqlite3") as db:
        rows = db.execute("SELECT state, outcome FROM status_outbox WHERE sha = ?", (sha,)).fetchall()
    return [(str(state), str(outcome)) for state, outcome in rows]


def test_the_final_status_is_delivered_after_an_outage_and_a_kill(
    tmp_path: Path, service_process: ProcessFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    sha = github_repo.commit(pipeline_files(dag="prepare"))
    github_repo.push()
    fake_github.fail_next(100_000, status=500)  # the API is down for the whole first life
    service = service_process(public_url="http://bodywork.example.invalid")
    try:
        run_id = service.push("refs/heads/main", sha, GITHUB_SECRET)
        wait_until(lambda: service.run(run_id)["state"] == "succeeded", timeout=60, what="the run")
        wait_until(lambda: _outbox(tmp_path / "data", sha) == [("success", "pending")],
                   what="the final status in the outbox")
        service.kill()
        assert fake_github.accepted(sha) == []

        fake_github.clear_script()  # the API is back
        service = service.restarted()
        wait_until(lambda: [s.state for s in fake_github.accepted(sha)] == ["success"], timeout=30,
                   what="the final status to be delivered after the restart")
        wait_until(lambda: _outbox(tmp_path / "data", sha) == [("success", "delivered")])
        assert (fake_github.accepted(sha)[0].description or "").startswith("Deployed pipelines")
    finally:
        service.stop()
