"""Every verb and button through the shared dispatch: allowed, denied, bad input; audit and ack rules."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from chatops.audit import AuditEntry
from chatops.dispatch import Dispatch, Invocation
from chatops.grants import Actor, Grant
from chatops.handlers import Handlers, Policy
from chatops.render import ACTION_CANCEL, ACTION_DELETE, ACTION_RERUN

from .builders import a_run
from .memory_ops import MemoryOps

pytestmark = pytest.mark.timeout(10)

OPERATOR = Actor("U0OPS", "C0DEPLOYS", "deploys", "ops")
VISITOR = Actor("U0VISITOR", "C0DEPLOYS", "deploys", "visitor")
STRANGER = Actor("U0STRANGER", "C0RANDOM", "random", "stranger")
POLICY = Policy(grants=(Grant(users=("U0OPS",), repositories=("acme/*",)),), read_channels=("C0DEPLOYS",))


class Audit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class Harness:
    def __init__(self, ops: MemoryOps | None = None, ack_budget: float = 2.0) -> None:
        self.ops = ops or MemoryOps()
        self.audit = Audit()
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.dispatch = Dispatch(Handlers(self.ops, POLICY), self.audit, self._respond, ack_budget=ack_budget)

    async def _respond(self, url: str, body: dict[str, Any]) -> None:
        self.responses.append((url, body))

    def command(self, actor: Actor, text: str) -> str:
        async def go() -> dict[str, Any]:
            answer = await self.dispatch.command(
                Invocation(actor, "command", "http", "http://r/1", text=text)
            )
            await self.dispatch.drain()
            return answer

        answer = asyncio.run(go())
        assert answer["response_type"] in ("ephemeral", "in_channel")
        return str(answer["text"])

    def press(self, actor: Actor, action_id: str, value: str) -> str:
        async def go() -> None:
            await self.dispatch.button(
                Invocation(actor, "button", "socket", "http://r/2", action_id=action_id, value=value)
            )
            await self.dispatch.drain()

        asyncio.run(go())
        url, body = self.responses[-1]
        assert url == "http://r/2" and body["replace_original"] is False
        return str(body["text"])

    @property
    def last(self) -> AuditEntry:
        return self.audit.entries[-1]


RUN_ID = a_run().id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("help", "/bodywork rerun REPO"),
        ("status", "acme/pipelines* → `production` running"),
        ("status acme/pipelines production", "`0123456` on `main`"),
        ("runs pipelines", "`3f2a9c1e`"),
        (f"logs {RUN_ID[:8]}", "[train] epoch 99"),
        ("services", "`serve` in `production`"),
    ],
)
def test_read_only_verbs_answer_in_a_configured_channel(text: str, expected: str) -> None:
    harness = Harness()
    assert expected in harness.command(VISITOR, text)
    assert harness.last.outcome == "done" and harness.last.user_id == "U0VISITOR"


def test_read_only_verbs_are_closed_outside_the_configured_channels() -> None:
    harness = Harness()
    assert "not one of bodywork's configured channels" in harness.command(STRANGER, "status")
    assert harness.last.outcome == "denied"
    assert "/bodywork status" in harness.command(STRANGER, "help")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status acme/pipelinez", "Unknown repository `acme/pipelinez` (did you mean `acme/pipelines`?)"),
        ("runs acme/pipelines prodution", "Unknown environment `prodution` (did you mean `production`?)"),
        ("logs nope", "No run `nope`"),
        ("stauts", "Unknown command `stauts` (did you mean `status`?)"),
        ("rerun acme/pipelines feature/zzz", "`feature/zzz` is neither a deploy branch nor an environment"),
        ("cancel 0000", "No run `0000`"),
        ("delete serv", "No service `serv` (did you mean `serve`?)"),
        ("delete serve staging", "No service `serve` in `staging`"),
        ("rerun", "`rerun` needs REPO.\nUsage: /bodywork rerun REPO [branch_or_env]"),
    ],
)
def test_bad_input_gets_a_usage_line_or_a_did_you_mean(text: str, expected: str) -> None:
    harness = Harness()
    assert expected in harness.command(OPERATOR, text)
    assert harness.last.outcome == "invalid"
    assert harness.ops.reruns == [] and harness.ops.cancelled == [] and harness.ops.deleted == []


def test_changing_verbs_are_done_for_a_granted_user() -> None:
    harness = Harness()
    assert "Queued <" in harness.command(OPERATOR, "rerun acme/pipelines")
    assert harness.ops.reruns[0][1] == "slack:ops"
    assert (harness.last.action, harness.last.outcome, harness.last.environment) == (
        "rerun",
        "done",
        "production",
    )
    assert "Cancelling" in harness.command(OPERATOR, f"cancel {RUN_ID[:8]}")
    assert harness.ops.cancelled == [RUN_ID]
    assert "Deleted service serve in production" in harness.command(OPERATOR, "delete serve production")
    assert [s.name for s in harness.ops.deleted] == ["serve"]


@pytest.mark.parametrize("text", ["rerun acme/pipelines", f"cancel {RUN_ID[:8]}", "delete serve"])
def test_changing_verbs_are_denied_without_a_grant(text: str) -> None:
    harness = Harness()
    answer = harness.command(VISITOR, text)
    assert "You may not" in answer and "no grant allows it" in answer
    assert harness.last.outcome == "denied" and harness.last.repository == "acme/pipelines"
    assert harness.ops.reruns == [] and harness.ops.cancelled == [] and harness.ops.deleted == []


def test_buttons_act_for_a_granted_user_and_are_denied_otherwise() -> None:
    harness = Harness()
    delete_value = json.dumps({"run": RUN_ID, "service": "serve"})
    assert "You may not `rerun`" in harness.press(VISITOR, ACTION_RERUN, RUN_ID)
    assert "You may not `delete`" in harness.press(VISITOR, f"{ACTION_DELETE}:0", delete_value)
    assert harness.ops.reruns == [] and harness.ops.deleted == []
    assert "Queued" in harness.press(OPERATOR, ACTION_RERUN, RUN_ID)
    assert harness.ops.reruns[0][0].ref == "refs/heads/main"
    assert "Cancelling" in harness.press(OPERATOR, ACTION_CANCEL, RUN_ID)
    assert "Deleted service serve" in harness.press(OPERATOR, f"{ACTION_DELETE}:0", delete_value)
    assert "not deployed in `production` any more" in harness.press(
        OPERATOR, f"{ACTION_DELETE}:0", delete_value
    )
    assert "not one bodywork made" in harness.press(OPERATOR, f"{ACTION_DELETE}:0", "{")
    assert "Unknown button" in harness.press(OPERATOR, "something_else", "")
    sources = {(e.source, e.transport) for e in harness.audit.entries}
    assert sources == {("button", "socket")} and len(harness.audit.entries) == 8


def test_a_slow_command_is_acknowledged_at_once_and_answered_through_the_response_url() -> None:
    ops = MemoryOps()
    gate = asyncio.Event()
    original = ops.rerun

    async def slow_rerun(plan: Any, requested_by: str) -> Any:
        await gate.wait()
        return await original(plan, requested_by)

    ops.rerun = slow_rerun  # type: ignore[method-assign]
    harness = Harness(ops, ack_budget=0.01)

    async def go() -> dict[str, Any]:
        answer = await harness.dispatch.command(
            Invocation(OPERATOR, "command", "http", "http://r/1", text="rerun acme/pipelines")
        )
        assert harness.responses == []
        gate.set()
        await harness.dispatch.drain()
        return answer

    assert asyncio.run(go())["text"] == "Working on it…"
    [(url, body)] = harness.responses
    assert url == "http://r/1" and body["response_type"] == "in_channel" and "Queued" in body["text"]


def test_an_unexpected_failure_is_answered_and_audited_without_its_message() -> None:
    harness = Harness(MemoryOps(fail_with=RuntimeError("database password=hunter2 leaked")))
    answer = harness.command(OPERATOR, "rerun acme/pipelines")
    assert "Sorry, that failed: RuntimeError" in answer and "hunter2" not in answer
    assert harness.last.outcome == "failed" and "hunter2" not in harness.last.log_line()
