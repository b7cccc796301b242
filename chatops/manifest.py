"""A Slack app manifest for "Create an app → From a manifest": scopes, slash command, interactivity. Pure.

Over HTTP, Slack posts commands and button presses to the service's public URL; with Socket Mode no
URL is needed (the app-level token opens a WebSocket from inside the cluster).
"""

from __future__ import annotations

from typing import Any

from chatops.grammar import VERBS

BOT_SCOPES = ("chat:write", "chat:write.public", "files:write", "commands")
"""Post and update run messages (also in public channels the bot was not invited to), attach logs,
and receive the slash command."""


def manifest(
    public_url: str | None, socket_mode: bool, command: str = "/bodywork", name: str = "Bodywork"
) -> dict[str, Any]:
    if not socket_mode and not public_url:
        raise ValueError("over HTTP Slack needs the service's public URL (or use --socket-mode)")
    base = (public_url or "").rstrip("/")
    slash: dict[str, Any] = {
        "command": command,
        "description": "Deployments: status, runs, logs, rerun, cancel, delete",
        "usage_hint": " | ".join(verb.usage for verb in VERBS)[:1000],
        "should_escape": False,
    }
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        slash["url"] = f"{base}/slack/commands"
        interactivity["request_url"] = f"{base}/slack/interactions"
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name[:35],
            "description": "Bodywork GitOps: each run as one live message; rerun, cancel, delete from Slack.",
            "background_color": "#1d3557",
        },
        "features": {
            "bot_user": {"display_name": name.lower()[:80], "always_online": True},
            "slash_commands": [slash],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }
