"""The two ways Slack reaches the handlers, sharing one :class:`~chatops.dispatch.Dispatch`.

- HTTP request URLs: the raw body and headers of ``POST /slack/commands`` and
  ``POST /slack/interactions``, verified with the signing secret before anything else is read.
  Framework-free: the service's web app passes the body in and sends the :class:`HttpAnswer` back.
- Socket Mode: envelopes from the WebSocket that the app-level token opens; no public URL needed.
  The socket client's threads hand each envelope to the event loop and wait for the acknowledgement.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from chatops.dispatch import Dispatch, PayloadError, button_invocation, command_invocation
from chatops.signing import ReplayGuard, SignatureError, verify
from chatops.slack_api import DEFAULT_API_BASE, Envelope, SlackCallError, SocketMode
from gitops.secret import Secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: dict[str, Any] | None = None
    """JSON; None for an empty 200 (the acknowledgement of a button press)."""


def _ephemeral(text: str) -> HttpAnswer:
    return HttpAnswer(200, {"response_type": "ephemeral", "text": text})


class HttpTransport:
    def __init__(
        self,
        dispatch: Dispatch,
        signing_secret: Secret,
        clock: Callable[[], float] = time.time,
        replays: ReplayGuard | None = None,
    ) -> None:
        self.dispatch = dispatch
        self._secret = signing_secret
        self._clock = clock
        self._replays = replays or ReplayGuard()

    def _verified_form(self, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        verify(headers, body, self._secret, self._clock(), self._replays)
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise PayloadError("the body is not UTF-8 form data") from None

    async def commands(self, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        try:
            fields = self._verified_form(headers, body)
            invocation = command_invocation(fields, "http")
        except SignatureError as error:
            return HttpAnswer(401, {"error": f"not a request from Slack: {error}"})
        except PayloadError as error:
            return _ephemeral(f"bodywork could not read this command: {error}.")
        return HttpAnswer(200, await self.dispatch.command(invocation))

    async def interactions(self, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        try:
            fields = self._verified_form(headers, body)
            payload = json.loads(fields.get("payload", ""))
            if not isinstance(payload, dict):
                raise PayloadError("payload is not a JSON object")
            invocation = button_invocation(payload, "http")
        except SignatureError as error:
            return HttpAnswer(401, {"error": f"not a request from Slack: {error}"})
        except (PayloadError, ValueError) as error:
            return _ephemeral(f"bodywork could not read this interaction: {error}.")
        if invocation is not None:
            await self.dispatch.button(invocation)
        return HttpAnswer(200)


class SocketTransport:
    """Connects in the background (retrying while Slack is unreachable) and serves until stopped."""

    def __init__(
        self,
        dispatch: Dispatch,
        app_token: Secret,
        api_base: str = DEFAULT_API_BASE,
        retry_seconds: float = 5.0,
    ) -> None:
        self.dispatch = dispatch
        self._app_token = app_token
        self._api_base = api_base
        self._retry_seconds = retry_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket: SocketMode | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        delay = self._retry_seconds
        socket_mode = self._socket = SocketMode(self._app_token, self._answer, self._api_base)
        while True:
            try:
                await asyncio.to_thread(socket_mode.start)
            except SlackCallError as error:
                log.warning("Socket Mode: could not connect (%s); trying again in %.0fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)
                continue
            self.connected.set()
            log.info("Socket Mode: connected")
            return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._socket is not None:
            await asyncio.to_thread(self._socket.close)
        await self.dispatch.drain()

    def _answer(self, envelope: Envelope) -> dict[str, Any] | None:
        """Runs on a socket client thread; returns the acknowledgement's payload."""
        assert self._loop is not None
        try:
            if envelope.type == "slash_commands":
                fields = {k: str(v) for k, v in envelope.payload.items()}
                invocation = command_invocation(fields, "socket")
                answer = asyncio.run_coroutine_threadsafe(self.dispatch.command(invocation), self._loop)
                return answer.result(timeout=self.dispatch.ack_budget + 0.5)
            if envelope.type == "interactive":
                pressed = button_invocation(envelope.payload, "socket")
                if pressed is not None:
                    asyncio.run_coroutine_threadsafe(self.dispatch.button(pressed), self._loop).result(
                        timeout=1
                    )
        except PayloadError as error:
            return {"response_type": "ephemeral", "text": f"bodywork could not read this: {error}."}
        return None
