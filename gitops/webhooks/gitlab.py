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
    digest,
    field,
    header,
    header_id,
    load_json,
    ref_field,
    sha_field,
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
    uuid = header_id(headers, "x-gitlab-event-uuid")
    key = header_id(headers, "idempotency-key") or uuid
    if not key:
        raise MalformedWebhook("neither Idempotency-Key nor X-Gitlab-Event-UUID is present")
    ref = ref_field(data)
    before = sha_field(data, "before", zero_allowed=True)
    after = sha_field(data, "after", zero_allowed=True)
    deleted = after == ZERO_SHA
    commit = after
    if not deleted and field(data, "checkout_sha", optional=True) is not None:
        # For a tag push `after` may be the tag object; checkout_sha is the commit.
        commit = sha_field(data, "checkout_sha")
    return PushEvent(
        provider=PROVIDER,
        repository=field(data, "project.path_with_namespace"),
        ref=ref,
        before=before,
        commit=ZERO_SHA if deleted else commit,
        deleted=deleted,
        delivery_id=uuid or key,
        idempotency_key=key,
        clone_url=field(data, "project.git_http_url", optional=True) or "",
        body_digest=digest(body),
        pusher=field(data, "user_username", optional=True) or "",
    )
