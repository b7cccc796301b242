"""Webhooks: verify the sender, then parse a provider's payload into a provider-neutral event.

Pure: bytes and headers in, values out; no I/O. Each provider module exposes
``verify(headers, body, secret) -> bool`` and ``parse(headers, body) -> PushEvent | Ping | Ignored``,
raising :class:`MalformedWebhook` for a body that is not what the provider sends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops.refs import ZERO_SHA, ref_problem, sha_problem

__all__ = ["ZERO_SHA", "Ignored", "MalformedWebhook", "Ping", "PushEvent", "parse_json"]

MAX_HEADER_ID_LENGTH = 200
"""Delivery ids and idempotency keys longer than this are refused (they are UUIDs in practice)."""


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
    body_digest: str = ""
    """SHA-256 of the signed body: a captured body replayed under a new delivery id has the same."""

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


def parse_json(body: bytes) -> Any:
    """`body` as JSON, or :class:`MalformedWebhook` for anything the parser refuses: bad syntax, text
    that is not UTF-8 (RFC 8259; json.loads alone would also guess UTF-16 and UTF-32), or nesting
    deeper than the parser's stack (``[`` x 1000 is valid JSON but no webhook)."""
    try:
        return json.loads(body.decode("utf-8"))
    except RecursionError:
        raise MalformedWebhook("the body is nested too deeply to be a webhook or an API request") from None
    except ValueError as error:  # UnicodeDecodeError is a ValueError
        raise MalformedWebhook(f"the body is not valid JSON: {_printable(str(error))}") from None


def load_json(headers: Mapping[str, str], body: bytes) -> Mapping[str, Any]:
    content_type = header(headers, "content-type").split(";")[0].strip().lower()
    if content_type and content_type != "application/json":
        raise MalformedWebhook(
            f"content type {content_type!r} is not supported; configure the webhook to send "
            "application/json"
        )
    data = parse_json(body)
    if not isinstance(data, Mapping):
        raise MalformedWebhook("the body must be a JSON object")
    return data


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def header_id(headers: Mapping[str, str], name: str) -> str:
    """A delivery id or idempotency key from header `name` ('' when absent), refused when oversized."""
    value = header(headers, name)
    if len(value) > MAX_HEADER_ID_LENGTH:
        raise MalformedWebhook(f"the {name} header is longer than {MAX_HEADER_ID_LENGTH} characters")
    return value


def _printable(text: str) -> str:
    """`text` with anything that cannot be written as UTF-8 (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedWebhook(f"{dotted!r} is not valid Unicode (it holds a lone surrogate)") from None
    return value


def ref_field(data: Mapping[str, Any], dotted: str = "ref") -> str:
    """The full ref at `dotted`, refused (400) when Git itself would refuse it."""
    ref: str = field(data, dotted)
    if problem := ref_problem(ref):
        raise MalformedWebhook(f"{dotted!r} {problem}: {_printable(ref[:80])!r}")
    return ref


def sha_field(data: Mapping[str, Any], dotted: str, *, zero_allowed: bool = False) -> str:
    """The full commit id at `dotted` (40 zeros only with `zero_allowed`), else 400."""
    sha: str = field(data, dotted)
    if sha == ZERO_SHA and not zero_allowed:
        raise MalformedWebhook(f"{dotted!r} is the null commit id, which names no commit")
    if problem := sha_problem(sha):
        raise MalformedWebhook(f"{dotted!r} {problem}")
    return sha

