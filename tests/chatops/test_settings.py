"""The slack: section: secrets by reference, channel routing, grants, and every problem at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatops.settings import SlackSettings, parse_slack_settings
from gitops.config_reader import ConfigReader

ENV = {"SLACK_BOT_TOKEN": "xoxb-123", "SLACK_SIGNING_SECRET": "s3cr3t", "SLACK_APP_TOKEN": "xapp-1-A0-xyz"}


def parse(raw: Any, environ: dict[str, str] = ENV) -> tuple[SlackSettings | None, list[str]]:
    reader = ConfigReader(environ)
    return parse_slack_settings(raw, reader), reader.problems


def test_a_full_section(tmp_path: Path) -> None:
    secret_file = tmp_path / "signing"
    secret_file.write_text("from-a-file\n")
    settings, problems = parse(
        {
            "bot_token_env": "SLACK_BOT_TOKEN",
            "signing_secret_file": str(secret_file),
            "app_token_env": "SLACK_APP_TOKEN",
            "api_base": "http://127.0.0.1:9/api/",
            "channel": "#deploys",
            "channels": [
                {"repository": "acme/*", "environment": "production", "channel": "C0PROD"},
                {"repository": "acme/pipelines", "channel": "#ml"},
            ],
            "command": "/deploy",
            "grants": [{"users": ["U0OPS"], "repositories": ["acme/*"], "verbs": ["rerun", "cancel"]}],
        }
    )
    assert problems == [] and settings is not None
    assert settings.bot_token.reveal() == "xoxb-123" and settings.signing_secret is not None
    assert settings.signing_secret.reveal() == "from-a-file"
    assert settings.channel_for("ACME/pipelines", "production") == "C0PROD"
    assert settings.channel_for("acme/pipelines", "pipelines-feature-x-1a2b3c") == "#ml"
    assert settings.channel_for("other/repo", "production") == "#deploys"
    assert settings.read_channels == ("#deploys", "C0PROD", "#ml")
    assert settings.grants[0].verbs == ("rerun", "cancel") and settings.command == "/deploy"
    assert "xoxb-123" not in repr(settings)


def test_every_problem_is_reported_at_once_with_did_you_mean() -> None:
    settings, problems = parse(
        {
            "bot_token": "xoxb-in-the-file",
            "signing_secret_env": "MISSING_VARIABLE",
            "app_token_env": "SLACK_BOT_TOKEN",
            "chanel": "#deploys",
            "command": "bodywork",
            "api_base": "slack.com",
            "channels": [{"repositry": "acme/*"}],
            "grants": [{"users": ["U1"], "verbs": ["rerun", "delet"]}, {"repositories": ["x"]}],
        }
    )
    assert settings is None
    assert problems == [
        "slack.chanel -> unknown setting; did you mean 'channel'; see docs/service.md for the accepted keys",
        "slack.bot_token -> secrets are not read from the config file; set bot_token_env to the name of an "
        "environment variable or bot_token_file to a mounted file",
        "slack.api_base -> must be an http(s) URL, not 'slack.com'",
        "slack.channel -> required: the default channel (id like C0123ABCD, or #name)",
        "slack.command -> must look like /bodywork (lower case, at most 32), not 'bodywork'",
        "slack.app_token_env -> an app-level token starts with xapp- (Basic Information → App-Level Tokens)",
        "slack.signing_secret_env -> environment variable MISSING_VARIABLE is not set or empty",
        "slack.channels.0.repositry -> unknown setting; did you mean 'repository'; see docs/service.md "
        "for the accepted keys",
        "slack.channels.0.channel -> required: the channel (id like C0123ABCD, or #name)",
        "slack.grants.0.verbs -> 'delet' is not a verb that needs a grant; did you mean 'delete'",
        "slack.grants.1 -> a grant needs users or channels (or both)",
    ]
    assert "xoxb" not in str(problems)


def test_the_bot_token_is_required_and_the_section_must_be_a_mapping() -> None:
    assert parse({"channel": "#x"}, {})[1] == [
        "slack.bot_token_env -> required: name the environment variable holding the bot_token"
    ]
    assert parse(["channel"], {})[1][0] == "slack -> must be a mapping, not ['channel']"


def test_channels_and_grants_must_be_lists_of_mappings() -> None:
    section = {
        "bot_token_env": "SLACK_BOT_TOKEN", "signing_secret_env": "SLACK_SIGNING_SECRET", "channel": "#x"
    }
    assert parse({**section, "channels": "C0PROD", "grants": {"users": ["U1"]}})[1] == [
        "slack.channels -> must be a list of {repository, environment, channel}",
        "slack.grants -> must be a list of grants",
    ]
    assert parse({**section, "channels": ["C0PROD"], "grants": ["U1"]})[1] == [
        "slack.channels.0 -> must be a mapping, not 'C0PROD'",
        "slack.grants.0 -> must be a mapping, not 'U1'",
    ]
