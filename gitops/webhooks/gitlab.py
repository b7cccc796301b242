"""GitLab webhooks: ``X-Gitlab-Token`` verification and ``Push Hook``/``Tag Push Hook`` parsing."""

from __future__ import annotations

from collections.abc import Mapping

from gitops.secret import Secret
from gitops.webhooks import (
    ZERO_SHA,
    Ignored,
    MalformedWebhook,
    PushEvent,
    WebhookEvent,
    field,
    header,
    is_sha,
    load_json,
)

PROVIDER = "gitlab"
_PUSH_EVENTS = {"Push Hook": "push", "Tag Push Hook": "tag_push", "System Hook": None}


def verify(headers: Mapping[str, str], body: bytes, secret: Secret) -> bool:
    given = header(headers, "x-gitlab-token")
    return bool(given) and secret.matches(given)


def parse(headers: Mapping[str, str], body: bytes) -> WebhookEvent:
    event = header(headers, "x-gitlab-event")
    if not event:
        raise MalformedWebhook("the X-Gitlab-Event header is missing")
    if event not in _PUSH_EVENTS:
        return Ignored(f"event {event!r} is not handled; only Push Hook and Tag Push Hook are")
    data = load_json(headers, body)
    kind = field(data, "object_kind")
    if kind not in ("push", "tag_push"):
        return Ignored(f"object_kind {kind!r} is not handled; only push and tag_push are")
    uuid = header(headers, "x-gitlab-event-uuid")
    key = header(headers, "idempotency-key") or uuid
    if not key:
        raise MalformedWebhook("neither Idempotency-Key nor X-Gitlab-Event-UUID is present")
    ref: str = field(data, "ref")
    after: str = field(data, "after")
    deleted = after == ZERO_SHA
    commit = after
    if not deleted:
        # For a tag push `after` may be the tag object; checkout_sha is the commit.
        commit = field(data, "checkout_sha", optional=True) or after
        if not is_sha(commit):
            raise MalformedWebhook(f"'checkout_sha' must be a 40-character commit SHA, not {commit[:60]!r}")
    return PushEvent(
        provider=PROVIDER,
        repository=field(data, "project.path_with_namespace"),
        ref=ref,
        before=field(data, "before"),
        commit=ZERO_SHA if deleted else commit,
        deleted=deleted,
        delivery_id=uuid or key,
        idempotency_key=key,
        clone_url=field(data, "project.git_http_url", optional=True) or "",
        pusher=field(data, "user_username", optional=True) or "",
    )
