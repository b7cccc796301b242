"""Fixtures for the end-to-end ChatOps tests: the service under uvicorn with a ``slack:`` section, the
Git server and fake GitHub of tests/gitops, and the strict fake Slack (Web API and Socket Mode)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.github_api import FakeGitHub
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode
from tests.gitops.conftest import GITHUB_SECRET, git_http, git_root, github_repo, venv_cache
from tests.gitops.gitserver import GitHttpServer
from tests.gitops.helpers import RunningService, github_headers, github_push, github_repository, write_config

from .slack_requests import SIGNING_SECRET, command_body, interaction_body, signed

__all__ = ["git_http", "git_root", "github_repo", "venv_cache"]

API_TOKEN = "audit-reading-token-4711"
OPERATOR = "U0OPS"
VISITOR = "U0VISITOR"


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """The fake Slack; at teardown it must have refused no call (what real Slack would refuse)."""
    with FakeSlack() as fake:
        yield fake
        assert fake.unexpected_rejections() == [], f"Slack refused calls: {fake.unexpected_rejections()}"


@pytest.fixture
def socket_endpoint(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode(fake_slack) as endpoint:
        yield endpoint


class SlackService:
    """The running service plus what a Slack user does to it."""

    def __init__(self, running: RunningService, slack: FakeSlack) -> None:
        self.running = running
        self.slack = slack
        self.client = running.client

    def push(self, ref: str, before: str, after: str) -> str:
        body = json.dumps(github_push("acme/pipelines", ref, before, after)).encode()
        answer = self.client.post(
            "/webhooks/github", content=body, headers=github_headers(body, GITHUB_SECRET)
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["run_id"])

    def command(self, text: str, user: str = OPERATOR, channel: str = "C0DEPLOYS") -> httpx.Response:
        url = self.slack.new_response_url()
        body = command_body(text, user, channel, response_url=url)
        answer = self.client.post("/slack/commands", content=body, headers=signed(body, int(time.time())))
        answer.response_url = url  # type: ignore[attr-defined]
        return answer

    def press(self, action_id: str, value: str, user: str = OPERATOR) -> tuple[httpx.Response, str]:
        from .slack_requests import block_actions

        url = self.slack.new_response_url()
        body = interaction_body(block_actions(action_id, value, user, url))
        return self.client.post(
            "/slack/interactions", content=body, headers=signed(body, int(time.time()))
        ), url


SlackServiceFactory = Callable[..., SlackService]


@pytest.fixture
def slack_service(
    tmp_path: Path,
    venv_cache: Path,
    git_http: GitHttpServer,
    fake_github: FakeGitHub,
    fake_slack: FakeSlack,
) -> Iterator[SlackServiceFactory]:
    started: list[RunningService] = []

    def make(
        slack_extra: str = "",
        api_base: str = "",
        socket_mode: bool = False,
        backend: str = "",
        repo_extra: str = "",
        public_url: str = "http://bodywork.example.invalid",
        **options: Any,
    ) -> SlackService:
        environ = {
            "GH_SECRET": GITHUB_SECRET,
            "GH_TOKEN": fake_github.token,
            "API_TOKEN": API_TOKEN,
            "SLACK_BOT_TOKEN": fake_slack.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_APP_TOKEN": fake_slack.app_token,
        }
        config = f"""
service:
  data_dir: {tmp_path / "data"}
  public_url: {public_url}
  api_token_env: API_TOKEN
  status_min_interval_seconds: 0
  quiet_period_seconds: 0
{backend or f"  backend: local{chr(10)}  backend_options:{chr(10)}    cache_dir: {venv_cache}"}
repositories:
{github_repository(git_http.url("pipelines"), fake_github.api_base)}
{repo_extra}
slack:
  bot_token_env: SLACK_BOT_TOKEN
  signing_secret_env: SLACK_SIGNING_SECRET
{"  app_token_env: SLACK_APP_TOKEN" if socket_mode else ""}
  api_base: {api_base or fake_slack.api_base}
  channel: "#deploys"
  grants:
    - users: [{OPERATOR}]
      repositories: ["acme/*"]
{slack_extra}
"""
        settings = write_config(tmp_path / "service.yaml", config, environ)
        running = RunningService(settings, **options).__enter__()
        started.append(running)
        return SlackService(running, fake_slack)

    yield make
    for running in reversed(started):
        running.__exit__(None, None, None)
