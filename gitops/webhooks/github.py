"""GitHub webhooks: ``X-Hub-Signature-256`` verification and ``push``/``ping`` parsing."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from gitops.secret import Secret
from gitops.webhooks import (
    ZERO_SHA,
    Ignored,
    MalformedWebhook,
    Ping,
    PushEvent,
    WebhookEvent,
    field,
    header,
    is_sha,
    load_json,
)

PROVIDER = "github"


def signature(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(headers: Mapping[str, str], body: bytes, secret: Secret) -> bool:
    given = header(headers, "x-hub-signature-256")
    if not given.startswith("sha256="):
        return False
    return hmac.compare_digest(signature(body, secret.reveal()).encode(), given.encode())


def repository_of(data: Mapping[str, object]) -> str:
    name: str = field(data, "repository.full_name")
    return name


def parse(headers: Mapping[str, str], body: bytes) -> WebhookEvent:
    event = header(headers, "x-github-event")
    delivery = header(headers, "x-github-delivery")
    if not event:
        raise MalformedWebhook("the X-GitHub-Event header is missing")
    data = load_json(headers, body)
    if event == "ping":
        repository = field(data, "repository.full_name", optional=True) or ""
        return Ping(PROVIDER, repository, delivery)
    if event != "push":
        return Ignored(f"event {event!r} is not handled; only push and ping are")
    if not delivery:
        raise MalformedWebhook("the X-GitHub-Delivery header is missing")
    ref: str = field(data, "ref")
    before: str = field(data, "before")
    after: str = field(data, "after")
    deleted = bool(field(data, "deleted", bool, optional=True)) or after == ZERO_SHA
    if not deleted and not is_sha(after):
        raise MalformedWebhook(f"'after' must be a 40-character commit SHA, not {after[:60]!r}")
    commit = after
    if ref.startswith("refs/tags/") and not deleted:
        # An annotated tag's `after` is the tag object; head_commit names the commit.
        head = field(data, "head_commit.id", optional=True)
        if head:
            commit = head
    return PushEvent(
        provider=PROVIDER,
        repository=field(data, "repository.full_name"),
        ref=ref,
        before=before,
        commit=ZERO_SHA if deleted else commit,
        deleted=deleted,
        delivery_id=delivery,
        idempotency_key=delivery,
        clone_url=field(data, "repository.clone_url", optional=True) or "",
        pusher=field(data, "pusher.name", optional=True) or "",
    )
