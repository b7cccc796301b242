"""The only module that imports slack_sdk: Web API calls, ``response_url`` posts and Socket Mode.

Every failure is sorted by whether the call can have been applied, because only a call that cannot have
been applied may be retried without risking a second message:

- :class:`RateLimited` (429): Slack refused it; retry after ``Retry-After``.
- :class:`NotSent`: the connection was never made (refused, no route, DNS); retry.
- :class:`MaybeApplied`: timeout, reset or 5xx after the request went out; retry only idempotent calls.
- :class:`Refused`: Slack answered ``ok: false`` (``channel_not_found``, ...); retrying cannot help.

slack_sdk's own retry handlers are switched off: its connection-error handler retries resets too.
"""

from __future__ import annotations

import http.client
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin.client import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from gitops.secret import Secret

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://slack.com/api/"


class SlackCallError(Exception):
    def __init__(self, method: str, detail: str) -> None:
        super().__init__(f"Slack {method}: {detail}")
        self.method = method
        self.detail = detail


class RateLimited(SlackCallError):
    def __init__(self, method: str, retry_after: float) -> None:
        super().__init__(method, f"rate limited, retry after {retry_after:g}s")
        self.retry_after = retry_after


class NotSent(SlackCallError):
    """The request never reached Slack."""


class MaybeApplied(SlackCallError):
    """The request went out and no answer came back: Slack may have applied it."""


class Refused(SlackCallError):
    """Slack answered with an error that a retry cannot fix."""


@dataclass(frozen=True)
class Posted:
    channel: str
    """The channel id (Slack answers with the id even when posted to a name)."""
    ts: str


def _retry_after(headers: Any) -> float:
    for name in ("Retry-After", "retry-after"):
        value = headers.get(name) if headers else None
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 1.0


def _classify_exception(method: str, error: BaseException) -> SlackCallError:
    if isinstance(error, SlackApiError):
        status = error.response.status_code
        if status == 429:
            return RateLimited(method, _retry_after(error.response.headers))
        if status >= 500:
            return MaybeApplied(method, f"HTTP {status}")
        code = error.response.get("error") if isinstance(error.response.data, dict) else None
        return Refused(method, str(code or f"HTTP {status}"))
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, ConnectionRefusedError | socket.gaierror):
        return NotSent(method, f"cannot connect: {type(reason).__name__}")
    if isinstance(reason, TimeoutError | ConnectionResetError | http.client.HTTPException | OSError):
        return MaybeApplied(method, f"no answer: {type(reason).__name__}")
    return MaybeApplied(method, f"unexpected failure: {type(error).__name__}")


