"""The audit log's entries: who did what, where, when, and how it went. Pure.

Every slash command and button press becomes one :class:`AuditEntry`, whatever its outcome (allowed,
denied, bad input, failed); the service stores it and writes it to its log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

OUTCOMES = ("done", "denied", "invalid", "failed")


@dataclass(frozen=True)
class AuditEntry:
    at: float
    user_id: str
    user_name: str
    channel_id: str
    team_id: str
    source: str
    """``command`` or ``button``."""
    transport: str
    """``http`` or ``socket``."""
    action: str
    """The verb (``rerun``) or the button's action id."""
    arguments: str
    repository: str
    environment: str
    outcome: str
    """One of :data:`OUTCOMES`."""
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def log_line(self) -> str:
        where = f"{self.repository}/{self.environment}".strip("/") or "-"
        return (
            f"slack {self.source} by {self.user_id} ({self.user_name}) in {self.channel_id} "
            f"via {self.transport}: "
            f"{self.action} {self.arguments} [{where}] -> {self.outcome}: {self.detail}"
        )


class AuditSink(Protocol):
    def record(self, entry: AuditEntry) -> None: ...
