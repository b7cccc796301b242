"""The Kubernetes backend's own errors, wrapping the HTTP client's: no ``kubernetes`` import here.

Permanent and temporary failures are different types; a temporary one carries the delay before a retry.
Every error is a :class:`~runner.backends.base.StageError`, so an unexpected one still fails the stage
with its message instead of crashing the engine.
"""

from __future__ import annotations

from runner.backends.base import StageError

_MAX_PAYLOAD = 300


class KubeError(StageError):
    """A request to the Kubernetes API failed. Keeps the HTTP status and a truncated payload."""

    def __init__(self, message: str, *, status: int = 0, payload: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload[:_MAX_PAYLOAD]


class PermanentError(KubeError):
    """Retrying the same request cannot succeed (invalid object, forbidden, not found...)."""


class TemporaryError(KubeError):
    """The request may succeed later (server busy, timeout); `delay` is the suggested wait in seconds."""

    def __init__(self, message: str, *, status: int = 0, payload: str = "", delay: float = 1.0) -> None:
        super().__init__(message, status=status, payload=payload)
        self.delay = delay


class NotFound(PermanentError):
    """404: the object (or its namespace) does not exist."""


class Conflict(PermanentError):
    """409: the object already exists, or was changed since it was read."""


class Forbidden(PermanentError):
    """403: RBAC does not allow this verb on this resource for the credentials in use."""


class Invalid(PermanentError):
    """422 or 400: the API server rejected the object."""


class Gone(TemporaryError):
    """410: a watch's resourceVersion is too old; list again and watch from the new version."""


class Unreachable(TemporaryError):
    """The API server did not answer (connection refused, DNS, TLS, timeout) even after retries."""
