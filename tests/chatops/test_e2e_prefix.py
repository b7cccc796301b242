"""ChatOps behind a path prefix (the path of ``service.public_url``): Slack's requests reach the service
with the prefix and without it (a proxy may strip it), and the run messages link under it."""

from __future__ import annotations

import time

import pytest

from tests.fakes.slack_api import FakeSlack
from tests.gitops.helpers import ZERO, SourceRepo, pipeline_files, wait_until

from .conftest import OPERATOR, VISITOR, SlackServiceFactory
from .slack_requests import block_actions, command_body, interaction_body, signed

pytestmark = pytest.mark.timeout(120)

PREFIX = "/ml/bodywork"
PUBLIC_URL = f"http://bodywork.example.invalid{PREFIX}"


def test_slack_reaches_the_service_with_and_without_the_prefix_and_links_under_it(
    slack_service: SlackServiceFactory, github_repo: SourceRepo, fake_slack: FakeSlack
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    service = slack_service(public_url=PUBLIC_URL)
    run_id = service.push("refs/heads/main", ZERO, sha)
    assert service.running.wait_for(run_id)["state"] == "succeeded"

    for path in (f"{PREFIX}/slack/commands", "/slack/commands"):
        body = command_body("status", VISITOR, "C0DEPLOYS", response_url=fake_slack.new_response_url())
        answer = service.client.post(path, content=body, headers=signed(body, int(time.time())))
        assert answer.status_code == 200 and "succeeded" in answer.json()["text"], (path, answer.text)
    for path in (f"{PREFIX}/slack/interactions", "/slack/interactions"):
        payload = block_actions("unknown_action", "x", OPERATOR, fake_slack.new_response_url())
        body = interaction_body(payload)
        answer = service.client.post(path, content=body, headers=signed(body, int(time.time())))
        assert answer.status_code == 200, (path, answer.text)

    wait_until(lambda: len(fake_slack.top_level()) == 1 and "Succeeded" in fake_slack.top_level()[0].text,
               what="the run's message")
    assert f"{PUBLIC_URL}/runs/{run_id}" in str(fake_slack.top_level()[0].blocks)
