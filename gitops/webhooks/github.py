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
    digest,
    field,
    header,
    header_id,
    load_json,
    ref_field,
    sha_field,
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
    delivery = header_id(headers, "x-github-delivery")
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
    ref = ref_field(data)
    before = sha_field(data, "before", zero_allowed=True)
    after = sha_field(data, "after", zero_allowed=True)
    deleted = bool(field(data, "deleted", bool, optional=True)) or after == ZERO_SHA
    return PushEvent(
        provider=PROVIDER,
        repository=field(data, "repository.full_name"),
        ref=ref,
        before=before,
        commit=ZERO_SHA if deleted else _commit(data, ref, after),
        deleted=deleted,
        delivery_id=delivery,
        idempotency_key=delivery,
        clone_url=field(data, "repository.clone_url", optional=True) or "",
        body_digest=digest(body),
        pusher=field(data, "pusher.name", optional=True) or "",
    )


def _commit(data: Mapping[str, object], ref: str, after: str) -> str:
    """The commit to run: an annotated tag's `after` is the tag object; head_commit names the commit."""
    if ref.startswith("refs/tags/") and field(data, "head_commit.id", optional=True) is not None:
        return sha_field(data, "head_commit.id")
    return after
