"""Both transports in front of one dispatch: signed HTTP requests, and Socket Mode over a real WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from chatops.dispatch import Dispatch
from chatops.handlers import Handlers
from chatops.render import ACTION_RERUN
from chatops.transports import HttpTransport, SocketTransport
from gitops.secret import Secret
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode

from .builders import a_run
from .memory_ops import MemoryOps
from .slack_requests import (
    SIGNING_SECRET,
    block_actions,
    command_body,
    command_fields,
    interaction_body,
    signed,
)
from .test_handlers import POLICY, Audit

pytestmark = pytest.mark.timeout(20)
NOW = 1_800_000_000


class Setup:
    def __init__(self) -> None:
        self.ops = MemoryOps()
        self.audit = Audit()
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.dispatch = Dispatch(Handlers(self.ops, POLICY), self.audit, self._respond)
        self.http = HttpTransport(self.dispatch, Secret(SIGNING_SECRET), clock=lambda: NOW + 5)

    async def _respond(self, url: str, body: dict[str, Any]) -> None:
        self.responses.append((url, body))


def test_a_signed_command_is_answered_and_its_replay_rejected() -> None:
    setup = Setup()
    body = command_body("rerun acme/pipelines", "U0OPS")

    async def go() -> tuple[Any, Any]:
        first = await setup.http.commands(signed(body, NOW), body)
        again = await setup.http.commands(signed(body, NOW), body)
        return first, again

    first, again = asyncio.run(go())
    assert first.status == 200 and "Queued" in first.body["text"]
    assert again.status == 401 and "replayed" in again.body["error"]
    assert len(setup.ops.reruns) == 1 and len(setup.audit.entries) == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (signed(command_body("rerun acme/pipelines", "U0OPS"), NOW, secret="wrong-secret"), "mismatch"),
        (signed(command_body("rerun acme/pipelines", "U0OPS"), NOW - 400), "stale"),
        ({"content-type": "application/x-www-form-urlencoded"}, "missing"),
    ],
)
def test_unsigned_badly_signed_and_stale_requests_are_rejected_before_being_read(
    headers: dict[str, str], reason: str
) -> None:
    setup = Setup()
    body = command_body("rerun acme/pipelines", "U0OPS")
    for route in (setup.http.commands, setup.http.interactions):
        answer = asyncio.run(route(headers, body))
        assert answer.status == 401 and answer.body is not None and reason in answer.body["error"]
    assert setup.ops.reruns == [] and setup.audit.entries == []


def test_malformed_but_signed_payloads_get_an_ephemeral_answer_not_an_error() -> None:
    setup = Setup()
    for route, body in (
        (setup.http.commands, b"text=status"),
        (setup.http.interactions, b"payload=%7Bnot-json"),
    ):
        answer = asyncio.run(route(signed(body, NOW), body))
        assert answer.status == 200 and answer.body is not None
        assert answer.body["response_type"] == "ephemeral"


def test_a_button_press_is_acknowledged_empty_and_answered_through_the_response_url() -> None:
    setup = Setup()
    body = interaction_body(block_actions(ACTION_RERUN, a_run().id, "U0OPS", "http://slack.test/r/9"))

    async def go() -> Any:
        answer = await setup.http.interactions(signed(body, NOW), body)
        await setup.dispatch.drain()
        return answer

    answer = asyncio.run(go())
    assert answer.status == 200 and answer.body is None
    [(url, reply)] = setup.responses
    assert url == "http://slack.test/r/9" and "Queued" in reply["text"]
    assert setup.audit.entries[0].source == "button" and setup.audit.entries[0].transport == "http"


@pytest.fixture
def socket_mode() -> Iterator[tuple[FakeSlack, FakeSocketMode]]:
    with FakeSlack() as slack, FakeSocketMode(slack) as endpoint:
        yield slack, endpoint


def test_socket_mode_answers_commands_in_the_acknowledgement_and_survives_a_refresh(
    socket_mode: tuple[FakeSlack, FakeSocketMode],
) -> None:
    slack, endpoint = socket_mode
    setup = Setup()

    async def go() -> list[Any]:
        transport = SocketTransport(setup.dispatch, Secret(slack.app_token), slack.api_base)
        await transport.start()
        await asyncio.wait_for(transport.connected.wait(), 10)
        acks = []
        for text, user in (
            ("rerun acme/pipelines", "U0OPS"),
            ("rerun acme/pipelines", "U0VISITOR"),
            ("bogus", "U0OPS"),
        ):
            envelope = endpoint.send("slash_commands", command_fields(text, user))
            acks.append(await asyncio.to_thread(endpoint.wait_ack, envelope))
            if len(acks) == 1:
                endpoint.disconnect()
                await asyncio.to_thread(endpoint.wait_connected, 2)
        pressed = endpoint.send("interactive", block_actions(ACTION_RERUN, a_run().id, "U0OPS", "http://r/3"))
        acks.append(await asyncio.to_thread(endpoint.wait_ack, pressed))
        await transport.stop()
        return acks

    allowed, denied, unknown, button = asyncio.run(go())
    assert "Queued" in allowed.payload["text"]
    assert "You may not `rerun`" in denied.payload["text"]
    assert "Unknown command `bogus`" in unknown.payload["text"]
    assert button.payload is None and "Queued" in setup.responses[0][1]["text"]
    assert len(setup.ops.reruns) == 2 and endpoint.violations == []
    assert slack.connections_opened == 2
    assert [(e.transport, e.outcome) for e in setup.audit.entries] == [
        ("socket", "done"),
        ("socket", "denied"),
        ("socket", "invalid"),
        ("socket", "done"),
    ]


def test_socket_mode_keeps_trying_while_slack_is_unreachable(
    socket_mode: tuple[FakeSlack, FakeSocketMode],
) -> None:
    slack, _endpoint = socket_mode
    slack.fail_next(times=2, status=503)
    setup = Setup()

    async def go() -> None:
        transport = SocketTransport(
            setup.dispatch, Secret(slack.app_token), slack.api_base, retry_seconds=0.01
        )
        await transport.start()
        await asyncio.wait_for(transport.connected.wait(), 10)
        await transport.stop()

    asyncio.run(go())
    assert slack.connections_opened == 1 and len(slack.scripted) == 2
