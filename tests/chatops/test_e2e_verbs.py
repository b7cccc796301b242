"""Every verb over both transports, against the real service: allowed, denied, and a bad argument."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode
from tests.gitops.helpers import ZERO, SourceRepo, wait_until

from .conftest import API_TOKEN, OPERATOR, VISITOR, SlackService, SlackServiceFactory
from .slack_requests import command_fields
from .test_e2e_commands import free_port, with_service

pytestmark = pytest.mark.timeout(180)
STRANGER_CHANNEL = "C0RANDOM"

Say = Callable[..., str]


def over_http(service: SlackService) -> Say:
    def say(text: str, user: str = OPERATOR, channel: str = "C0DEPLOYS") -> str:
        answer = service.command(text, user, channel)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["text"])

    return say


def over_socket(endpoint: FakeSocketMode) -> Say:
    def say(text: str, user: str = OPERATOR, channel: str = "C0DEPLOYS") -> str:
        ack = endpoint.wait_ack(endpoint.send("slash_commands", command_fields(text, user, channel)))
        assert ack.payload is not None
        return str(ack.payload["text"])

    return say


@pytest.mark.parametrize("transport", ["http", "socket"])
def test_each_verb_allowed_denied_and_with_a_bad_argument(
    transport: str,
    slack_service: SlackServiceFactory,
    github_repo: SourceRepo,
    fake_slack: FakeSlack,
    socket_endpoint: FakeSocketMode,
) -> None:
    port = free_port()
    first = github_repo.commit(with_service(port))
    github_repo.push()
    service = slack_service(socket_mode=transport == "socket")
    say = over_http(service) if transport == "http" else over_socket(socket_endpoint)
    if transport == "socket":
        socket_endpoint.wait_connected()
    deployed = service.push("refs/heads/main", ZERO, first)
    assert service.running.wait_for(deployed)["state"] == "succeeded"
    slow = with_service(port)
    slow["prepare.py"] = "import time\nprint('slow prepare', flush=True)\ntime.sleep(30)\n"
    github_repo.commit(slow, message="slow")
    github_repo.push()  # no webhook: the rerun finds the new head itself

    def denied_read(text: str) -> None:
        assert "not one of bodywork's configured channels" in say(text, VISITOR, STRANGER_CHANNEL)

    # help, status, runs, logs, services: open in the configured channel, closed elsewhere.
    assert "/bodywork delete SERVICE" in say("help", VISITOR)
    assert "takes at most 0 argument(s)" in say("help me")
    assert "succeeded" in say("status", VISITOR)
    denied_read("status")
    assert "Unknown repository `acme/nope`" in say("status acme/nope")
    assert deployed[:8] in say("runs", VISITOR)
    denied_read("runs")
    assert "Unknown environment `prodd`" in say("runs acme/pipelines prodd")
    assert "stage prepare says hello" in say(f"logs {deployed[:8]}", VISITOR)
    denied_read(f"logs {deployed[:8]}")
    assert "No run `zzzzzzzz`" in say("logs zzzzzzzz")
    assert "`serve` in `pipelines`" in say("services", VISITOR)
    denied_read("services")
    assert "Unknown environment `nope`" in say("services acme/pipelines nope")

    # rerun, cancel, delete: only with a grant.
    assert "You may not `rerun`" in say("rerun acme/pipelines", VISITOR)
    assert "`no-such-branch` is neither an environment nor a branch that deploys" in say(
        "rerun acme/pipelines no-such-branch"
    )
    assert "Queued" in say("rerun pipelines main")
    rerun = service.client.get("/api/runs").json()["runs"][0]
    assert rerun["trigger"] == "slack:u0ops" and rerun["id"] != deployed
    wait_until(lambda: service.running.run(rerun["id"])["state"] == "running", what="the rerun to run")
    assert "You may not `cancel`" in say(f"cancel {rerun['id'][:8]}", VISITOR)
    assert "No run `00000000`" in say("cancel 00000000")
    assert "Cancelling" in say(f"cancel {rerun['id'][:8]}")
    assert service.running.wait_for(rerun["id"])["state"] == "cancelled"
    assert "You may not `delete`" in say("delete serve", VISITOR)
    assert "No service `serv` (did you mean `serve`?)" in say("delete serv")
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "model"
    assert "Deleted service serve in pipelines" in say("delete serve pipelines")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)

    audit = service.client.get("/api/audit", headers={"authorization": f"Bearer {API_TOKEN}"}).json()[
        "entries"
    ]
    assert len(audit) == 23 and {e["transport"] for e in audit} == {transport}
    outcomes = [(e["action"], e["outcome"]) for e in reversed(audit)]
    for verb in ("status", "runs", "logs", "services", "rerun", "cancel", "delete"):
        assert {(verb, "done"), (verb, "denied"), (verb, "invalid")} <= set(outcomes), verb
    assert socket_endpoint.violations == [] and fake_slack.rejected == []
