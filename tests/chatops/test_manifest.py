"""``bodywork slack manifest``: what a user pastes into Slack."""

from __future__ import annotations

import argparse
import json

import pytest

from chatops.commands import slack


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="bodywork")
    sub = parser.add_subparsers(dest="command")
    slack.add_parser(sub)
    code = slack.run(parser.parse_args(argv))
    return code, capsys.readouterr().out


def test_http_manifest_names_the_request_urls_and_scopes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["slack", "manifest", "--public-url", "https://bodywork.example.com/"], capsys)
    data = json.loads(out)
    assert code == 0
    [command] = data["features"]["slash_commands"]
    assert (
        command["command"] == "/bodywork" and command["url"] == "https://bodywork.example.com/slack/commands"
    )
    assert "rerun REPO [branch_or_env]" in command["usage_hint"]
    assert data["settings"]["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://bodywork.example.com/slack/interactions",
    }
    assert data["settings"]["socket_mode_enabled"] is False
    assert set(data["oauth_config"]["scopes"]["bot"]) == {
        "chat:write",
        "chat:write.public",
        "files:write",
        "commands",
    }


def test_socket_mode_manifest_has_no_urls(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["slack", "manifest", "--socket-mode", "--command", "/deploy"], capsys)
    data = json.loads(out)
    assert code == 0 and data["settings"]["socket_mode_enabled"] is True
    assert (
        "url" not in data["features"]["slash_commands"][0]
        and "request_url" not in data["settings"]["interactivity"]
    )
    assert data["features"]["slash_commands"][0]["command"] == "/deploy"


def test_http_without_a_public_url_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["slack", "manifest"], capsys)
    assert code == 1 and "--public-url is required unless --socket-mode" in out
