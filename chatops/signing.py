"""Verifies Slack's request signatures, before anything else of a request is read. Pure.

``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}">`` keyed with the signing
secret; the timestamp must be within 5 minutes of now, and a signature already seen within that window
is a replay. Compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Mapping

from gitops.secret import Secret

WINDOW_SECONDS = 300


class SignatureError(Exception):
    """The request is not from Slack (or is a replay); answered 401 without reading it."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class ReplayGuard:
    """Signatures seen within the window; a second request with the same one is refused."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self._window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, signature: str, timestamp: float, now: float) -> bool:
        with self._lock:
            for key in [k for k, at in self._seen.items() if at < now - self._window]:
                del self._seen[key]
            if signature in self._seen:
                return False
            self._seen[signature] = timestamp
            return True


def verify(headers: Mapping[str, str], body: bytes, secret: Secret, now: float, replays: ReplayGuard) -> None:
    """Raises :class:`SignatureError` naming what is wrong; `headers` have lower-case names."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not timestamp or not signature:
        raise SignatureError("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    try:
        sent_at = float(int(timestamp))
    except ValueError:
        raise SignatureError("X-Slack-Request-Timestamp is not a number") from None
    if abs(now - sent_at) > WINDOW_SECONDS:
        raise SignatureError("stale request: the timestamp is more than 5 minutes from now")
    expected = sign(secret.reveal(), timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("signature mismatch (check the signing secret)")
    if not replays.first_time(signature, sent_at, now):
        raise SignatureError("replayed request")
