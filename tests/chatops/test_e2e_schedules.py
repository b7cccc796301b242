"""The ``schedules`` verb end to end against the real service (uvicorn, Git over smart HTTP, the local
backend, the strict fake GitHub and Slack): over both transports, allowed, denied and with bad
arguments; and a ``schedules run`` from Slack that queues a real scheduled run whose commit statuses
and Slack message follow, as a push's do."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tests.fakes.github_api import FakeGitHub
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode
from tests.gitops.helpers import ZERO, SourceRepo, wait_until
from tests.gitops.test_e2e_github import statuses
from tests.gitops.test_schedules_e2e import scheduled_files

from .conftest import API_TOKEN, VISITOR, SlackService, SlackServiceFactory
from .test_e2e_verbs import STRANGER_CHANNEL, over_http, over_socket

pytestmark = pytest.mark.timeout(180)


def deployed(service: SlackService, sha: str) -> dict[str, object]:
    run = service.running.wait_for(service.push("refs/heads/main", ZERO, sha))
    assert run["state"] == "succeeded", run["reason"]
    return run


def history(service: SlackService) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = service.client.get("/api/schedules/pipelines/history").json()[
        "history"
    ]
    return entries


@pytest.mark.parametrize("transport", ["http", "socket"])
def test_the_schedules_verb_allowed_denied_and_with_bad_arguments(
    transport: str,
    slack_service: SlackServiceFactory,
    github_repo: SourceRepo,
    fake_slack: FakeSlack,
    socket_endpoint: FakeSocketMode,
) -> None:
    sha = github_repo.commit(scheduled_files())
    github_repo.push()
    service = slack_service(socket_mode=transport == "socket")
    say = over_http(service) if transport == "http" else over_socket(socket_endpoint)
    if transport == "socket":
        socket_endpoint.wait_connected()
    deployed(service, sha)
    year = datetime.now(UTC).year

    listed = say("schedules", VISITOR)
    assert listed.startswith(
        "• *pipelines* (acme/pipelines `main`, from bodywork.yaml) `0 0 1 1 *` Europe/London, forbid · next "
    )
    assert f"{year + 1}-01-01 00:00 GMT (in " in listed and listed.endswith("· not fired yet")
    assert say("schedules acme/pipelines pipelines") == listed
    assert "not one of bodywork's configured channels" in say("schedules", VISITOR, STRANGER_CHANNEL)
    assert "Unknown repository `acme/nope`" in say("schedules acme/nope")
    assert "(did you mean `history`?)" in say("schedules histroy pipelines")
    assert say("schedules history pipelines", VISITOR) == "*pipelines*: not fired yet."
    assert "not one of bodywork's configured channels" in say(
        "schedules history pipelines", VISITOR, STRANGER_CHANNEL
    )
    assert "No schedule `pipelinse` (did you mean `pipelines`?)" in say("schedules history pipelinse")

    assert "You may not `schedules run`" in say("schedules run pipelines", VISITOR)
    assert "No schedule `pipelinse` (did you mean `pipelines`?)" in say("schedules run pipelinse")
    assert history(service) == []
    fired = say("schedules run pipelines")
    assert fired.startswith("Fired schedule *pipelines* now (acme/pipelines): ") and "▶️ *queued*" in fired
    [entry] = history(service)
    assert str(entry["detail"]).startswith(
        f"run by slack:u0ops; queued {sha[:10]}, the head of refs/heads/main"
    )
    run = service.running.wait_for(str(entry["run_id"]))
    assert (run["trigger"], run["state"]) == ("schedule", "succeeded")
    assert str(entry["run_id"])[:8] in fired

    after = say("schedules history pipelines", VISITOR)
    assert after.splitlines()[0] == "*pipelines*: the last 1 fire(s), newest first"
    assert f"▶️ *queued* (run <http://bodywork.example.invalid/runs/{entry['run_id']}|" in after
    assert re.search(r": ▶️ queued \(run <http://bodywork\.example\.invalid/runs/", say("schedules"))

    audit = service.client.get("/api/audit", headers={"authorization": f"Bearer {API_TOKEN}"}).json()[
        "entries"
    ]
    assert {e["transport"] for e in audit} == {transport}
    seen = {(e["action"], e["outcome"]) for e in audit}
    for verb in ("schedules", "schedules history", "schedules run"):
        assert {(verb, "done"), (verb, "denied"), (verb, "invalid")} <= seen, verb
    [done] = [e for e in audit if (e["action"], e["outcome"]) == ("schedules run", "done")]
    assert (done["arguments"], done["repository"], done["environment"], done["detail"]) == (
        "pipelines",
        "acme/pipelines",
        "pipelines",
        entry["run_id"],
    )
    assert socket_endpoint.violations == [] and fake_slack.rejected == []


def test_schedules_run_from_slack_queues_a_scheduled_run_whose_statuses_and_message_follow(
    slack_service: SlackServiceFactory,
    github_repo: SourceRepo,
    fake_github: FakeGitHub,
    fake_slack: FakeSlack,
) -> None:
    sha = github_repo.commit(scheduled_files())
    github_repo.push()
    service = slack_service()
    pushed = deployed(service, sha)
    wait_until(lambda: len(statuses(fake_github, sha)) == 5, what="the push's final status")
    wait_until(lambda: len(fake_slack.top_level()) == 1, what="the push's message")

    answer = service.command("schedules run pipelines")

    assert answer.status_code == 200, answer.text
    assert answer.json()["response_type"] == "in_channel"
    [entry] = history(service)
    assert entry["outcome"] == "queued"
    scheduled = service.running.wait_for(str(entry["run_id"]))
    assert scheduled["state"] == "succeeded", scheduled["reason"]
    assert scheduled["trigger"] == "schedule" and scheduled["commit"] == sha
    assert scheduled["environment"] == pushed["environment"]
    wait_until(lambda: len(statuses(fake_github, sha)) == 10, what="the scheduled run's final status")
    contexts_states = [(context, state) for context, state, _ in statuses(fake_github, sha)]
    assert contexts_states[5:] == contexts_states[:5]
    assert contexts_states[-1] == ("bodywork/pipelines", "success")
    urls = {s.target_url for s in fake_github.accepted(sha)[5:]}
    assert urls == {f"http://bodywork.example.invalid/runs/{scheduled['id']}"}
    assert not fake_github.rejected

    def scheduled_message_succeeded() -> bool:
        messages = fake_slack.top_level()
        return len(messages) == 2 and "Succeeded" in messages[1].text

    wait_until(scheduled_message_succeeded, what="the scheduled run's own message, in its final state")
    assert "trigger: schedule" in str(fake_slack.top_level()[1].blocks)
    [listed] = service.client.get("/api/schedules").json()["schedules"]
    assert (listed["last_outcome"], listed["last_run_id"]) == ("queued", scheduled["id"])
