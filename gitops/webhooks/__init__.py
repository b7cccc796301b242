"""Webhooks: verify the sender, then parse a provider's payload into a provider-neutral event.

Pure: bytes and headers in, values out; no I/O. Each provider module exposes
``verify(headers, body, secret) -> bool`` and ``parse(headers, body) -> PushEvent | Ping | Ignored``,
raising :class:`MalformedWebhook` for a body that is not what the provider sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ZERO_SHA = "0" * 40


class MalformedWebhook(Exception):
    """The body is not valid JSON or misses a field: answered with 400 and this message."""


@dataclass(frozen=True)
class PushEvent:
    """A push of a branch or a tag, whichever provider sent it."""

    provider: str
    repository: str
    """``owner/name`` or the GitLab project path."""
    ref: str
    """The full ref, ``refs/heads/main`` or ``refs/tags/v1``."""
    before: str
    commit: str
    """The commit to run (for an annotated tag, the commit it points at); ZERO_SHA when deleted."""
    deleted: bool
    delivery_id: str
    """The provider's delivery id (GitHub X-GitHub-Delivery, GitLab X-Gitlab-Event-UUID)."""
    idempotency_key: str
    """Same across redeliveries/retries: the GitHub delivery id, GitLab's Idempotency-Key."""
    clone_url: str = ""
    pusher: str = ""

    @property
    def is_tag(self) -> bool:
        return self.ref.startswith("refs/tags/")

    @property
    def is_branch(self) -> bool:
        return self.ref.startswith("refs/heads/")

    @property
    def name(self) -> str:
        """The branch or tag name without its ``refs/...`` prefix."""
        for prefix in ("refs/heads/", "refs/tags/"):
            if self.ref.startswith(prefix):
                return self.ref[len(prefix) :]
        return self.ref


@dataclass(frozen=True)
class Ping:
    provider: str
    repository: str
    delivery_id: str


@dataclass(frozen=True)
class Ignored:
    reason: str


WebhookEvent = PushEvent | Ping | Ignored


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by case-insensitive name ('' when absent); works with plain dicts too."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), "")
    return value


def load_json(headers: Mapping[str, str], body: bytes) -> Mapping[str, Any]:
    content_type = header(headers, "content-type").split(";")[0].strip().lower()
    if content_type and content_type != "application/json":
        raise MalformedWebhook(
            f"content type {content_type!r} is not supported; configure the webhook to send "
            "application/json"
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedWebhook(f"the body is not valid JSON: {error}") from None
    if not isinstance(data, Mapping):
        raise MalformedWebhook("the body must be a JSON object")
    return data


def field(data: Mapping[str, Any], dotted: str, kind: type = str, optional: bool = False) -> Any:
    """The value at `dotted` (``repository.full_name``), checked to be of `kind`."""
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            if optional:
                return None
            raise MalformedWebhook(f"the payload has no {dotted!r}")
        value = value[part]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise MalformedWebhook(f"{dotted!r} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def is_sha(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789abcdef" for c in value)
