"""What a handler answers: the reply Slack shows and the outcome the audit records. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    text: str
    in_channel: bool = False

    def body(self) -> dict[str, Any]:
        return {"response_type": "in_channel" if self.in_channel else "ephemeral", "text": self.text}


@dataclass(frozen=True)
class Outcome:
    reply: Reply
    outcome: str
    """done, denied, invalid or failed (see :mod:`chatops.audit`)."""
    action: str
    repository: str = ""
    environment: str = ""
    detail: str = ""
