"""A fake Slack Web API on loopback, as strict as slack.com about what it accepts.

Point slack_sdk at it with ``WebClient(base_url=fake.api_base)``. It checks the bot token, the method,
every Block Kit limit (``slack_blocks``), the 40,000-character message text, that ``chat.update`` and
``thread_ts`` name a message it holds, the three steps of the files upload v2 flow, and that a
``response_url`` gets at most 5 posts within 30 minutes. Slack answers errors as HTTP 200 with
``{"ok": false, "error": ...}``; rate limits as 429 with ``Retry-After``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._server import Answer, FakeApiServer, RecordedRequest
from .slack_blocks import block_errors

MAX_MESSAGE_TEXT = 40_000
RESPONSE_URL_POSTS = 5
RESPONSE_URL_WINDOW = 30 * 60
WEB_METHODS = (
    "chat.postMessage",
    "chat.update",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
    "apps.connections.open",
    "auth.test",
)


@dataclass
class SlackMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)
    """Each ``chat.update`` payload, in order."""


@dataclass
class SlackFile:
    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str = ""
    channel: str | None = None
    thread_ts: str | None = None


@dataclass
class ResponseUrl:
    url: str
    posts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


def _ok(**fields: Any) -> Answer:
    return Answer(200, {"ok": True, **fields})


def _error(error: str, **fields: Any) -> Answer:
    return Answer(200, {"ok": False, "error": error, **fields})


def parse_arguments(request: RecordedRequest) -> dict[str, Any]:
    """A Web API call's arguments from the query, a form body or a JSON body (slack_sdk uses all three)."""
    arguments: dict[str, Any] = dict(parse_qsl(urlsplit(request.raw_path).query))
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = json.loads(request.body or b"{}")
        arguments.update(body if isinstance(body, dict) else {})
    elif request.body:
        arguments.update(parse_qsl(request.body.decode()))
    for key in ("blocks", "files"):
        if isinstance(arguments.get(key), str):
            try:
                arguments[key] = json.loads(arguments[key])
            except ValueError:
                arguments[key] = None
    return arguments


