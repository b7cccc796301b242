"""The ``schedules`` verb through the shared dispatch: listing, history, run now (the ``rerun`` grant),
bad input with a "did you mean", Slack's text limits, and the audit of each."""

from __future__ import annotations

import pytest

from chatops.grants import Grant
from chatops.handlers import Policy
from chatops.render import MAX_SECTION_TEXT

from .memory_ops import MemoryOps, a_fire, a_schedule
from .test_handlers import OPERATOR, STRANGER, VISITOR, Harness

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000.0  # Tue 2023-11-14 22:13:20 UTC


def harness(ops: MemoryOps | None = None, policy: Policy | None = None) -> Harness:
    made = Harness(ops)
    made.dispatch.handlers.clock = lambda: NOW
    if policy is not None:
        made.dispatch.handlers.policy = policy
    return made


def test_schedules_lists_source_cron_zone_next_and_last_fire_and_suspension() -> None:
    ops = MemoryOps(
        schedules_=[
            a_schedule(),
            a_schedule(
                id="staging",
                ref="refs/heads/develop",
                source="service config",
                cron="0 3 * * *",
                timezone="Asia/Tokyo",
                concurrency_policy="allow",
                suspended=True,
                next_fire=None,
                last_fire=NOW - 86400,
                last_outcome="queued",
                last_run_id="3f2a9c1e-aaaa",
                last_run_url="http://bodywork.test/runs/3f2a9c1e-aaaa",
            ),
        ]
    )
    made = harness(ops)
    answer = made.command(VISITOR, "schedules")
    assert answer.splitlines() == [
        "• *production* (acme/pipelines `main`, from bodywork.yaml) `30 6 * * 1-5` Europe/London, forbid"
        " · next Wed 2023-11-15 01:13 GMT (in 3h00m) · not fired yet",
        "• *staging* (acme/pipelines `develop`, from service config) `0 3 * * *` Asia/Tokyo, allow"
        " · ⏸️ *suspended*: no fires"
        " · last Tue 2023-11-14 07:13 JST: ▶️ queued (run <http://bodywork.test/runs/3f2a9c1e-aaaa|`3f2a9c1e`>)",
    ]
    assert (made.last.action, made.last.outcome, made.last.arguments) == ("schedules", "done", "")
    assert "*staging*" not in made.command(VISITOR, "schedules pipelines production")
    assert made.last.environment == "production" and made.last.repository == "acme/pipelines"
    assert "No schedules" in harness(MemoryOps(schedules_=[])).command(VISITOR, "schedules")


def test_schedules_history_shows_missed_and_skipped_fires_newest_first() -> None:
    ops = MemoryOps(
        fires=[
            a_fire(
                "skipped", NOW, detail="skipped (concurrency_policy forbid): run r1 of production is running"
            ),
            a_fire(
                "queued",
                NOW - 3600,
                run_id="3f2a9c1e-bbbb",
                run_url="http://bodywork.test/runs/3f2a9c1e-bbbb",
            ),
            a_fire("missed", NOW - 7200, detail="due at 2023-11-14 20:13:20 UTC: not started within ..."),
        ]
    )
    made = harness(ops)
    lines = made.command(VISITOR, "schedules history production").splitlines()
    assert lines[0] == "*production*: the last 3 fire(s), newest first"
    assert lines[1].startswith("• Tue 2023-11-14 22:13 GMT ⏭️ *skipped*: skipped (concurrency_policy forbid)")
    assert lines[2] == (
        "• Tue 2023-11-14 21:13 GMT ▶️ *queued* (run <http://bodywork.test/runs/3f2a9c1e-bbbb|`3f2a9c1e`>): "
        "queued 0123456789, the head of refs/heads/main"
    )
    assert lines[3].startswith("• Tue 2023-11-14 20:13 GMT ⚠️ *missed*: due at")
    assert (made.last.action, made.last.arguments, made.last.outcome) == (
        "schedules history",
        "production",
        "done",
    )
    # The history of a removed schedule is kept, and shown.
    gone = harness(MemoryOps(schedules_=[], fires=[a_fire("missed", NOW)]))
    assert "*production* (removed): the last 1 fire(s)" in gone.command(
        VISITOR, "schedules history production"
    )


