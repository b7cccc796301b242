"""Signed Slack requests and payloads, as Slack sends them, for the transport tests."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from chatops.signing import sign

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def command_fields(
    text: str, user: str, channel: str = "C0DEPLOYS", response_url: str = ""
) -> dict[str, str]:
    return {
        "token": "deprecated-verification-token",
        "team_id": "T0FAKE",
        "team_domain": "acme",
        "channel_id": channel,
        "channel_name": "deploys" if channel == "C0DEPLOYS" else "random",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/bodywork",
        "text": text,
        "api_app_id": "A0FAKE",
        "response_url": response_url,
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
    }


def block_actions(
    action_id: str, value: str, user: str, response_url: str, channel: str = "C0DEPLOYS"
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": "T0FAKE", "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "channel": {"id": channel, "name": "deploys"},
        "container": {"type": "message", "message_ts": "1800000001.000100", "channel_id": channel},
        "trigger_id": "12466734323.1395872398",
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b1",
                "type": "button",
                "value": value,
                "action_ts": "1800000002.1",
            }
        ],
    }


def signed(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": str(timestamp),
        "x-slack-signature": sign(secret, str(timestamp), body),
    }


def command_body(text: str, user: str, channel: str = "C0DEPLOYS", response_url: str = "") -> bytes:
    return urlencode(command_fields(text, user, channel, response_url)).encode()


def interaction_body(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()
