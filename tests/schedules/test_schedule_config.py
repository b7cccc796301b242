# ruff: noqa: E501  -- each expected message stays on one line, as the user sees it
"""``pipeline.schedule`` in bodywork.yaml: what loads, every problem at once with its dotted path, the
round trip through `bodywork migrate`'s writer, and what `bodywork validate` shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitops.cli import main
from runner.commands.validate import schedule_summary
from runner.config import ConfigError, parse_pipeline_yaml
from runner.migration import to_yaml
from runner.schedule import ConcurrencyPolicy, Schedule
from tests.config.helpers import replace

DAG_LINE = "  DAG: prepare >> train, score\n"


def with_schedule(block: str) -> str:
    return replace(DAG_LINE, DAG_LINE + block)


LOADS = [
    pytest.param('  schedule: "0 3 * * *"\n', Schedule(cron="0 3 * * *"), id="cron string"),
    pytest.param(
        "  schedule:\n    cron: 0 3 * * 1-5\n    timezone: Europe/London\n    concurrency_policy: replace\n"
        "    starting_deadline_seconds: 600\n    suspend: true\n",
        Schedule("0 3 * * 1-5", "Europe/London", ConcurrencyPolicy.REPLACE, 600, True),
        id="every field",
    ),
    pytest.param("  schedule: {cron: '@hourly'}\n", Schedule(cron="@hourly"), id="mapping with defaults"),
]


@pytest.mark.parametrize(("block", "expected"), LOADS)
def test_schedules_load(block: str, expected: Schedule) -> None:
    pipeline = parse_pipeline_yaml(with_schedule(block))
    assert pipeline.pipeline.schedule == expected
    assert parse_pipeline_yaml(to_yaml(pipeline)) == pipeline


def test_a_pipeline_without_schedule_has_none() -> None:
    assert parse_pipeline_yaml(replace(DAG_LINE, DAG_LINE)).pipeline.schedule is None


BROKEN = [
    pytest.param(
        "  schedule:\n    cron: '0 3 * *'\n    timezone: Europe/Lodnon\n    concurrency_policy: Forbid\n"
        "    starting_deadline_seconds: -1\n    suspnd: true\n",
        [
            'pipeline.schedule.suspnd -> unknown key; did you mean "suspend"? (line 11)',
            'pipeline.schedule.cron -> is not a valid cron expression: must have 5 fields (minute hour day-of-month month day-of-week), got 4: "0 3 * *"; e.g. "0 3 * * *" for 03:00 every day (line 7)',
            'pipeline.schedule.timezone -> unknown time zone "Europe/Lodnon"; did you mean "Europe/London"? (line 8)',
            'pipeline.schedule.concurrency_policy -> must be one of forbid, replace, allow, got "Forbid"; write forbid (line 9)',
            "pipeline.schedule.starting_deadline_seconds -> must be an integer >= 1 (seconds), got -1 (a number) (line 10)",
        ],
        id="every problem at once",
    ),
    pytest.param(
        "  schedule: 3\n",
        [
            'pipeline.schedule -> must be a cron expression such as "0 3 * * *", or a mapping with cron, timezone, concurrency_policy, starting_deadline_seconds and suspend, got 3 (a number) (line 6)'
        ],
        id="not a string",
    ),
    pytest.param(
        "  schedule: '99 * * * *'\n",
        [
            'pipeline.schedule -> is not a valid cron expression: minute field "99": the last value (99) is higher than the maximum value (59) (line 6)'
        ],
        id="bad minute",
    ),
    pytest.param(
        "  schedule:\n    timezone: UTC\n    suspend: 'no'\n",
        [
            'pipeline.schedule.cron -> missing; add it, e.g. cron: "0 3 * * *"',
            'pipeline.schedule.suspend -> must be true or false, got "no" (line 8)',
        ],
        id="missing cron",
    ),
]


@pytest.mark.parametrize(("block", "problems"), BROKEN)
def test_schedule_problems(block: str, problems: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_pipeline_yaml(with_schedule(block))
    assert caught.value.problems == problems


def test_schedule_problems_come_with_the_other_problems_of_the_file() -> None:
    text = with_schedule("  schedule: '0 3 * * 8'\n").replace("retries: 2", "retries: three")
    with pytest.raises(ConfigError) as caught:
        parse_pipeline_yaml(text)
    assert [problem.split(" -> ")[0] for problem in caught.value.problems] == [
        "pipeline.schedule",
        "stages.prepare.batch.retries",
    ]


def test_summary_lists_the_next_three_fires_in_the_schedule_time_zone() -> None:
    schedule = Schedule(cron="30 1 * * *", timezone="Europe/London", starting_deadline_seconds=600)
    assert schedule_summary(schedule, datetime(2026, 3, 27, 12, tzinfo=UTC)) == (
        'schedule: "30 1 * * *" in Europe/London, concurrency forbid, starting deadline 600 s; next '
        "fires Sat 2026-03-28 01:30 GMT, Sun 2026-03-29 02:00 BST, Mon 2026-03-30 01:30 BST"
    )


def test_summary_of_a_suspended_schedule() -> None:
    schedule = Schedule(cron="@daily", suspend=True)
    assert schedule_summary(schedule, datetime(2026, 3, 27, 12, tzinfo=UTC)) == (
        'schedule: "@daily" in UTC, concurrency forbid, suspended; suspended: no fires until suspend is false'
    )


def test_validate_prints_the_next_fires(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bodywork.yaml").write_text(
        with_schedule("  schedule: {cron: '15 4 * * *', timezone: Asia/Tokyo}\n")
    )
    assert main(["validate", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "bodywork.yaml is valid: pipeline demo, 3 stages, DAG prepare >> train, score"
    fire = r"\w{3} \d{4}-\d\d-\d\d 04:15 JST"
    assert re.fullmatch(
        rf'schedule: "15 4 \* \* \*" in Asia/Tokyo, concurrency forbid; next fires {fire}, {fire}, {fire}',
        lines[1],
    )


def test_validate_reports_a_bad_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bodywork.yaml").write_text(
        with_schedule("  schedule: {cron: '0 3 * * *', timezone: Mars/Olympus}\n")
    )
    assert main(["validate", str(tmp_path)]) == 1
    assert capsys.readouterr().out == (
        "bodywork.yaml has 1 problem:\n"
        '  pipeline.schedule.timezone -> unknown time zone "Mars/Olympus"; use an IANA name such as Europe/London or UTC (line 6)\n'
    )
