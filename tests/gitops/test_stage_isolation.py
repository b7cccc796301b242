"""Stages die with the service and cannot read its secrets (issue 13, items 8 and 10).

Real processes throughout: `bodywork serve` as a child process, killed with SIGKILL; the local
backend's stages as its children. On this machine the service runs as root, so stages run as their
environment's own unprivileged user; the refusal of preview branches where that isolation cannot be
had is shown with a backend that does not switch users.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import httpx
import pytest

from runner.backends.isolation import STAGE_UID_BASE
from runner.backends.local import LocalBackend
from tests.fakes.github_api import FakeGitHub

from .conftest import GITHUB_SECRET, ProcessFactory, ServiceFactory
from .gitserver import GitHttpServer, free_port
from .helpers import (
    ZERO,
    ServiceProcess,
    SourceRepo,
    github_headers,
    github_push,
    pipeline_files,
    wait_until,
)

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root"),
]

ISOLATION = {"quiet_period_seconds": 0, "restart_reruns": 1}
WORK = """import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(f"work pids {os.getpid()} {child.pid}", flush=True)
time.sleep(300)
"""
WEB = """import http.server, os
print(f"web pid {{os.getpid()}}", flush=True)
http.server.HTTPServer(("127.0.0.1", {port}), http.server.SimpleHTTPRequestHandler).serve_forever()
"""
SNOOP = """import os, sys
targets = {{
    "environ": f"/proc/{{os.getppid()}}/environ",
    "secret file": {secret_file!r},
    "store": {store!r},
    "store listing": {data_dir!r},
}}
print(f"snoop runs as uid {{os.getuid()}}", flush=True)
for what, path in targets.items():
    try:
        data = os.listdir(path) if what == "store listing" else open(path, "rb").read()
        print(f"{{what}}: READ {{data!r}}", flush=True)
    except OSError as error:
        print(f"{{what}}: denied ({{type(error).__name__}})", flush=True)
"""


def web_stage(port: int) -> str:
    return (
        "  web:\n    executable_module_path: web.py\n    cpu_request: 0.1\n    memory_request_mb: 64\n"
        f"    service:\n      max_startup_time_seconds: 30\n      replicas: 1\n      port: {port}\n"
        "      ingress: false\n"
    )


def _post(client: httpx.Client, ref: str, sha: str) -> httpx.Response:
    body = json.dumps(github_push("acme/pipelines", ref, ZERO, sha)).encode()
    return client.post("/webhooks/github", content=body, headers=github_headers(body, GITHUB_SECRET))


def _log_lines(service: ServiceProcess, run_id: str) -> list[str]:
    return [x["line"] for x in service.client.get(f"/api/runs/{run_id}/logs").json()["lines"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent, the killed service, is gone; init reaps it).
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_stages_die_with_the_service_and_orphans_are_stopped_at_restart(
    service_process: ProcessFactory, github_repo: SourceRepo
) -> None:
    port = free_port()
    files = pipeline_files(dag="work", scripts={"web.py": WEB.format(port=port), "work.py": WORK})
    files["bodywork.yaml"] = (
        files["bodywork.yaml"]
        .replace("DAG: work", "DAG: web >> work")
        .replace("stages:\n", "stages:\n" + web_stage(port))
        .replace("max_completion_time_seconds: 30", "max_completion_time_seconds: 600")
    )
    sha = github_repo.commit(files)
    github_repo.push()
    service = service_process(**ISOLATION)
    try:
        run_id = service.push("refs/heads/main", sha, GITHUB_SECRET)
        lines = wait_until(lambda: [x for x in _log_lines(service, run_id) if x.startswith("work pids")],
                           timeout=90, what="the work stage to start")
        work, grandchild = (int(x) for x in lines[0].split()[2:])
        web = int(next(x for x in _log_lines(service, run_id) if x.startswith("web pid")).split()[2])
        assert _alive(work) and _alive(grandchild) and _alive(web) and not _port_free(port)

        service.kill()  # SIGKILL: no clean-up code of the service runs
        wait_until(lambda: not _alive(work) and not _alive(web), timeout=10, what="the stages to die")
        wait_until(lambda: _port_free(port), timeout=10, what="the port to be released")
        assert _alive(grandchild)  # started by the stage itself: stopped by the next start-up

        service = service.restarted()
        wait_until(lambda: not _alive(grandchild), timeout=20, what="the orphan to be stopped")
        def rerun_started() -> list[str]:
            run = service.run(run_id)
            assert run["state"] in ("queued", "running"), (run, _log_lines(service, run_id))
            return [x for x in _log_lines(service, run_id) if x.startswith("work pids")][1:]

        rerun = wait_until(rerun_started, timeout=90, what="the re-run's work stage")
        assert int(rerun[0].split()[2]) != work
        assert service.run(run_id)["state"] == "running"  # the web stage deployed again on its port
        assert not any("already in use" in x for x in _log_lines(service, run_id))
    finally:
        service.stop()
    assert not _alive(int(rerun[0].split()[2]))


def test_a_stage_cannot_read_the_service_secrets(
    tmp_path: Path, git_http: GitHttpServer, service_process: ProcessFactory, github_repo: SourceRepo,
    fake_github: FakeGitHub,
) -> None:
    secret_file = tmp_path / "secrets" / "gitlab-hook"
    secret_file.parent.mkdir()
    secret_file.write_text("gitlab-file-secret-31337\n")
    secret_file.chmod(0o600)
    data = tmp_path / "data"
    script = SNOOP.format(secret_file=str(secret_file), store=str(data / "store.sqlite3"), data_dir=str(data))
    sha = github_repo.commit(pipeline_files(dag="snoop", scripts={"snoop.py": script}), branch="feature/x")
    github_repo.push("feature/x")
    other = f"""  - url: {git_http.url("other")}
    provider: gitlab
    name: group/other
    webhook_secret_file: {secret_file}
