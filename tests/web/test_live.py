"""The run page's event stream and download over HTTP, and where a service stage's URL points."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitops.recording import service_url
from runner.model import ServiceSettings, Stage
from tests.gitops.conftest import ServiceFactory
from tests.gitops.helpers import SourceRepo, pipeline_files, wait_until
from tests.pages.helpers import gated_script, push

pytestmark = pytest.mark.timeout(60)


def events(text: str) -> list[tuple[str, str, Any]]:
    """(id, event, data) of each event of a text/event-stream body."""
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        found.append((fields.get("id", ""), fields["event"], json.loads(fields["data"])))
    return found


def test_a_finished_run_streams_its_lines_and_state_then_ends_and_resumes_after_an_id(
    make_service: ServiceFactory, github_repo: SourceRepo
) -> None:
    sha = github_repo.commit(pipeline_files(dag="prepare >> train"))
    github_repo.push()
    service = make_service()
    run_id = push(service, "refs/heads/main", sha)
    service.wait_for(run_id)

    answer = service.client.get(f"/runs/{run_id}/events")
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-cache"
    (last_id, kind, lines), (_, state_kind, state), (_, end_kind, end) = events(answer.text)
    assert kind == "logs"
    assert [x["line"] for x in lines] == ["stage prepare says hello", "stage train says hello"]
    assert last_id == str(lines[-1]["id"])
    assert state_kind == "run" and state["state"] == "succeeded" and state["final"]
    stages = [(s["name"], s["state"]) for s in state["stages"]]
    assert stages == [("prepare", "succeeded"), ("train", "succeeded")]
    assert (end_kind, end) == ("end", {"state": "succeeded"})

    resumed = service.client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": last_id})
    assert [kind for _, kind, _ in events(resumed.text)] == ["run", "end"]
    assert service.client.get(f"/runs/{run_id}/events?after=x").status_code == 400
    assert service.client.get("/runs/nope/events").status_code == 404
    assert service.client.get("/runs/nope/log.txt").status_code == 404
    missing = service.client.get("/runs/nope")
    assert missing.status_code == 404 and "There is no run &#39;nope&#39;." in missing.text


def test_a_service_stage_answers_in_the_cluster_or_on_the_local_host() -> None:
    stage = Stage("scoring", "serve.py", 0.5, 256, service=ServiceSettings(60, 1, 5000))
    assert service_url("kubernetes", "ml-prod", stage) == "http://scoring.ml-prod.svc.cluster.local:5000"
    assert service_url("local", "ml-prod", stage) == "http://127.0.0.1:5000"
    assert service_url("local", "ml-prod", stage, "10.0.0.5") == "http://10.0.0.5:5000"


def test_a_shutdown_ends_the_open_streams_instead_of_waiting_for_them(
    make_service: ServiceFactory, github_repo: SourceRepo, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    files = pipeline_files(dag="prepare", scripts={"prepare.py": gated_script(gate, "a", "b")})
    sha = github_repo.commit(files)
    github_repo.push()
    service = make_service()
    run_id = push(service, "refs/heads/main", sha)
    wait_until(lambda: [s["state"] for s in service.run(run_id)["stages"]] == ["running"], what="the stage")
    outcome: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        try:
            with httpx.stream("GET", f"{service.base_url}/runs/{run_id}/events", timeout=60) as answer:
                for _ in answer.iter_bytes():
                    connected.set()
            outcome.append("ended")
        except httpx.HTTPError as error:  # cut off by the server's graceful-shutdown timeout
            outcome.append(type(error).__name__)

    listener = threading.Thread(target=listen)
    listener.start()
    assert connected.wait(30)
    service.__exit__(None, None, None)
    listener.join(30)
    assert outcome == ["ended"]
