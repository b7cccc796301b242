"""ChatOps as an extension of the service (``gitops.extensions``), registered through the entry point
``bodywork_gitops.extensions: slack``. It owns the ``slack:`` section, mounts the HTTP request URLs when
a signing secret is configured, connects Socket Mode when an app token is, and posts one message per run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from chatops.courier import Courier, RateLimiter
from chatops.dispatch import Dispatch
from chatops.handlers import Handlers, Policy
from chatops.notifier import Notifier
from chatops.routes import slack_routes
from chatops.service_ops import ServiceOperations
from chatops.settings import SECTION, SlackSettings, parse_slack_settings
from chatops.slack_api import SlackApi
from chatops.transports import HttpTransport, SocketTransport
from chatops.views import ServiceViews, StoreAudit, StoreMessageIds
from gitops.config_reader import ConfigReader
from gitops.secret import Secret
from gitops.service import Service
from gitops.settings import Settings
from gitops.store import RunRecord
from gitops.store.changes import Change
from runner.redaction import Redactor

log = logging.getLogger(__name__)
RECENT_SECONDS = 3600
"""At start-up, runs that changed this recently and have a message are brought up to date."""


def masker(secrets: Sequence[Secret | None]) -> Callable[[str], str]:
    """Masks the service's own secrets (tokens, webhook secrets) in whatever goes to Slack, by the same
    rule as every other output (runner.redaction)."""
    redactor = Redactor()
    redactor.track([s.reveal() for s in secrets if s is not None])
    return redactor.mask


def _secrets_of(settings: Settings, slack: SlackSettings) -> list[Secret | None]:
    secrets: list[Secret | None] = [
        slack.bot_token,
        slack.signing_secret,
        slack.app_token,
        settings.api_token,
    ]
    for repository in settings.repositories:
        secrets += [repository.webhook_secret, repository.api_token]
    return secrets


class SlackExtension:
    section = SECTION

    def __init__(self) -> None:
        self.notifier: Notifier | None = None
        self._unwatch: Callable[[], None] | None = None
        self.courier: Courier | None = None
        self.dispatch: Dispatch | None = None
        self.http: HttpTransport | None = None
        self.socket: SocketTransport | None = None

    def parse_settings(self, raw: Any, reader: ConfigReader) -> object:
        return parse_slack_settings(raw, reader)

    def routes(self, settings: Settings) -> Sequence[object]:
        slack = settings.extensions.get(SECTION)
        if not isinstance(slack, SlackSettings) or slack.signing_secret is None:
            return []
        return slack_routes(lambda: self.http)

    def observe(self, run: RunRecord) -> None:
        if self.notifier is not None:
            self.notifier.changed(run.id, run.state.value, run.created_at)

    async def start(self, service: Service) -> None:
        slack = service.settings.extensions[SECTION]
        assert isinstance(slack, SlackSettings)
        store = service.require_store()
        mask = masker(_secrets_of(service.settings, slack))
        api = SlackApi(slack.bot_token, slack.api_base, on_call=service.metrics.slack_call)
        courier = self.courier = Courier(RateLimiter())
        views = ServiceViews(service, mask)
        ids = StoreMessageIds(store)
        self.notifier = Notifier(api, courier, views, ids, slack.channel_for, mask)
        self.notifier.start()
        self._unwatch = store.changes.watch(self.notifier.progressed, Change.STAGES)
        for run in store.list_runs(limit=500):
            has_message = ids.get(run.id) is not None
            if has_message and not run.state.is_final:
                self.notifier.remember(run.id)
            recent = (run.finished_at or run.created_at) > time.time() - RECENT_SECONDS
            if not run.state.is_final or (recent and has_message):
                self.notifier.changed(run.id)

        async def respond(url: str, body: dict[str, Any]) -> None:
            await courier.deliver(url, lambda: api.respond(url, body), idempotent=False)

        handlers = Handlers(
            ServiceOperations(service, views), Policy(slack.grants, slack.read_channels), slack.command
        )
        self.dispatch = Dispatch(handlers, StoreAudit(store), respond)
        if slack.signing_secret is not None:
            self.http = HttpTransport(self.dispatch, slack.signing_secret)
        if slack.app_token is not None:
            self.socket = SocketTransport(self.dispatch, slack.app_token, slack.api_base)
            await self.socket.start()

    async def stop(self) -> None:
        if self.socket is not None:
            await self.socket.stop()
        if self.dispatch is not None:
            await self.dispatch.drain()
        if self._unwatch is not None:
            self._unwatch()
        if self.notifier is not None:
            await self.notifier.stop()
        if self.courier is not None:
            self.courier.close()
        self.http = None
