"""End to end: a signed push -> the service -> a real run -> one Slack message per run on the fake Slack."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chatops import notifier
from tests.fakes.github_api import FakeGitHub
from tests.fakes.slack_api import FakeSlack
from tests.gitops.helpers import ZERO, SourceRepo, pipeline_files, wait_until
from tests.pages.helpers import gated_script

from .conftest import SlackServiceFactory

pytestmark = pytest.mark.timeout(120)


def final_statuses(fake: FakeGitHub, sha: str) -> list[str]:
    return [s.state for s in fake.accepted(sha)]


def one_message_in(slack: FakeSlack, state: str) -> None:
    def settled() -> bool:
        top = slack.top_level()
        return len(top) == 1 and state in top[0].text and len(slack.replies(top[0])) >= 2

    wait_until(settled, what=f"one message saying {state}")


def test_a_pushed_run_gets_one_message_ending_in_its_final_state_with_logs_in_the_thread(
    slack_service: SlackServiceFactory,
    github_repo: SourceRepo,
    fake_github: FakeGitHub,
    fake_slack: FakeSlack,
) -> None:
    failing = pipeline_files(
        scripts={"train.py": "import sys\nprint('token is ghp_fake_token_0123456789')\nsys.exit(3)\n"}
    )
    sha = github_repo.commit(failing, message="Train with more data\n\nlonger body")
    github_repo.push()
    service = slack_service()

    run_id = service.push("refs/heads/main", ZERO, sha)

    assert service.running.wait_for(run_id)["state"] == "failed"
    one_message_in(fake_slack, "Failed")
    [message] = fake_slack.top_level()
    shown = str(message.blocks)
    assert message.channel == "C0DEPLOYS" and sha[:7] in shown and "Train with more data" in shown
    assert "Stage `train` failed" in shown and f"/runs/{run_id}" in shown and "trigger: push" in shown
    replies = [r.text for r in fake_slack.replies(message)]
    assert replies == ["Log of prepare (succeeded)", "Log of train (failed)"]
    assert "ghp_fake_token" not in str([m.blocks for m in fake_slack.messages])  # masked
    assert fake_slack.rejected == []
    wait_until(lambda: final_statuses(fake_github, sha)[-1:] == ["failure"], what="the failure status")


def test_a_429_storm_during_a_run_still_ends_in_one_message_in_the_right_state(
    slack_service: SlackServiceFactory, github_repo: SourceRepo, fake_slack: FakeSlack
) -> None:
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    service = slack_service()
    fake_slack.rate_limit_next(times=6, retry_after=1)

    run_id = service.push("refs/heads/main", ZERO, sha)

    assert service.running.wait_for(run_id)["state"] == "succeeded"
    one_message_in(fake_slack, "Succeeded")
    assert len(fake_slack.scripted) == 6 and len(fake_slack.top_level()) == 1
    # The service's metrics count the Slack calls: the six refused posts, and each accepted one (told
    # once the answer is read, a moment after the fake recorded the post).
    posts = 'bodywork_slack_calls_total{method="chat.postMessage",outcome='

    def counted() -> bool:
        metrics = service.running.client.get("/metrics").text
        accepted = len(fake_slack.messages)
        return f'{posts}"failed"}} 6.0' in metrics and f'{posts}"ok"}} {accepted}.0' in metrics

    wait_until(counted, what="the Slack calls in /metrics")


def test_slack_down_for_a_whole_run_leaves_the_run_and_its_statuses_alone(
    slack_service: SlackServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: every Slack call fails to connect
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/api/"
    sha = github_repo.commit(pipeline_files())
    github_repo.push()
    service = slack_service(api_base=dead)

    run = service.running.wait_for(service.push("refs/heads/main", ZERO, sha))

    assert run["state"] == "succeeded" and [s["state"] for s in run["stages"]] == ["succeeded", "succeeded"]
    wait_until(lambda: final_statuses(fake_github, sha)[-1:] == ["success"], what="the success status")
    assert final_statuses(fake_github, sha) == ["pending"] * 4 + ["success"]  # every status, as without Slack


def test_a_restart_mid_run_keeps_updating_the_one_message(
    slack_service: SlackServiceFactory, github_repo: SourceRepo, fake_slack: FakeSlack
) -> None:
    slow = pipeline_files(scripts={"train.py": "import time\nprint('training', flush=True)\ntime.sleep(4)\n"})
    sha = github_repo.commit(slow)
    github_repo.push()
    service = slack_service()
    run_id = service.push("refs/heads/main", ZERO, sha)
    wait_until(lambda: fake_slack.top_level() and "Running" in fake_slack.top_level()[0].text, what="running")
    wait_until(
        lambda: (
            service.running.run(run_id)["stages"][-1:]
            and service.running.run(run_id)["stages"][-1]["stage"] == "train"
        )
    )
    service.running.__exit__(None, None, None)  # a restart while train runs

    again = slack_service()

    assert again.running.wait_for(run_id, timeout=90)["state"] == "succeeded"
    one_message_in(fake_slack, "Succeeded")
    [message] = fake_slack.top_level()
    assert [r.text for r in fake_slack.replies(message)][-2:] == [
        "Log of prepare (succeeded)",
        "Log of train (succeeded)",
    ]


def test_stage_progress_reaches_the_message_as_the_store_records_it(
    slack_service: SlackServiceFactory,
    github_repo: SourceRepo,
    fake_slack: FakeSlack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notifier follows the store's change feed: with its fallback look an hour away, a stage
    that starts still shows on the message while the run waits."""
    monkeypatch.setattr(notifier, "WATCH_SECONDS", 3600.0)
    gate = tmp_path / "gate"
    files = pipeline_files(dag="prepare", scripts={"prepare.py": gated_script(gate, "waiting", "done")})
    sha = github_repo.commit(files)
    github_repo.push()
    service = slack_service()
    run_id = service.push("refs/heads/main", ZERO, sha)

    def shows_prepare_running() -> bool:
        top = fake_slack.top_level()
        return len(top) == 1 and "`prepare` (batch) running" in str(top[0].blocks)

    wait_until(shows_prepare_running, what="the message saying prepare is running")
    assert service.running.run(run_id)["state"] == "running"
    gate.touch()
    assert service.running.wait_for(run_id)["state"] == "succeeded"

    def final() -> bool:
        [message] = fake_slack.top_level()
        return "Succeeded" in message.text and len(fake_slack.replies(message)) == 1

    wait_until(final, what="the final message, prepare's log in its thread")
