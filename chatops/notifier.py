"""One Slack message per run, updated in place, with each finished stage's log in its thread.

The service tells the notifier *that* a run changed (:meth:`Notifier.changed`, cheap and non-blocking);
one worker task later reads the run as it is then and brings Slack up to date. Changes that arrive
while Slack is slow or rate limited coalesce into one update, so a 429 storm costs no extra calls.

- The message's channel and ``ts`` are kept through :class:`MessageIds` (the store), so a restarted
  service updates the same message. Which stage logs were posted is kept too.
- Stage progress is announced by the store's change feed (:meth:`Notifier.progressed`): a run whose
  message is up (and not final) is read again at once when one of its stages changed, and at the
  latest every ``watch_interval`` seconds (a fallback); an unchanged message costs no call.
- A queued run gets its message only once it has waited ``queued_notice`` seconds (or when it starts):
  a burst of pushes coalesced into one run posts one message, not one per push.
- A post whose outcome is unknown (timeout, 5xx) is never repeated: the run goes without a message
  rather than getting two. A post that certainly failed (rate limit, no connection) is tried again.
- Slack failing never raises out of here: the pipeline and its commit statuses do not wait for Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatops.courier import Courier, GaveUp
from chatops.model import RunView
from chatops.render import Mask, log_reply, no_mask, run_message
from chatops.slack_api import MaybeApplied, Posted, Refused, SlackApi

log = logging.getLogger(__name__)
WATCH_SECONDS = 10.0
"""The default ``watch_interval``: how often a run in progress is read without a change announced."""


@dataclass(frozen=True)
class MessageRef:
    channel: str
    ts: str
    logs_posted: frozenset[str] = frozenset()


class MessageIds(Protocol):
    def get(self, run_id: str) -> MessageRef | None: ...

    async def put(self, run_id: str, channel: str, ts: str) -> None:
        """Durably: a restart must find it, or it would post a second message."""
        ...

    async def log_posted(self, run_id: str, stage: str) -> None: ...


class RunSource(Protocol):
    def view(self, run_id: str) -> RunView | None: ...

    def stage_log(self, run_id: str, stage: str) -> Sequence[str]:
        """The end of the stage's log, as much as a reply attaches."""
        ...

    def stage_log_length(self, run_id: str, stage: str) -> int:
        """How many lines the stage wrote."""
        ...


_LOGGED_STAGE_STATES = frozenset({"succeeded", "failed", "rolled_back", "cancelled"})


