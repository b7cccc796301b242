"""Schedules and their fires as the ``schedules`` verb's answers: mrkdwn lines within Slack's limits. Pure.

Times are shown in the schedule's own time zone (the one its cron is read in), with how far off the next
fire is. An answer keeps to one section's worth of text (:data:`~chatops.render.MAX_SECTION_TEXT`,
as ``logs`` does); what does not fit is counted in a last line that says how to narrow it down.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chatops.model import FireView, ScheduleView
from chatops.render import MAX_SECTION_TEXT, duration_text, escape, ref_name, truncate

ANSWER_BUDGET = MAX_SECTION_TEXT - 200
"""Characters of lines in one answer; the rest is left for the "and N more" line."""
MAX_DETAIL = 300
"""Characters of a fire's detail (a missed fire's names how many and from when to when)."""

_OUTCOME_ICONS = {"queued": "▶️", "skipped": "⏭️", "missed": "⚠️", "failed": "❌"}


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # validated when registered; UTC rather than nothing
        return UTC


def local_time(epoch: float, timezone: str) -> str:
    """``Fri 2027-01-01 00:00 GMT``: in the schedule's time zone, as its cron reads."""
    return datetime.fromtimestamp(epoch, zone(timezone)).strftime("%a %Y-%m-%d %H:%M %Z")


def _run(run_id: str | None, url: str) -> str:
    if not run_id:
        return ""
    return f" (run <{url}|`{run_id[:8]}`>)" if url else f" (run `{run_id[:8]}`)"


def schedule_line(schedule: ScheduleView, now: float) -> str:
    """One schedule: where it is declared, its cron and zone, next and last fire, suspended or not."""
    head = (
        f"• *{escape(schedule.id)}* ({escape(schedule.repository)} `{escape(ref_name(schedule.ref))}`, "
        f"from {escape(schedule.source)}) `{escape(schedule.cron)}` {escape(schedule.timezone)}, "
        f"{escape(schedule.concurrency_policy)}"
    )
    if schedule.suspended:
        following = " · ⏸️ *suspended*: no fires"
    elif schedule.next_fire is None:
        following = " · never fires again"
    else:
        away = duration_text(max(0.0, schedule.next_fire - now)) or "now"
        following = f" · next {local_time(schedule.next_fire, schedule.timezone)} (in {away})"
    last = " · not fired yet"
    if schedule.last_fire is not None and schedule.last_outcome is not None:
        icon = _OUTCOME_ICONS.get(schedule.last_outcome, "")
        last = (
            f" · last {local_time(schedule.last_fire, schedule.timezone)}: {icon} {schedule.last_outcome}"
            f"{_run(schedule.last_run_id, schedule.last_run_url)}"
        )
    return head + following + last


def fire_line(fire: FireView, timezone: str) -> str:
    """One fire of the history: when it was due, what became of it, and why."""
    icon = _OUTCOME_ICONS.get(fire.outcome, "")
    detail = escape(truncate(fire.detail, MAX_DETAIL))
    return (
        f"• {local_time(fire.scheduled_for, timezone)} {icon} *{fire.outcome}*"
        f"{_run(fire.run_id, fire.run_url)}{f': {detail}' if detail else ''}"
    )


def fit(lines: Sequence[str], hint: str, budget: int = ANSWER_BUDGET) -> str:
    """As many of `lines` as fit in `budget` characters, then how many were left out and `hint`."""
    kept: list[str] = []
    used = 0
    for line in lines:
        line = truncate(line, budget)
        if used + len(line) + 1 > budget:
            break
        kept.append(line)
        used += len(line) + 1
    left = len(lines) - len(kept)
    if left:
        kept.append(f"… and {left} more: {hint}")
    return "\n".join(kept)
