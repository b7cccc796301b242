"""One handler per verb and button, shared by both transports: a command in, an :class:`Outcome` out.

Changing verbs find what they are about (repository, environment) first, then ask the grants, then act.
Unknown names get a "did you mean"; nothing here raises for bad input. The ``schedules`` verbs are in
:mod:`chatops.schedule_verbs`, over this module's lookups and grants.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chatops.grammar import VERBS_BY_NAME, Command, UsageError, did_you_mean, help_text, parse
from chatops.grants import Actor, Grant, allowed
from chatops.model import RunView
from chatops.operations import OperationError, Operations, RerunPlan, ServiceView
from chatops.render import (
    ACTION_CANCEL,
    ACTION_DELETE,
    ACTION_RERUN,
    duration_text,
    escape,
    ref_name,
    short_sha,
)
from chatops.replies import Outcome, Reply
from chatops.schedule_verbs import ScheduleVerbs

_ICONS = {
    "queued": "⏳",
    "running": "🔄",
    "succeeded": "✅",
    "failed": "❌",
    "cancelled": "🚫",
    "superseded": "⏩",
}


@dataclass(frozen=True)
class Policy:
    grants: tuple[Grant, ...] = ()
    read_channels: tuple[str, ...] = ()
    """Channels where read-only verbs are open (the configured ones)."""

    def may_read(self, actor: Actor) -> bool:
        named = any(actor.user_id in g.users or actor.in_channel(g.channels) for g in self.grants)
        return named or actor.in_channel(self.read_channels)

    def may_change(self, actor: Actor, verb: str, repository: str, environment: str) -> bool:
        return allowed(self.grants, actor, verb, repository, environment)


@dataclass
class Handlers:
    ops: Operations
    policy: Policy
    command_name: str = "/bodywork"
    clock: Callable[[], float] = time.time
    _verbs: dict[str, Callable[[Command, Actor], Awaitable[Outcome]]] = field(init=False)

    def __post_init__(self) -> None:
        self._verbs = {
            "help": self._help,
            "status": self._status,
            "runs": self._runs,
            "logs": self._logs,
            "rerun": self._rerun,
            "cancel": self._cancel,
            "services": self._services,
            "delete": self._delete,
        }
        schedules = ScheduleVerbs(self)
        self._verbs.update(
            {
                "schedules": schedules.listing,
                "schedules history": schedules.history,
                "schedules run": schedules.run,
            }
        )

    async def command(self, actor: Actor, text: str) -> Outcome:
        try:
            command = parse(text, self.command_name)
        except UsageError as error:
            return Outcome(
                Reply(str(error)), "invalid", (text.split() or ["help"])[0][:40], detail=error.message
            )
        if not command.spec.changes and command.verb != "help" and not self.policy.may_read(actor):
            message = (
                "This channel is not one of bodywork's configured channels; ask there, or ask for a grant."
            )
            return Outcome(Reply(message), "denied", command.verb, detail="channel not configured")
        try:
            return await self._verbs[command.verb](command, actor)
        except OperationError as error:  # the audit's detail is the message's first line (no usage)
            detail = str(error).partition("\n")[0]
            return Outcome(Reply(f"{error}"), "invalid", command.verb, detail=detail)

    async def button(self, actor: Actor, action_id: str, value: str) -> Outcome:
        try:
            if action_id == ACTION_RERUN:
                run = self._run(value)
                return await self._do_rerun(actor, RerunPlan(run.repository, run.environment, run.ref))
            if action_id == ACTION_CANCEL:
                return await self._do_cancel(actor, self._run(value))
            if action_id.startswith(ACTION_DELETE):
                return await self._delete_from_button(actor, value)
        except OperationError as error:
            return Outcome(Reply(f"{error}"), "invalid", action_id, detail=str(error))
        return Outcome(
            Reply(f"Unknown button `{escape(action_id)}`."), "invalid", action_id[:60], detail="unknown"
        )

    # Helpers.

    def _run(self, id_or_prefix: str) -> RunView:
        run = self.ops.find_run(id_or_prefix.strip())
        if run is None:
            raise OperationError(
                f"No run `{escape(id_or_prefix[:40])}`: use `{self.command_name} runs` for the ids."
            )
        return run

    def repository(self, name: str | None) -> str | None:
        """The configured repository `name` means (``owner/name`` or ``name``); OperationError if none."""
        if name is None:
            return None
        known = list(self.ops.repositories())
        match = next((r for r in known if r.lower() == name.lower()), None)
        if match is None:
            match = next((r for r in known if r.split("/")[-1].lower() == name.lower()), None)
        if match is None:
            raise OperationError(self.unknown_repository(name))
        return match

    def unknown_repository(self, name: str) -> str:
        return f"Unknown repository `{escape(name)}`{did_you_mean(name, list(self.ops.repositories()))}."

    def _environment(self, repository: str | None, name: str | None) -> str | None:
        if name is None:
            return None
        known = list(self.ops.environments(repository))
        if name not in known:
            raise OperationError(f"Unknown environment `{escape(name)}`{did_you_mean(name, known)}.")
        return name

    def denied(self, verb: str, repository: str, environment: str) -> Outcome:
        """The answer to a changing verb no grant allows, naming the grant it needs."""
        grant = VERBS_BY_NAME[verb].needs
        needs = f" (it needs a `{grant}` grant)" if grant != verb else ""
        text = (
            f"You may not `{verb}` in *{escape(repository)}* / `{escape(environment)}`: no grant allows "
            f"it{needs}. An admin can add one under `slack.grants` in the service's config."
        )
        return Outcome(Reply(text), "denied", verb, repository, environment, "no grant")

    # Read-only verbs.

    async def _help(self, command: Command, actor: Actor) -> Outcome:
        return Outcome(Reply(help_text(self.command_name)), "done", "help")

    def _filters(self, command: Command) -> tuple[str | None, str | None]:
        repository = self.repository(command.arg("repo"))
        return repository, self._environment(repository, command.arg("env"))

    def _run_line(self, run: RunView) -> str:
        took = duration_text(run.duration)
        return (
            f"{_ICONS.get(run.state, '')} <{run.url}|`{run.id[:8]}`> *{escape(run.repository)}* → "
            f"`{escape(run.environment)}` {run.state}{f' in {took}' if took else ''} · "
            f"`{short_sha(run.commit.sha)}` on `{escape(ref_name(run.ref))}` · {escape(run.trigger)}"
        )

    async def _status(self, command: Command, actor: Actor) -> Outcome:
        repository, environment = self._filters(command)
        latest = sorted(self.ops.latest(repository, environment), key=lambda r: (r.repository, r.environment))
        text = "\n".join(self._run_line(run) for run in latest) or "No runs yet."
        return Outcome(Reply(text), "done", "status", repository or "", environment or "")

    async def _runs(self, command: Command, actor: Actor) -> Outcome:
        repository, environment = self._filters(command)
        lines = [self._run_line(run) for run in self.ops.runs(repository, environment, 10)]
        return Outcome(
            Reply("\n".join(lines) or "No runs yet."), "done", "runs", repository or "", environment or ""
        )

    async def _logs(self, command: Command, actor: Actor) -> Outcome:
        run = self._run(command.arg("run") or "")
        lines = self.ops.log_lines(run.id, 30)
        body = "\n".join(f"[{stage}] {line}" if stage else line for stage, line in lines) or "(no output yet)"
        text = f"{self._run_line(run)}\n```\n{escape(body)[-2800:]}\n```"
        return Outcome(Reply(text), "done", "logs", run.repository, run.environment, run.id)

    async def _services(self, command: Command, actor: Actor) -> Outcome:
        repository, environment = self._filters(command)
        services = await self.ops.services(repository, environment)
        lines = [
            f"• `{escape(s.name)}` in `{escape(s.environment)}` ({escape(s.repository)})" for s in services
        ]
        return Outcome(
            Reply("\n".join(lines) or "No services deployed."),
            "done",
            "services",
            repository or "",
            environment or "",
        )

    # Changing verbs.

    async def _rerun(self, command: Command, actor: Actor) -> Outcome:
        repository = self.repository(command.arg("repo")) or ""
        return await self._do_rerun(actor, self.ops.plan_rerun(repository, command.arg("branch_or_env")))

    async def _do_rerun(self, actor: Actor, plan: RerunPlan) -> Outcome:
        if not self.policy.may_change(actor, "rerun", plan.repository, plan.environment):
            return self.denied("rerun", plan.repository, plan.environment)
        run = await self.ops.rerun(plan, f"slack:{actor.user_name or actor.user_id}")
        text = (
            f"Queued <{run.url}|run `{run.id[:8]}`> of *{escape(run.repository)}* "
            f"`{escape(ref_name(plan.ref))}` → `{escape(run.environment)}`."
        )
        return Outcome(
            Reply(text, in_channel=True), "done", "rerun", plan.repository, plan.environment, run.id
        )

    async def _cancel(self, command: Command, actor: Actor) -> Outcome:
        return await self._do_cancel(actor, self._run(command.arg("run") or ""))

    async def _do_cancel(self, actor: Actor, run: RunView) -> Outcome:
        if not self.policy.may_change(actor, "cancel", run.repository, run.environment):
            return self.denied("cancel", run.repository, run.environment)
        if run.is_final:
            raise OperationError(f"Run `{run.id[:8]}` is already {run.state}.")
        after = await self.ops.cancel(run.id)
        text = (
            f"Cancelling <{after.url}|run `{after.id[:8]}`> of *{escape(after.repository)}* "
            f"→ `{escape(after.environment)}`."
        )
        return Outcome(
            Reply(text, in_channel=True), "done", "cancel", run.repository, run.environment, run.id
        )

    async def _delete(self, command: Command, actor: Actor) -> Outcome:
        name, environment = command.arg("service") or "", command.arg("env")
        candidates = [s for s in await self.ops.services(None, None) if environment in (None, s.environment)]
        matching = [s for s in candidates if s.name == name]
        if not matching:
            names = sorted({s.name for s in candidates})
            where = f" in `{escape(environment)}`" if environment else ""
            raise OperationError(f"No service `{escape(name)}`{where}{did_you_mean(name, names)}.")
        if len(matching) > 1:
            envs = ", ".join(f"`{s.environment}`" for s in matching)
            raise OperationError(
                f"`{escape(name)}` runs in {envs}: name the environment, "
                f"e.g. `{self.command_name} delete {name} {matching[0].environment}`."
            )
        return await self._do_delete(actor, matching[0])

    async def _delete_from_button(self, actor: Actor, value: str) -> Outcome:
        try:
            data = json.loads(value)
            run, name = self._run(str(data["run"])), str(data["service"])
        except (ValueError, KeyError, TypeError):
            raise OperationError("This button's value is not one bodywork made.") from None
        found = [s for s in await self.ops.services(run.repository, run.environment) if s.name == name]
        if not found:
            raise OperationError(
                f"Service `{escape(name)}` is not deployed in `{escape(run.environment)}` any more."
            )
        return await self._do_delete(actor, found[0])

    async def _do_delete(self, actor: Actor, service: ServiceView) -> Outcome:
        if not self.policy.may_change(actor, "delete", service.repository, service.environment):
            return self.denied("delete", service.repository, service.environment)
        done = await self.ops.delete_service(service)
        return Outcome(
            Reply(escape(done), in_channel=True),
            "done",
            "delete",
            service.repository,
            service.environment,
            service.name,
        )