class Notifier:
    def __init__(
        self,
        api: SlackApi,
        courier: Courier,
        source: RunSource,
        ids: MessageIds,
        channel_for: Callable[[str, str], str],
        mask: Mask = no_mask,
        queued_notice: float = 2.0,
        watch_interval: float | None = None,
        retry_later: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.courier = courier
        self.source = source
        self.ids = ids
        self.channel_for = channel_for
        self.mask = mask
        self.queued_notice = queued_notice
        self.watch_interval = WATCH_SECONDS if watch_interval is None else watch_interval
        self.retry_later = retry_later
        self.clock = clock
        self._due: dict[str, float] = {}
        self._sent: dict[str, str] = {}
        """Run id -> the last message content sent, so an unchanged run costs no call."""
        self._abandoned: set[str] = set()
        self._with_message: set[str] = set()
        """Runs not final whose message this process posted or found in the store."""
        self._watched: set[str] = set()
        """Runs not final whose next look is the watch (``watch_interval``): a stage change brings it on."""
        self._syncing: str | None = None
        self._again = False
        """A stage of the run being synced changed meanwhile: look again at once."""
        self._busy = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def changed(self, run_id: str, state: str | None = None, created_at: float = 0.0) -> None:
        """The run changed; Slack is brought up to date soon. Safe to call from the event loop only.

        With the run's new `state`, a burst of webhooks costs no store reads here: a queued run is
        looked at once its notice period is over, a superseded run without a message not at all.
        """
        if run_id not in self._with_message:
            if state == "superseded":
                self._due.pop(run_id, None)
                return
            if state == "queued":
                self._due[run_id] = min(self._due.get(run_id, math.inf), created_at + self.queued_notice)
                self._wake.set()
                return
        self._due[run_id] = self.clock()
        self._wake.set()

    def progressed(self, run_id: str) -> None:
        """A stage of the run changed (the store's change feed). Safe to call from the event loop only.

        A run being watched is brought up to date now rather than at its next look; any other run costs
        nothing (a run without a message, or final, is told of its status by :meth:`changed`)."""
        if run_id == self._syncing:
            self._again = True
        elif run_id in self._watched:
            self._due[run_id] = self.clock()
            self._wake.set()

    def remember(self, run_id: str) -> None:
        """The run has a message already (found in the store at start-up)."""
        self._with_message.add(run_id)

    def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="slack-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def idle(self) -> None:
        """Waits until nothing is due now (tests)."""
        while self._busy or any(at <= self.clock() for at in self._due.values()):
            await asyncio.sleep(0.01)

    async def _work(self) -> None:
        while True:
            now = self.clock()
            ready = sorted((at, run_id) for run_id, at in self._due.items() if at <= now)
            if not ready:
                self._wake.clear()
                wait = min((at - now for at in self._due.values()), default=None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                continue
            run_id = ready[0][1]
            del self._due[run_id]
            self._watched.discard(run_id)
            self._busy, self._syncing, self._again = True, run_id, False
            try:
                await self._sync(run_id)
            except GaveUp as gave_up:
                self._gave_up(run_id, gave_up)
            except Exception:
                log.exception("Slack: could not bring run %s up to date", run_id)
            finally:
                self._busy, self._syncing = False, None

    def _gave_up(self, run_id: str, gave_up: GaveUp) -> None:
        if isinstance(gave_up.error, MaybeApplied) and self.ids.get(run_id) is None:
            self._abandoned.add(run_id)  # a second post could duplicate the first
            log.warning(
                "Slack: run %s may or may not have a message (%s); not posting again", run_id, gave_up
            )
            return
        if isinstance(gave_up.error, Refused):  # e.g. the message was deleted: asking again cannot help
            log.warning("Slack: run %s not brought up to date (%s)", run_id, gave_up)
            return
        log.warning("Slack: run %s not brought up to date (%s); trying again later", run_id, gave_up)
        self._due.setdefault(run_id, self.clock() + self.retry_later)

    async def _sync(self, run_id: str) -> None:
        run = self.source.view(run_id)
        if run is None or run_id in self._abandoned:
            return
        ref = self.ids.get(run_id)
        if ref is None:
            ref = await self._post(run)
            if ref is None:
                return
        else:
            await self._update(run, ref)
        if run.is_final:
            self._with_message.discard(run_id)
        else:
            self._with_message.add(run_id)
        await self._post_logs(run, ref)
        if run.is_final:
            return
        if self._again:  # a stage changed while Slack was being told
            self._due[run_id] = self.clock()
        else:  # stage changes bring the next look on (progressed); this is the fallback
            self._due.setdefault(run_id, self.clock() + self.watch_interval)
        self._watched.add(run_id)

    async def _post(self, run: RunView) -> MessageRef | None:
        if run.state == "superseded" or (
            run.state == "queued" and self.clock() < run.created_at + self.queued_notice
        ):
            if run.state == "queued":  # look again when the notice period is over
                self._due.setdefault(run.id, run.created_at + self.queued_notice)
            return None
        message = run_message(run, self.mask)
        channel = self.channel_for(run.repository, run.environment)
        posted: Posted = await self.courier.deliver(
            channel,
            lambda: self.api.post_message(channel, message.text, list(message.blocks)),
            idempotent=False,
        )
        await self.ids.put(run.id, posted.channel, posted.ts)
        self._sent[run.id] = repr(message)
        return MessageRef(posted.channel, posted.ts)

    async def _update(self, run: RunView, ref: MessageRef) -> None:
        message = run_message(run, self.mask)
        if self._sent.get(run.id) == repr(message):
            return
        await self.courier.deliver(
            ref.channel,
            lambda: self.api.update_message(ref.channel, ref.ts, message.text, list(message.blocks)),
            idempotent=True,
        )
        self._sent[run.id] = repr(message)
        if run.is_final:
            self._sent.pop(run.id, None)  # nothing more will change; keep memory flat

    async def _post_logs(self, run: RunView, ref: MessageRef) -> None:
        for stage in run.stages:
            if stage.state not in _LOGGED_STAGE_STATES or stage.name in ref.logs_posted:
                continue
            lines = self.source.stage_log(run.id, stage.name)
            written = self.source.stage_log_length(run.id, stage.name)
            reply = log_reply(run, stage, lines, self.mask, written)
            await self.courier.deliver(
                ref.channel,
                lambda reply=reply: self.api.post_message(  # type: ignore[misc]
                    ref.channel, reply.message.text, list(reply.message.blocks), thread_ts=ref.ts
                ),
                idempotent=False,
            )
            await self.ids.log_posted(
                run.id, stage.name
            )  # before the upload: the reply is what must not repeat
            if reply.upload is not None:
                await self._upload(ref, reply.filename, reply.upload)

    async def _upload(self, ref: MessageRef, filename: str, text: str) -> None:
        data = text.encode()
        try:
            url, file_id = await self.courier.deliver(
                ref.channel, lambda: self.api.upload_url(filename, len(data)), idempotent=True
            )
            await self.courier.deliver(ref.channel, lambda: self.api.upload_bytes(url, data), idempotent=True)
            await self.courier.deliver(
                ref.channel,
                lambda: self.api.complete_upload(file_id, filename, ref.channel, ref.ts),
                idempotent=False,
            )
        except GaveUp as gave_up:
            log.warning("Slack: the log file %s was not attached (%s)", filename, gave_up)
