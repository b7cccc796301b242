"""The pure decisions of a due schedule: catch-up after downtime against the starting deadline, and
the concurrency policies (gitops.schedules.policy)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gitops.schedules.policy import Action, DuePlan, concurrency_action, missed_detail, plan_due
from runner.cron import cron_rule
from runner.schedule import ConcurrencyPolicy


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (cron, since, now, deadline) -> (run, missed, first missed, last missed)
PLANS = [
    pytest.param("0 * * * *", "10:30", "10:45", None, None, 0, None, None, id="nothing due"),
    pytest.param("0 * * * *", "10:30", "11:00:00.4", None, "11:00", 0, None, None, id="on time"),
    pytest.param("0 * * * *", "10:30", "11:00:30", 60, "11:00", 0, None, None, id="late within deadline"),
    pytest.param("0 * * * *", "10:30", "11:02", 60, None, 1, "11:00", "11:00", id="late beyond deadline"),
    pytest.param(
        "0 * * * *",
        "07:30",
        "11:20",
        3600,
        "11:00",
        3,
        "08:00",
        "10:00",
        id="down for hours: the latest runs once, the others are missed",
    ),
    pytest.param(
        "0 * * * *",
        "07:30",
        "11:20",
        600,
        None,
        4,
        "08:00",
        "11:00",
        id="down for hours and the latest is beyond the deadline",
    ),
    pytest.param(
        "0 * * * *",
        "07:30",
        "11:20",
        None,
        "11:00",
        3,
        "08:00",
        "10:00",
        id="no deadline: the latest runs however late",
    ),
    pytest.param("0 * * * *", "11:00", "11:00", None, None, 0, None, None, id="a fire is considered once"),
]


@pytest.mark.parametrize(("cron", "since", "now", "deadline", "run", "missed", "first", "last"), PLANS)
def test_plan_due(
    cron: str,
    since: str,
    now: str,
    deadline: int | None,
    run: str | None,
    missed: int,
    first: str | None,
    last: str | None,
) -> None:
    day = "2026-11-29T"
    plan = plan_due(cron_rule(cron), _utc(day + since), _utc(day + now), deadline)

    def at(text: str | None) -> datetime | None:
        return None if text is None else _utc(day + text)

    assert plan == DuePlan(at(run), missed, at(first), at(last), True)


def test_a_week_of_every_minute_fires_is_counted_up_to_the_cap() -> None:
    plan = plan_due(cron_rule("* * * * *"), _utc("2026-11-01T00:00"), _utc("2026-11-08T00:00:05"), 60)
    assert plan.run == _utc("2026-11-08T00:00")
    assert (plan.missed, plan.counted_all) == (1000, False)
    assert missed_detail(plan, 60).startswith("more than 1000 fires due from 2026-11-01 00:01:00 UTC")


def test_a_yearly_fire_missed_long_ago_is_found() -> None:
    plan = plan_due(cron_rule("0 0 1 1 *"), _utc("2024-06-01T00:00"), _utc("2026-11-29T00:00"), 3600)
    assert plan == DuePlan(None, 2, _utc("2025-01-01T00:00"), _utc("2026-01-01T00:00"), True)
    assert missed_detail(plan, 3600) == (
        "2 fires due from 2025-01-01 00:00:00 UTC to 2026-01-01 00:00:00 UTC: not started within "
        "starting_deadline_seconds (3600), so not run"
    )


def test_missed_detail_of_fires_superseded_by_the_latest() -> None:
    plan = plan_due(cron_rule("0 * * * *"), _utc("2026-11-29T09:30"), _utc("2026-11-29T11:05"), None)
    assert missed_detail(plan, None) == (
        "due at 2026-11-29 10:00:00 UTC: not run, the service was not running then; the latest fire "
        "runs instead"
    )


# policy, running, queued -> action
ACTIONS = [
    (ConcurrencyPolicy.FORBID, False, False, Action.QUEUE),
    (ConcurrencyPolicy.FORBID, True, False, Action.SKIP),
    (ConcurrencyPolicy.FORBID, False, True, Action.SKIP),
    (ConcurrencyPolicy.REPLACE, False, False, Action.QUEUE),
    (ConcurrencyPolicy.REPLACE, True, False, Action.REPLACE),
    (ConcurrencyPolicy.REPLACE, True, True, Action.REPLACE),
    (ConcurrencyPolicy.REPLACE, False, True, Action.QUEUE),
    (ConcurrencyPolicy.ALLOW, False, False, Action.QUEUE),
    (ConcurrencyPolicy.ALLOW, True, True, Action.QUEUE),
]


@pytest.mark.parametrize(("policy", "running", "queued", "action"), ACTIONS)
def test_concurrency_action(policy: ConcurrencyPolicy, running: bool, queued: bool, action: Action) -> None:
    assert concurrency_action(policy, running, queued) is action
