"""Fire times of cron expressions in a time zone, daylight-saving changes included (runner.cron)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from runner.cron import CronError, cron_rule


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _local(expression: str, zone: str, after: str, count: int) -> list[str]:
    rule = cron_rule(expression, zone)
    return [rule.local(time).isoformat() for time in rule.fire_times(_utc(after), count)]


FIRES = [
    pytest.param(
        "30 1 * * *",
        "Europe/London",
        "2026-03-27T12:00",
        # 01:30 does not exist on 29 March (clocks jump 01:00 -> 02:00): fire when they jump, once
        ["2026-03-28T01:30:00+00:00", "2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"],
        id="fixed time skipped in spring fires when the clocks jump",
    ),
    pytest.param(
        "30 1 * * *",
        "Europe/London",
        "2026-10-23T12:00",
        # 01:30 occurs twice on 25 October: fire at the first, once
        ["2026-10-24T01:30:00+01:00", "2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"],
        id="fixed time repeated in autumn fires once",
    ),
    pytest.param(
        "*/30 * * * *",
        "Europe/London",
        "2026-10-24T23:10",
        [
            "2026-10-25T00:30:00+01:00",
            "2026-10-25T01:00:00+01:00",
            "2026-10-25T01:30:00+01:00",
            "2026-10-25T01:00:00+00:00",
            "2026-10-25T01:30:00+00:00",
            "2026-10-25T02:00:00+00:00",
        ],
        id="every 30 minutes follows elapsed time through the repeated hour",
    ),
    pytest.param(
        "*/30 * * * *",
        "Europe/London",
        "2026-03-29T00:10",
        ["2026-03-29T00:30:00+00:00", "2026-03-29T02:00:00+01:00", "2026-03-29T02:30:00+01:00"],
        id="every 30 minutes has nothing in the skipped hour",
    ),
    pytest.param(
        "0 9 * * 1-5",
        "America/New_York",
        "2026-03-06T00:00",
        ["2026-03-06T09:00:00-05:00", "2026-03-09T09:00:00-04:00", "2026-03-10T09:00:00-04:00"],
        id="weekdays at 09:00 local across the US change",
    ),
    pytest.param(
        "0 0 * * 0",
        "UTC",
        "2026-11-29T12:00",
        ["2026-12-06T00:00:00+00:00", "2026-12-13T00:00:00+00:00"],
        id="day-of-week 0 is Sunday as in cron",
    ),
    pytest.param("0 0 * * 7", "UTC", "2026-11-29T12:00", ["2026-12-06T00:00:00+00:00"], id="7 is Sunday too"),
    pytest.param(
        "0 0 * * */2",
        "UTC",
        "2026-11-29T12:00",
        [
            "2026-12-01T00:00:00+00:00",
            "2026-12-03T00:00:00+00:00",
            "2026-12-05T00:00:00+00:00",
            "2026-12-06T00:00:00+00:00",
        ],
        id="a weekday step counts from Sunday",
    ),
    pytest.param(
        "0 0 13 * fri",
        "UTC",
        "2026-11-01T00:00",
        ["2026-11-06T00:00:00+00:00", "2026-11-13T00:00:00+00:00", "2026-11-20T00:00:00+00:00"],
        id="day-of-month or day-of-week when both are given",
    ),
    pytest.param(
        "@daily",
        "Asia/Kolkata",
        "2026-01-01T00:00",
        ["2026-01-02T00:00:00+05:30", "2026-01-03T00:00:00+05:30"],
        id="macros and half-hour offsets",
    ),
    pytest.param("0 0 29 2 *", "UTC", "2026-01-01T00:00", ["2028-02-29T00:00:00+00:00"], id="leap day"),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), FIRES)
def test_fire_times(expression: str, zone: str, after: str, expected: list[str]) -> None:
    assert _local(expression, zone, after, len(expected)) == expected


@pytest.mark.parametrize("start", ["2026-04-04T00:00", "2026-10-03T00:00"])
def test_fires_strictly_increase_through_a_half_hour_dst_change(start: str) -> None:
    rule = cron_rule("*/20 * * * *", "Australia/Lord_Howe")  # its clocks move by 30 minutes
    times = rule.fire_times(_utc(start), 3 * 48)
    assert all(a < b for a, b in itertools.pairwise(times))
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(times))
    # every 20 minutes of elapsed time, except once: 30 minutes where the change falls between fires
    assert gaps[-1] == 1800.0
    assert gaps[:-1] == [1200.0] * (len(gaps) - 1)


BAD = [
    ("0 3 * *", 'must have 5 fields (minute hour day-of-month month day-of-week), got 4: "0 3 * *"'),
    ("61 * * * *", 'minute field "61": the last value (61) is higher than the maximum value (59)'),
    ("0 24 * * *", 'hour field "24": the last value (24) is higher than the maximum value (23)'),
    ("0 0 * * funday", 'day-of-week field: "funday" is not a weekday (0-7 or sun..sat, 0 and 7 are Sunday)'),
    ("0 0 * * 5-1", 'day-of-week field: "5-1": the range runs backwards'),
    ("0 0 31 2 *", '"0 0 31 2 *" never fires: no date has that day of the month in those months'),
    ("x 0 * * *", 'minute field "x": not a number, a range (1-5), a list (1,15), a step (*/10) or *'),
]


@pytest.mark.parametrize(("expression", "message"), BAD)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        cron_rule(expression)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("Europe/Lodnon", 'unknown time zone "Europe/Lodnon"; did you mean "Europe/London"?'),
        ("europe/paris", 'unknown time zone "europe/paris"; did you mean "Europe/Paris"?'),
        ("../../etc/passwd", 'unknown time zone "../../etc/passwd"; use an IANA name such as'),
    ],
)
def test_unknown_time_zones(zone: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        cron_rule("0 0 * * *", zone)
    assert str(caught.value).startswith(message)