class SlackApi:
    """Blocking Web API calls; the notifier runs them in a worker thread, never on the event loop."""

    def __init__(
        self,
        token: Secret,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        on_call: Callable[[str, bool], None] | None = None,
    ) -> None:
        """`on_call(method, ok)` is told of every call (the service's metrics)."""
        self.api_base = api_base.rstrip("/") + "/"
        self._timeout = timeout
        self._on_call = on_call
        self._client = WebClient(
            token=token.reveal(), base_url=self.api_base, timeout=int(max(1, timeout)), retry_handlers=[]
        )

    def _call(self, method: str, call: Callable[[], Any]) -> Any:
        def classified() -> Any:
            try:
                return call()
            except (SlackApiError, OSError, http.client.HTTPException) as error:
                raise _classify_exception(method, error) from None

        return self._counted(method, classified)

    def _counted(self, method: str, call: Callable[[], Any]) -> Any:
        """`call()`, told to `on_call` as ok, or failed when it raises a :class:`SlackCallError`."""
        try:
            answer = call()
        except SlackCallError:
            if self._on_call is not None:
                self._on_call(method, False)
            raise
        if self._on_call is not None:
            self._on_call(method, True)
        return answer

    def post_message(
        self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None = None
    ) -> Posted:
        kwargs: dict[str, Any] = {"channel": channel, "text": text, "blocks": blocks, "unfurl_links": False}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        response = self._call("chat.postMessage", lambda: self._client.chat_postMessage(**kwargs))
        return Posted(channel=str(response["channel"]), ts=str(response["ts"]))

    def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self._call(
            "chat.update", lambda: self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        )

    def upload_url(self, filename: str, length: int) -> tuple[str, str]:
        """Step 1 of the files upload v2 flow: (upload URL, file id). Safe to repeat."""
        response = self._call(
            "files.getUploadURLExternal",
            lambda: self._client.files_getUploadURLExternal(filename=filename, length=length),
        )
        return str(response["upload_url"]), str(response["file_id"])

    def upload_bytes(self, url: str, data: bytes) -> None:
        """Step 2: the file's bytes to the URL of step 1. Safe to repeat (same file id)."""
        self._counted("file upload", lambda: self._upload_bytes(url, data))

    def _upload_bytes(self, url: str, data: bytes) -> None:
        request = urllib.request.Request(url, data=data, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as error:
            kind = MaybeApplied if error.code >= 500 else Refused
            raise kind("file upload", f"HTTP {error.code}") from None
        except (OSError, http.client.HTTPException) as error:
            raise _classify_exception("file upload", error) from None

    def complete_upload(self, file_id: str, title: str, channel: str, thread_ts: str | None) -> None:
        """Step 3: shares the file in the channel (or thread). Not idempotent."""
        self._call(
            "files.completeUploadExternal",
            lambda: self._client.files_completeUploadExternal(
                files=[{"id": file_id, "title": title}], channel_id=channel, thread_ts=thread_ts
            ),
        )

    def respond(self, response_url: str, body: dict[str, Any]) -> None:
        """A post to a command's ``response_url`` (5 per command within 30 minutes)."""
        self._counted("response_url", lambda: self._respond(response_url, body))

    def _respond(self, response_url: str, body: dict[str, Any]) -> None:
        client = WebhookClient(response_url, timeout=int(max(1, self._timeout)), retry_handlers=[])
        try:
            answer = client.send_dict(body)
        except (OSError, http.client.HTTPException) as error:
            raise _classify_exception("response_url", error) from None
        if answer.status_code == 429:
            raise RateLimited("response_url", _retry_after(answer.headers))
        if answer.status_code >= 500:
            raise MaybeApplied("response_url", f"HTTP {answer.status_code}")
        if answer.status_code != 200:
            raise Refused("response_url", f"HTTP {answer.status_code}: {answer.body[:200]}")


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    """``slash_commands``, ``interactive`` or ``events_api``."""
    payload: dict[str, Any]


Answerer = Callable[[Envelope], "dict[str, Any] | None"]


class SocketMode:
    """A Socket Mode connection (an app-level ``xapp-`` token); each envelope is answered by `answer`.

    slack_sdk's built-in client owns the connection: it opens it through ``apps.connections.open``,
    answers pings, and reconnects with a fresh URL on ``disconnect`` or a lost connection.
    """

    def __init__(self, app_token: Secret, answer: Answerer, api_base: str = DEFAULT_API_BASE) -> None:
        self._answer = answer
        web = WebClient(base_url=api_base.rstrip("/") + "/", retry_handlers=[])
        self._client = SocketModeClient(app_token=app_token.reveal(), web_client=web, ping_interval=5)
        self._client.socket_mode_request_listeners.append(self._on_request)

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        envelope = Envelope(request.envelope_id, request.type, dict(request.payload or {}))
        try:
            payload = self._answer(envelope)
        except Exception:
            log.exception("Socket Mode envelope %s (%s) failed", envelope.id, envelope.type)
            payload = None
        client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope.id, payload=payload))

    def start(self) -> None:
        """Connects (raises :class:`SlackCallError` when ``apps.connections.open`` fails)."""
        try:
            self._client.connect()
        except (SlackApiError, OSError, http.client.HTTPException) as error:
            raise _classify_exception("apps.connections.open", error) from None

    def close(self) -> None:
        self._client.close()
