"""The ``schedules`` verbs: ``schedules [repo] [env]``, ``schedules history ENV`` and ``schedules run ID``.

The first two are read-only. ``schedules run`` needs the ``rerun`` grant of the schedule's repository and
environment: it queues a run of the environment's deployed branch, as ``rerun REPO ENV`` does (see
docs/decisions.md). The answers are made by :mod:`chatops.schedule_text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatops.grammar import SUB_VERBS, VERBS_BY_NAME, Command, did_you_mean
from chatops.grants import Actor
from chatops.model import ScheduleView
from chatops.operations import OperationError
from chatops.render import escape
from chatops.replies import Outcome, Reply
from chatops.schedule_text import fire_line, fit, schedule_line

if TYPE_CHECKING:  # the handlers build this class
    from chatops.handlers import Handlers

HISTORY_FIRES = 20
"""Fires shown by ``schedules history``, newest first (``bodywork schedules history`` shows more)."""
_FORMS = ("schedules", "schedules history", "schedules run")


class ScheduleVerbs:
    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers

    def _usage(self) -> str:
        command = self.handlers.command_name
        return "\nUsage: " + " | ".join(f"{command} {VERBS_BY_NAME[form].usage}" for form in _FORMS)

    def _schedule(self, schedule_id: str, known: list[ScheduleView]) -> ScheduleView:
        found = next((s for s in known if s.id == schedule_id), None)
        if found is None:
            hint = did_you_mean(schedule_id, [s.id for s in known])
            raise OperationError(f"No schedule `{escape(schedule_id)}`{hint}.{self._usage()}")
        return found

    def _repository(self, name: str | None) -> str | None:
        """The repository `name` means; a misspelt sub-verb (``schedules histroy``) is said to be one."""
        try:
            return self.handlers.repository(name)
        except OperationError:
            hint = did_you_mean(name or "", sorted(SUB_VERBS))
            if not hint:
                raise OperationError(self.handlers.unknown_repository(name or "") + self._usage()) from None
            raise OperationError(
                f"Unknown repository or sub-command `{escape(name or '')}`{hint}.{self._usage()}"
            ) from None

    def _environment(self, repository: str | None, name: str | None, known: list[ScheduleView]) -> None:
        if name is None:
            return
        environments = {*self.handlers.ops.environments(repository)}
        environments |= {s.id for s in known if repository in (None, s.repository)}
        if name not in environments:
            hint = did_you_mean(name, sorted(environments))
            raise OperationError(f"Unknown environment `{escape(name)}`{hint}.{self._usage()}")

    async def listing(self, command: Command, actor: Actor) -> Outcome:
        known = list(self.handlers.ops.schedules())
        repository, environment = self._repository(command.arg("repo")), command.arg("env")
        self._environment(repository, environment, known)
        chosen = [s for s in known if repository in (None, s.repository) and environment in (None, s.id)]
        now = self.handlers.clock()
        lines = [schedule_line(s, now) for s in sorted(chosen, key=lambda s: (s.repository, s.id))]
        hint = f"name a repository or environment (`{self.handlers.command_name} schedules REPO ENV`)"
        text = fit(lines, hint) or "No schedules. Declare one under `pipeline.schedule` in bodywork.yaml."
        return Outcome(Reply(text), "done", "schedules", repository or "", environment or "")

    async def history(self, command: Command, actor: Actor) -> Outcome:
        schedule_id = command.arg("env") or ""
        known = list(self.handlers.ops.schedules())
        fires = self.handlers.ops.schedule_history(schedule_id, HISTORY_FIRES)
        schedule = next((s for s in known if s.id == schedule_id), None)
        if schedule is None and not fires:
            self._schedule(schedule_id, known)  # raises, with a "did you mean"
        timezone = schedule.timezone if schedule is not None else "UTC"
        title = f"*{escape(schedule_id)}*" + ("" if schedule is not None else " (removed)")
        if not fires:
            text = f"{title}: not fired yet."
        else:
            lines = [fire_line(fire, timezone) for fire in fires]
            hint = f"`bodywork schedules history {schedule_id}` shows more"
            text = f"{title}: the last {len(fires)} fire(s), newest first\n{fit(lines, hint)}"
        repository = schedule.repository if schedule is not None else ""
        return Outcome(Reply(text), "done", "schedules history", repository, schedule_id)

    async def run(self, command: Command, actor: Actor) -> Outcome:
        verb = "schedules run"
        schedule = self._schedule(command.arg("id") or "", list(self.handlers.ops.schedules()))
        policy = self.handlers.policy
        if not policy.may_change(actor, VERBS_BY_NAME[verb].needs, schedule.repository, schedule.id):
            return self.handlers.denied(verb, schedule.repository, schedule.id)
        requested_by = f"slack:{actor.user_name or actor.user_id}"
        fire = await self.handlers.ops.run_schedule(schedule.id, requested_by)
        line = fire_line(fire, schedule.timezone).removeprefix("• ")
        text = f"Fired schedule *{escape(schedule.id)}* now ({escape(schedule.repository)}): {line}"
        queued = fire.outcome == "queued" and fire.run_id
        detail = fire.run_id if queued and fire.run_id else f"{fire.outcome}: {fire.detail}"
        return Outcome(Reply(text, in_channel=True), "done", verb, schedule.repository, schedule.id, detail)
