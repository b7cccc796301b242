"""Pure values between the providers and the HTTP adapter: a request, a response, and what it means.

No I/O here. A provider module builds an :class:`ApiRequest` and classifies the :class:`ApiResponse` into
one :class:`Outcome`; the publisher acts on the outcome.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

BODY_EXCERPT_LIMIT = 300
MASK = "********"


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str
    json: Mapping[str, Any]
    headers: Mapping[str, str] = field(repr=False)  # holds the token

    @property
    def host(self) -> str:
        """The rate-limit bucket: one per scheme and host."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class ApiResponse:
    status_code: int
    headers: Mapping[str, str]
    """Lower-case names."""
    text: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json_message(self) -> str:
        """The body's ``message`` (or ``error``) as text, or the raw body when it is not JSON."""
        try:
            body = json.loads(self.text)
        except ValueError:
            return self.text
        if isinstance(body, dict):
            for name in ("message", "error"):
                if name in body:
                    value = body[name]
                    return value if isinstance(value, str) else json.dumps(value)
        return self.text


@dataclass(frozen=True)
class Delivered:
    already_applied: bool = False
    """GitLab answered that the status already has this state."""


@dataclass(frozen=True)
class Retry:
    reason: str
    delay: float | None = None
    """Seconds the provider asked us to wait; ``None`` means back off exponentially."""


@dataclass(frozen=True)
class Rejected:
    """A permanent failure: sending the same request again cannot succeed."""

    reason: str


Outcome = Delivered | Retry | Rejected


def excerpt(text: str, secrets: tuple[str, ...] = (), limit: int = BODY_EXCERPT_LIMIT) -> str:
    """``text`` with secrets masked, on one line, at most ``limit`` characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after(response: ApiResponse, now: float) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date), or ``None`` without one."""
    value = response.header("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def rate_limit_reset(response: ApiResponse, now: float) -> float | None:
    """Seconds until the rate limit resets when none is ``Remaining``, else ``None``.

    GitHub sends ``X-RateLimit-*`` with the reset as epoch seconds; GitLab sends ``RateLimit-*``.
    """
    for prefix in ("x-ratelimit-", "ratelimit-"):
        remaining = response.header(prefix + "remaining")
        reset = response.header(prefix + "reset")
        if remaining is None or reset is None:
            continue
        try:
            if int(remaining.strip()) != 0:
                continue
            return max(0.0, float(reset.strip()) - now)
        except ValueError:
            continue
    return None


def rate_limited(response: ApiResponse, now: float, body: str) -> Retry:
    """A retry after ``Retry-After``, else after the rate limit resets, else with the usual backoff."""
    delay = retry_after(response, now)
    if delay is None:
        delay = rate_limit_reset(response, now)
    return Retry(f"rate limited: HTTP {response.status_code} {body}", delay)


def exhausted_quota(response: ApiResponse) -> bool:
    return any(response.header(p + "remaining") == "0" for p in ("x-ratelimit-", "ratelimit-"))