"""
    service = service_process(repositories=other, **ISOLATION)
    try:
        run_id = service.push("refs/heads/feature/x", sha, GITHUB_SECRET)  # a preview branch: untrusted code
        wait_until(lambda: service.run(run_id)["state"] == "succeeded", timeout=90, what="the run")
        lines = _log_lines(service, run_id)
        text = service.client.get(f"/api/runs/{run_id}/logs?format=text").text
    finally:
        service.stop()
    snoop_uid = int(next(x for x in lines if x.startswith("snoop runs as uid")).split()[-1])
    assert snoop_uid >= STAGE_UID_BASE  # the preview environment's own stage user
    for what in ("environ", "secret file", "store", "store listing"):
        assert f"{what}: denied (PermissionError)" in lines, lines
    for secret in (GITHUB_SECRET, fake_github.token, "gitlab-file-secret-31337"):
        assert secret not in text


def test_preview_branches_are_refused_where_stages_cannot_be_isolated(
    make_service: ServiceFactory, github_repo: SourceRepo, tmp_path: Path
) -> None:
    sha = github_repo.commit(pipeline_files(), branch="feature/y")
    github_repo.push("feature/y")
    not_isolated = LocalBackend(state_dir=tmp_path / "plain-state", isolate_stages=False)
    service = make_service(backend=not_isolated)
    answer = _post(service.client, "refs/heads/feature/y", sha)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored"
    assert "preview branches are not run" in answer.json()["reason"]
    assert "trust_preview_branches" in answer.json()["reason"]


def test_trusted_preview_branches_run_without_isolation(
    make_service: ServiceFactory, github_repo: SourceRepo, tmp_path: Path
) -> None:
    sha = github_repo.commit(pipeline_files(dag="prepare"), branch="feature/z")
    github_repo.push("feature/z")
    not_isolated = LocalBackend(state_dir=tmp_path / "plain-state", isolate_stages=False)
    service = make_service("  trust_preview_branches: true", backend=not_isolated)
    answer = _post(service.client, "refs/heads/feature/z", sha)
    assert answer.status_code == 202, answer.text
    assert service.wait_for(answer.json()["run_id"])["state"] == "succeeded"

