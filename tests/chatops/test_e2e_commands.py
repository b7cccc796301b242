"""End to end: slash commands and buttons over real HTTP (signed) and Socket Mode, against real runs."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from chatops.render import ACTION_DELETE, ACTION_RERUN
from tests.fakes.github_api import FakeGitHub
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode
from tests.gitops.helpers import ZERO, SourceRepo, pipeline_files, wait_until

from .conftest import API_TOKEN, OPERATOR, VISITOR, SlackServiceFactory
from .slack_requests import command_body, command_fields, signed

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_service(port: int) -> dict[str, str]:
    server = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'model')\n"
        "    def log_message(self, *a):\n"
        "        pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    files = pipeline_files(dag="prepare >> serve", scripts={"serve.py": server})
    files["bodywork.yaml"] = files["bodywork.yaml"].replace(
        "  serve:\n    executable_module_path: serve.py\n    cpu_request: 0.1\n    memory_request_mb: 64\n"
        "    batch:\n      max_completion_time_seconds: 30\n      retries: 0\n",
        "  serve:\n    executable_module_path: serve.py\n    cpu_request: 0.1\n    memory_request_mb: 64\n"
        f"    service:\n      max_startup_time_seconds: 20\n      replicas: 1\n      port: {port}\n"
        "      ingress: false\n",
    )
    return files


def answers(slack: FakeSlack, url: str) -> list[str]:
    return [body["text"] for body in slack.responses(url)]


def test_rerun_from_slack_makes_a_real_run_with_a_commit_status_and_its_own_message(
    slack_service: SlackServiceFactory,
    github_repo: SourceRepo,
    fake_github: FakeGitHub,
    fake_slack: FakeSlack,
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    service = slack_service()

    answer = service.command("rerun acme/pipelines")

    assert answer.status_code == 200, answer.text
    text = answer.json()["text"]
    assert answer.json()["response_type"] == "in_channel" and "Queued" in text and "`main`" in text
    runs = service.client.get("/api/runs").json()["runs"]
    [run] = runs
    assert run["trigger"] == "slack:u0ops" and run["commit"] == sha
    assert service.running.wait_for(run["id"])["state"] == "succeeded"
    wait_until(lambda: [s.state for s in fake_github.accepted(sha)][-1:] == ["success"], what="the status")
    wait_until(lambda: len(fake_slack.top_level()) == 1 and "Succeeded" in fake_slack.top_level()[0].text)
    assert "trigger: slack:u0ops" in str(fake_slack.top_level()[0].blocks)


def test_read_verbs_denials_and_bad_arguments_over_http(
    slack_service: SlackServiceFactory, github_repo: SourceRepo, fake_slack: FakeSlack
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    service = slack_service()
    run_id = service.push("refs/heads/main", ZERO, sha)
    service.running.wait_for(run_id)

    def say(text: str, user: str = OPERATOR) -> str:
        answer = service.command(text, user)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["text"])

    assert "/bodywork rerun REPO" in say("help", VISITOR)
    assert "succeeded" in say("status", VISITOR) and run_id[:8] in say("runs acme/pipelines", VISITOR)
    assert "stage train says hello" in say(f"logs {run_id[:8]}", VISITOR)
    assert "No services deployed" in say("services", VISITOR)
    assert "You may not `rerun`" in say("rerun acme/pipelines", VISITOR)
    assert "You may not `cancel`" in say(f"cancel {run_id}", VISITOR)
    assert "Unknown repository `acme/pipelinez` (did you mean `acme/pipelines`?)" in say(
        "rerun acme/pipelinez"
    )
    assert "Unknown command `stauts` (did you mean `status`?)" in say("stauts")
    assert "is already succeeded" in say(f"cancel {run_id}")
    assert "No service `serve`" in say("delete serve")
    assert (
        "not one of bodywork's configured channels"
        in service.command("status", VISITOR, "C0RANDOM").json()["text"]
    )
    assert len(service.client.get("/api/runs").json()["runs"]) == 1  # nothing was run

    audit = service.client.get("/api/audit", headers={"authorization": f"Bearer {API_TOKEN}"}).json()[
        "entries"
    ]
    assert len(audit) == 12 and {e["transport"] for e in audit} == {"http"}
    assert {e["outcome"] for e in audit} == {"done", "denied", "invalid"}
    assert service.client.get("/api/audit").status_code == 401


def test_bad_signature_stale_timestamp_and_replay_are_rejected_over_http(
    slack_service: SlackServiceFactory, github_repo: SourceRepo
) -> None:
    service = slack_service()
    body = command_body("rerun acme/pipelines", OPERATOR)
    now = int(time.time())
    forged = service.client.post("/slack/commands", content=body, headers=signed(body, now, secret="guess"))
    stale = service.client.post("/slack/commands", content=body, headers=signed(body, now - 301))
    first = service.client.post("/slack/commands", content=body, headers=signed(body, now))
    replay = service.client.post("/slack/commands", content=body, headers=signed(body, now))
    assert [forged.status_code, stale.status_code, replay.status_code] == [401, 401, 401]
    assert "mismatch" in forged.json()["error"] and "stale" in stale.json()["error"]
    assert "replayed" in replay.json()["error"]
    assert first.status_code == 200  # (its rerun fails: the repository has no commit yet)
    assert service.client.post("/slack/interactions", content=b"payload=x", headers={}).status_code == 401


def test_delete_from_a_button_removes_a_service_on_the_local_backend(
    slack_service: SlackServiceFactory, github_repo: SourceRepo, fake_slack: FakeSlack
) -> None:
    port = free_port()
    sha = github_repo.commit(with_service(port))
    github_repo.push()
    service = slack_service()
    run_id = service.push("refs/heads/main", ZERO, sha)
    assert service.running.wait_for(run_id)["state"] == "succeeded"
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "model"
    wait_until(
        lambda: fake_slack.top_level() and "Delete service serve" in str(fake_slack.top_level()[0].blocks)
    )
    button = next(
        e
        for b in fake_slack.top_level()[0].blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"].startswith(ACTION_DELETE)
    )
    assert button["confirm"]["title"]["text"] == "Delete service serve?"

    denied, denied_url = service.press(button["action_id"], button["value"], user=VISITOR)
    assert denied.status_code == 200 and denied.text == ""
    wait_until(lambda: fake_slack.responses(denied_url), what="the denial")
    assert "You may not `delete`" in answers(fake_slack, denied_url)[0]
    assert "`serve` in `pipelines`" in service.command("services", VISITOR).json()["text"]

    _done, url = service.press(button["action_id"], button["value"])
    wait_until(lambda: fake_slack.responses(url), what="the answer")
    assert answers(fake_slack, url) == ["Deleted service serve in pipelines."]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    assert "No services deployed" in service.command("services").json()["text"]


def test_every_kind_of_answer_over_socket_mode_and_a_rerun_button(
    slack_service: SlackServiceFactory,
    github_repo: SourceRepo,
    fake_slack: FakeSlack,
    socket_endpoint: FakeSocketMode,
) -> None:
    github_repo.commit(pipeline_files())
    github_repo.push()
    service = slack_service(socket_mode=True)
    socket_endpoint.wait_connected()

    def say(text: str, user: str = OPERATOR) -> str:
        envelope = socket_endpoint.send("slash_commands", command_fields(text, user))
        payload = socket_endpoint.wait_ack(envelope).payload
        assert payload is not None
        return str(payload["text"])

    assert "Queued" in say("rerun acme/pipelines")
    [run] = service.client.get("/api/runs").json()["runs"]
    assert service.running.wait_for(run["id"])["state"] == "succeeded"
    assert "You may not `rerun`" in say("rerun acme/pipelines", VISITOR)
    assert "Unknown environment `prod`" in say("status acme/pipelines prod")
    assert "succeeded" in say("status")
    url = fake_slack.new_response_url()
    from .slack_requests import block_actions

    pressed = socket_endpoint.send("interactive", block_actions(ACTION_RERUN, run["id"], OPERATOR, url))
    assert socket_endpoint.wait_ack(pressed).payload is None
    wait_until(lambda: fake_slack.responses(url), what="the button's answer")
    assert "Queued" in answers(fake_slack, url)[0]
    assert len(service.client.get("/api/runs").json()["runs"]) == 2
    assert socket_endpoint.violations == []
    audit = service.client.get("/api/audit", headers={"authorization": f"Bearer {API_TOKEN}"}).json()[
        "entries"
    ]
    assert [(e["transport"], e["source"], e["outcome"]) for e in reversed(audit)] == [
        ("socket", "command", "done"),
        ("socket", "command", "denied"),
        ("socket", "command", "invalid"),
        ("socket", "command", "done"),
        ("socket", "button", "done"),
    ]
    assert json.dumps(audit).count(OPERATOR) == 4
