"""``bodywork validate [PATH] [--check-files]``: report every problem of a pipeline's config."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.config import ConfigError, find_config, load_pipeline
from runner.schedule import Schedule
from runner.yaml_schema import describe


def schedule_summary(schedule: Schedule, now: datetime) -> str:
    """``schedule: "0 3 * * *" in UTC, concurrency forbid; next fires: ...`` (three fire times)."""
    fires = schedule.next_fires(now, 3)
    if schedule.suspend:
        when = "suspended: no fires until suspend is false"
    elif not fires:
        when = "it never fires again"
    else:
        when = "next fires " + ", ".join(time.strftime("%a %Y-%m-%d %H:%M %Z") for time in fires)
    return f"schedule: {schedule.describe()}; {when}"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="check a bodywork.yaml (or the older bodywork.ini layout) and list every problem",
        description="Checks the pipeline config in PATH (a folder, a bodywork.yaml or a "
        "bodywork.ini) and prints every problem as `<dotted.path> -> <message>`. Exit code 0 when "
        "it is valid, 1 when it is not.",
    )
    parser.add_argument(
        "path", nargs="?", default=".", type=Path, help="folder or config file (default: .)"
    )
    parser.add_argument(
        "--check-files",
        action="store_true",
        help="also check that every stage's module exists inside the folder",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        config = find_config(args.path)
        pipeline = load_pipeline(config, check_files=args.check_files)
    except ConfigError as error:
        print(error)
        return 1
    print(f"{config.name} is valid: {describe(pipeline)}")
    if pipeline.pipeline.schedule is not None:
        print(schedule_summary(pipeline.pipeline.schedule, datetime.now(UTC)))
    for notice in pipeline.notices:
        print(f"notice: {notice}")
    return 0
