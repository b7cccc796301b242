"""Both transports hand Slack's payloads to one :class:`Dispatch`: audit, the 3-second ack, follow-ups.

A slash command is answered in its acknowledgement when the handler is done within ``ack_budget``
seconds; otherwise the acknowledgement says "working on it" and the answer follows through the
command's ``response_url``. A button press is acknowledged at once and answered through its
``response_url``. Every command and press is audited, whatever its outcome; an unexpected failure is
answered and audited as ``failed``, never raised to the transport (so never a 5xx).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chatops.audit import AuditEntry, AuditSink
from chatops.grants import Actor
from chatops.handlers import Handlers
from chatops.replies import Outcome, Reply

log = logging.getLogger(__name__)
audit_log = logging.getLogger("bodywork.audit")

Responder = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Posts a body to a ``response_url``."""
WORKING = {"response_type": "ephemeral", "text": "Working on it…"}


@dataclass(frozen=True)
class Invocation:
    actor: Actor
    source: str
    """``command`` or ``button``."""
    transport: str
    """``http`` or ``socket``."""
    response_url: str
    text: str = ""
    action_id: str = ""
    value: str = ""


class PayloadError(Exception):
    """A payload that is not a slash command or button press we understand."""


def command_invocation(fields: Mapping[str, str], transport: str) -> Invocation:
    """From a slash command's fields (form fields over HTTP, the envelope's payload over a socket)."""
    if not fields.get("user_id") or not fields.get("channel_id"):
        raise PayloadError("a slash command needs user_id and channel_id")
    actor = Actor(
        user_id=fields["user_id"],
        channel_id=fields["channel_id"],
        channel_name=fields.get("channel_name", ""),
        user_name=fields.get("user_name", ""),
        team_id=fields.get("team_id", ""),
    )
    return Invocation(
        actor, "command", transport, fields.get("response_url", ""), text=fields.get("text", "")
    )


def button_invocation(payload: Mapping[str, Any], transport: str) -> Invocation | None:
    """From a ``block_actions`` payload; None for other interaction types (ignored, answered 200)."""
    if payload.get("type") != "block_actions":
        return None
    user, channel = payload.get("user") or {}, payload.get("channel") or {}
    actions = payload.get("actions") or []
    if (
        not isinstance(user, dict)
        or not isinstance(channel, dict)
        or not isinstance(actions, list)
        or not actions
    ):
        raise PayloadError("block_actions needs user, channel and actions")
    action = actions[0] if isinstance(actions[0], dict) else {}
    actor = Actor(
        user_id=str(user.get("id", "")),
        channel_id=str(channel.get("id", "")),
        channel_name=str(channel.get("name", "")),
        user_name=str(user.get("username") or user.get("name") or ""),
        team_id=str((payload.get("team") or {}).get("id", "")),
    )
    return Invocation(
        actor,
        "button",
        transport,
        str(payload.get("response_url", "")),
        action_id=str(action.get("action_id", "")),
        value=str(action.get("value", "")),
    )


class Dispatch:
    def __init__(
        self,
        handlers: Handlers,
        audit: AuditSink,
        responder: Responder,
        ack_budget: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.handlers = handlers
        self.audit = audit
        self.responder = responder
        self.ack_budget = ack_budget
        self.clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()

    async def command(self, invocation: Invocation) -> dict[str, Any]:
        """The acknowledgement's body: the answer, or "working on it" with the answer to follow."""
        task = asyncio.create_task(self._handle(invocation))
        done, _ = await asyncio.wait({task}, timeout=self.ack_budget)
        if done:
            return task.result().body()
        self._keep(task)
        task.add_done_callback(lambda t: self._follow_up(invocation, t))
        return dict(WORKING)

    async def button(self, invocation: Invocation) -> None:
        """Acknowledged at once (the caller answers 200); the answer goes to the response_url."""
        task = asyncio.create_task(self._handle(invocation))
        self._keep(task)
        task.add_done_callback(lambda t: self._follow_up(invocation, t))

    async def drain(self) -> None:
        """Waits for the follow-ups in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _follow_up(self, invocation: Invocation, task: asyncio.Task[Reply]) -> None:
        if task.cancelled() or not invocation.response_url:
            return
        body = {**task.result().body(), "replace_original": False}
        self._keep(asyncio.ensure_future(self._respond(invocation.response_url, body)))

    async def _respond(self, url: str, body: dict[str, Any]) -> None:
        try:
            await self.responder(url, body)
        except Exception as error:  # Slack down: the user sees no answer; the audit log has it
            log.warning("could not answer through the response_url: %s", error)

    async def _handle(self, invocation: Invocation) -> Reply:
        at = self.clock()
        try:
            if invocation.source == "button":
                outcome = await self.handlers.button(invocation.actor, invocation.action_id, invocation.value)
            else:
                outcome = await self.handlers.command(invocation.actor, invocation.text)
        except Exception as error:
            log.exception("slack %s failed", invocation.source)
            name = (invocation.text.split() or [invocation.action_id or "?"])[0]
            text = f"Sorry, that failed: {type(error).__name__}. The service log has the details."
            outcome = Outcome(Reply(text), "failed", name[:40], detail=type(error).__name__)
        self._record(invocation, outcome, at)
        return outcome.reply

    def _record(self, invocation: Invocation, outcome: Outcome, at: float) -> None:
        arguments = invocation.value
        if invocation.source == "command":
            words = invocation.text.split()
            verb = outcome.action.split()  # one word, or two (`schedules run`)
            named = bool(words) and [word.lower() for word in words[: len(verb)]] == verb
            arguments = " ".join(words[len(verb) :]) if named else invocation.text
        entry = AuditEntry(
            at=at,
            user_id=invocation.actor.user_id,
            user_name=invocation.actor.user_name,
            channel_id=invocation.actor.channel_id,
            team_id=invocation.actor.team_id,
            source=invocation.source,
            transport=invocation.transport,
            action=outcome.action if invocation.source == "command" else invocation.action_id,
            arguments=arguments[:500],
            repository=outcome.repository,
            environment=outcome.environment,
            outcome=outcome.outcome,
            detail=outcome.detail[:500],
        )
        audit_log.warning("%s", entry.log_line())  # at WARNING: the audit trail shows at any verbosity
        try:
            self.audit.record(entry)
        except Exception:
            log.exception("could not store the audit entry: %s", entry.log_line())
