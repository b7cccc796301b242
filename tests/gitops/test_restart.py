"""A restart of the service loses no run: queued runs survive it and the interrupted one is re-run."""

from __future__ import annotations

import pytest

from tests.fakes.github_api import FakeGitHub

from .conftest import GITHUB_SECRET, ProcessFactory
from .helpers import SourceRepo, pipeline_files, wait_until

pytestmark = pytest.mark.timeout(180)

PUBLIC_URL = "http://bodywork.example.invalid"
SLOW = 'import time\nprint("working", flush=True)\ntime.sleep({seconds})\nprint("done", flush=True)\n'


# fsync_commits false: the commits are in the kernel's page cache only, which a killed process keeps.
@pytest.mark.parametrize(
    ("how", "fsync_commits"), [("kill", "true"), ("terminate", "true"), ("kill", "false")]
)
def test_queued_and_running_runs_survive_a_restart(
    service_process: ProcessFactory, github_repo: SourceRepo, fake_github: FakeGitHub, how: str,
    fsync_commits: str,
) -> None:
    main_sha = github_repo.commit(pipeline_files(scripts={"prepare.py": SLOW.format(seconds=2)}))
    github_repo.push()
    branches = {}
    for name in ("feature/a", "feature/b"):
        github_repo.commit(pipeline_files(name=name.replace("/", "-")), branch=name)
        branches[name] = github_repo.commit({"note.txt": name}, branch=name)
        github_repo.push(name)
    service = service_process(
        public_url=PUBLIC_URL, max_concurrent_runs=1, restart_reruns=1, fsync_commits=fsync_commits
    )
    try:
        running = service.push("refs/heads/main", main_sha, GITHUB_SECRET)
        wait_until(
            lambda: any(s["state"] == "running" for s in service.run(running)["stages"]),
            what="the first stage to run",
        )
        queued = [service.push(f"refs/heads/{name}", sha, GITHUB_SECRET) for name, sha in branches.items()]
        assert [service.run(r)["state"] for r in queued] == ["queued", "queued"]

        service.kill() if how == "kill" else service.stop()

        service = service.restarted()
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
    service_process: ProcessFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    sha = github_repo.commit(pipeline_files(scripts={"prepare.py": SLOW.format(seconds=30)}))
    github_repo.push()
    service = service_process(public_url=PUBLIC_URL, max_concurrent_runs=1, restart_reruns=0)
    try:
        run_id = service.push("refs/heads/main", sha, GITHUB_SECRET)
        wait_until(lambda: service.run(run_id)["state"] == "running", what="the run to start")
        service.kill()
        service = service.restarted()
        run = service.run(run_id)
        assert run["state"] == "failed"
        assert run["reason"].startswith("interrupted by a restart of the service")
        wait_until(lambda: [s.state for s in fake_github.accepted(sha)][-1:] == ["failure"])
    finally:
        service.stop()