class FakeSlack(FakeApiServer):
    def __init__(
        self,
        token: str = "xoxb-fake-bot-token-0123456789",
        app_token: str = "xapp-fake-app-token-0123456789",
        channels: dict[str, str] | None = None,
        clock: Any = time.time,
    ) -> None:
        super().__init__()
        self.token = token
        self.app_token = app_token
        self.channels = channels or {"deploys": "C0DEPLOYS", "prod": "C0PROD"}
        """name -> id; a channel may be named either way."""
        self.clock = clock
        self.messages: list[SlackMessage] = []
        self.files: dict[str, SlackFile] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.socket_url: str | None = None
        """What ``apps.connections.open`` hands out (set by the fake Socket Mode endpoint)."""
        self.connections_opened = 0
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._state = threading.Lock()

    @property
    def api_base(self) -> str:
        return self.base_url + "/api/"

    # What tests look at.

    def top_level(self, channel: str | None = None) -> list[SlackMessage]:
        with self._state:
            return [m for m in self.messages if m.thread_ts is None and channel in (None, m.channel)]

    def replies(self, parent: SlackMessage) -> list[SlackMessage]:
        with self._state:
            return [m for m in self.messages if m.thread_ts == parent.ts and m.channel == parent.channel]

    def shared_files(self, parent: SlackMessage) -> list[SlackFile]:
        with self._state:
            return [
                f for f in self.files.values() if f.thread_ts == parent.ts and f.channel == parent.channel
            ]

    def new_response_url(self) -> str:
        url = f"{self.base_url}/commands/T0FAKE/{next(self._ids)}/hook"
        with self._state:
            self.response_urls[urlsplit(url).path] = ResponseUrl(url)
        return url

    def rate_limit_next(self, times: int = 1, retry_after: int = 1) -> None:
        self.respond_next(
            429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(retry_after)}, times=times
        )

    # Serving.

    def handle(self, request: RecordedRequest) -> Answer:
        path = urlsplit(request.raw_path).path
        if path.startswith("/upload/"):
            return self._upload(request, path.removeprefix("/upload/"))
        if path in self.response_urls:
            return self._response_url(request, path)
        method = path.removeprefix("/api/")
        if not path.startswith("/api/") or method not in WEB_METHODS:
            return self.reject(request, Answer(404, {"ok": False, "error": "unknown_method"}))
        if request.method != "POST":
            return self.reject(request, _error("method_not_allowed"))
        expected = self.app_token if method == "apps.connections.open" else self.token
        if request.headers.get("authorization") != f"Bearer {expected}":
            return self.reject(
                request, _error("invalid_auth" if "authorization" in request.headers else "not_authed")
            )
        arguments = parse_arguments(request)
        handler = getattr(self, "_" + method.replace(".", "_"))
        answer: Answer = handler(arguments)
        if not answer.body.get("ok"):
            return self.reject(request, answer)
        return answer

    def _channel_id(self, channel: Any) -> str | None:
        if not isinstance(channel, str):
            return None
        name = channel.removeprefix("#")
        if name in self.channels:
            return self.channels[name]
        return channel if channel in self.channels.values() else None

    def _message(self, channel: str, ts: Any) -> SlackMessage | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def _content_errors(self, arguments: dict[str, Any]) -> Answer | None:
        text, blocks = arguments.get("text"), arguments.get("blocks")
        if not text and not blocks:
            return _error("no_text")
        if text is not None and (not isinstance(text, str) or len(text) > MAX_MESSAGE_TEXT):
            return _error("msg_too_long")
        if blocks is not None:
            errors = block_errors(blocks)
            if errors:
                return _error("invalid_blocks", errors=errors)
        return None

    def _chat_postMessage(self, arguments: dict[str, Any]) -> Answer:
        channel = self._channel_id(arguments.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        problem = self._content_errors(arguments)
        if problem is not None:
            return problem
        thread_ts = arguments.get("thread_ts")
        with self._state:
            if thread_ts is not None and self._message(channel, thread_ts) is None:
                return _error("thread_not_found")
            ts = f"{1_800_000_000 + next(self._ts)}.000100"
            message = SlackMessage(
                channel, ts, arguments.get("text") or "", arguments.get("blocks") or [], thread_ts
            )
            self.messages.append(message)
        return _ok(channel=channel, ts=ts, message={"text": message.text, "ts": ts})

    def _chat_update(self, arguments: dict[str, Any]) -> Answer:
        channel = arguments.get("channel")
        if not isinstance(channel, str) or channel not in self.channels.values():
            return _error("channel_not_found")  # chat.update takes the channel id only
        problem = self._content_errors(arguments)
        if problem is not None:
            return problem
        with self._state:
            message = self._message(channel, arguments.get("ts"))
            if message is None:
                return _error("message_not_found")
            message.text = arguments.get("text") or message.text
            message.blocks = arguments.get("blocks") or message.blocks
            message.updates.append(arguments)
        return _ok(channel=channel, ts=message.ts, text=message.text)

    def _files_getUploadURLExternal(self, arguments: dict[str, Any]) -> Answer:
        filename, length = arguments.get("filename"), arguments.get("length")
        if not filename:
            return _error("invalid_arguments", detail="filename is required")
        try:
            size = int(length)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return _error("invalid_arguments", detail="length is required")
        file_id = f"F{next(self._ids):08d}"
        with self._state:
            self.files[file_id] = SlackFile(file_id, str(filename), size)
        return _ok(upload_url=f"{self.base_url}/upload/{file_id}", file_id=file_id)

    def _upload(self, request: RecordedRequest, file_id: str) -> Answer:
        with self._state:
            upload = self.files.get(file_id)
            if upload is None or request.method != "POST":
                return self.reject(request, Answer(404, b"not found"))
            if len(request.body) != upload.length:
                return self.reject(request, Answer(400, b"length mismatch"))
            upload.content = request.body
        return Answer(200, b"OK - " + str(len(request.body)).encode())

    def _files_completeUploadExternal(self, arguments: dict[str, Any]) -> Answer:
        files = arguments.get("files")
        if not isinstance(files, list) or not files:
            return _error("invalid_arguments", detail="files is required")
        channel = arguments.get("channel_id")
        thread_ts = arguments.get("thread_ts")
        with self._state:
            if channel is not None and channel not in self.channels.values():
                return _error("channel_not_found")
            if thread_ts is not None and (channel is None or self._message(channel, thread_ts) is None):
                return _error("invalid_thread_ts")
            for item in files:
                upload = self.files.get(item.get("id", "")) if isinstance(item, dict) else None
                if upload is None or upload.content is None or upload.channel is not None:
                    return _error("file_not_found" if upload is None else "file_upload_not_completed")
                upload.title, upload.channel, upload.thread_ts = item.get("title") or "", channel, thread_ts
        return _ok(files=[{"id": item["id"]} for item in files])

    def _apps_connections_open(self, arguments: dict[str, Any]) -> Answer:
        if self.socket_url is None:
            return _error("socket_mode_disabled")
        with self._state:
            self.connections_opened += 1
        return _ok(url=self.socket_url)

    def _auth_test(self, arguments: dict[str, Any]) -> Answer:
        return _ok(user_id="U0BOT", team_id="T0FAKE", bot_id="B0BOT")

    def _response_url(self, request: RecordedRequest, path: str) -> Answer:
        try:
            body = json.loads(request.body)
        except ValueError:
            return self.reject(request, Answer(400, b"invalid_payload"))
        now = self.clock()
        with self._state:
            target = self.response_urls[path]
            recent = [at for at, _ in target.posts if now - at < RESPONSE_URL_WINDOW]
            if len(recent) >= RESPONSE_URL_POSTS or (
                target.posts and now - target.posts[0][0] >= RESPONSE_URL_WINDOW
            ):
                return self.reject(request, Answer(404, b"used_url"))
            if not isinstance(body, dict) or (not body.get("text") and not body.get("blocks")):
                return self.reject(request, Answer(400, b"no_text"))
            errors = block_errors(body["blocks"]) if "blocks" in body else []
            if errors or len(body.get("text") or "") > MAX_MESSAGE_TEXT:
                return self.reject(request, Answer(400, b"invalid_blocks"))
            target.posts.append((now, body))
        return Answer(200, b"ok")

    def responses(self, url: str) -> list[dict[str, Any]]:
        with self._state:
            return [body for _, body in self.response_urls[urlsplit(url).path].posts]
