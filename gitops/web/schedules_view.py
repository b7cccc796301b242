"""An environment's schedule for its page, from the schedules of :mod:`gitops.schedules`.

``Service.schedules`` (``ScheduleService``) describes a schedule as the ``/api/schedules`` API shows
it: ``schedule.cron``, ``schedule.timezone``, ``schedule.suspend``, ``source``, ``next_fire`` and
``last_fire`` (ISO 8601), ``last_outcome``. A service not started (no ``schedules``) shows none.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from gitops.service import Service
from gitops.web.views import ScheduleView


def schedule_of(service: Service, environment: str) -> ScheduleView | None:
    """The schedule registered for `environment` (one per environment), or None."""
    if service.schedules is None:
        return None
    described = service.schedules.get(environment)  # a schedule's id is its environment's name
    return None if described is None else schedule_view(described)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def schedule_view(described: Mapping[str, Any]) -> ScheduleView:
    schedule = described.get("schedule") or {}
    return ScheduleView(
        cron=str(schedule.get("cron", "")),
        timezone=str(schedule.get("timezone") or "UTC"),
        next_fire=_epoch(described.get("next_fire")),
        suspended=bool(schedule.get("suspend", False)),
        source=str(described.get("source", "")),
        last_fire=_epoch(described.get("last_fire")),
        last_outcome=str(described.get("last_outcome") or ""),
    )