def test_schedules_run_fires_for_a_user_with_a_rerun_grant() -> None:
    made = harness()
    answer = made.command(OPERATOR, "schedules run production")
    assert made.ops.fired_by == [("production", "slack:ops")]
    assert answer.startswith(
        "Fired schedule *production* now (acme/pipelines): Tue 2023-11-14 23:13 GMT ▶️ *queued*"
    )
    entry = made.last
    assert (
        entry.action,
        entry.arguments,
        entry.outcome,
        entry.repository,
        entry.environment,
        entry.detail,
    ) == (
        "schedules run",
        "production",
        "done",
        "acme/pipelines",
        "production",
        "fired-1-0000",
    )


@pytest.mark.parametrize(("verbs", "allowed"), [(("rerun",), True), (("cancel", "delete"), False)])
def test_schedules_run_shares_the_rerun_grant(verbs: tuple[str, ...], allowed: bool) -> None:
    policy = Policy(grants=(Grant(users=("U0OPS",), verbs=verbs),), read_channels=("C0DEPLOYS",))
    made = harness(policy=policy)
    answer = made.command(OPERATOR, "schedules run production")
    assert bool(made.ops.fired_by) is allowed
    assert made.last.outcome == ("done" if allowed else "denied")
    if not allowed:
        assert "You may not `schedules run`" in answer and "(it needs a `rerun` grant)" in answer


def test_schedules_run_is_denied_without_a_grant_and_reads_are_closed_elsewhere() -> None:
    made = harness()
    answer = made.command(VISITOR, "schedules run production")
    assert "You may not `schedules run` in *acme/pipelines* / `production`" in answer
    assert made.ops.fired_by == [] and made.last.outcome == "denied"
    assert made.last.action == "schedules run" and made.last.repository == "acme/pipelines"
    for text in ("schedules", "schedules history production"):
        assert "not one of bodywork's configured channels" in made.command(STRANGER, text)
        assert made.last.outcome == "denied"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "schedules histroy production",
            "Unknown repository or sub-command `histroy` (did you mean `history`?)",
        ),
        ("schedules rnu production", "(did you mean `run`?)"),
        ("schedules acme/pipelinez", "Unknown repository `acme/pipelinez` (did you mean `acme/pipelines`?)"),
        (
            "schedules acme/pipelines prodution",
            "Unknown environment `prodution` (did you mean `production`?)",
        ),
        ("schedules history prodution", "No schedule `prodution` (did you mean `production`?)"),
        ("schedules run prodution", "No schedule `prodution` (did you mean `production`?)"),
        ("schedules run", "`schedules run` needs ID.\nUsage: /bodywork schedules run ID"),
        ("schedules history", "`schedules history` needs ENV.\nUsage: /bodywork schedules history ENV"),
        ("schedules run production now", "`schedules run` takes at most 1 argument(s)"),
        ("schedule", "Unknown command `schedule` (did you mean `schedules`?)"),
    ],
)
def test_bad_schedules_input_gets_the_usage_and_a_did_you_mean(text: str, expected: str) -> None:
    made = harness()
    answer = made.command(OPERATOR, text)
    assert expected in answer
    if "Unknown command" not in expected and "needs" not in expected and "at most" not in expected:
        assert "Usage: /bodywork schedules [repo] [env] | /bodywork schedules history ENV" in answer
    assert made.last.outcome == "invalid" and made.ops.fired_by == []


def test_a_thousand_schedules_fit_in_one_answer_and_say_how_many_are_left_out() -> None:
    many = [a_schedule(id=f"pipelines-feature-{n:04d}-{'x' * 40}") for n in range(1000)]
    made = harness(MemoryOps(schedules_=many))
    answer = made.command(VISITOR, "schedules")
    assert len(answer) <= MAX_SECTION_TEXT
    shown = answer.count("\n• ") + 1
    assert 5 < shown < 1000
    assert answer.splitlines()[-1] == (
        f"… and {1000 - shown} more: name a repository or environment (`/bodywork schedules REPO ENV`)"
    )
    fires = [a_fire("missed", NOW - n * 60, detail="d" * 2000) for n in range(20)]
    history = harness(MemoryOps(fires=fires)).command(VISITOR, "schedules history production")
    assert len(history) <= MAX_SECTION_TEXT and "… and" in history
