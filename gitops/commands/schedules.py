"""``bodywork schedules list`` and ``bodywork schedules history ENV``: a running service's schedules.

Reads ``GET /api/schedules`` and ``GET /api/schedules/ENV/history`` of the service at ``--url``
(default ``$BODYWORK_URL``, else http://127.0.0.1:8000) with the standard library's HTTP client.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from runner.errors import FatalError

DEFAULT_URL = "http://127.0.0.1:8000"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "schedules",
        help="list a running service's schedules, or the history of one",
        description="Shows the schedules of the GitOps service at --url: each with its source, next "
        "and last fire and last outcome (list), or every fire of one environment's schedule: queued, "
        "skipped, missed or failed, and why (history).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("BODYWORK_URL", DEFAULT_URL),
        help=f"the service's base URL (default: $BODYWORK_URL, else {DEFAULT_URL})",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="every schedule with its next and last fire")
    history = actions.add_parser("history", parents=[common], help="the fires of one environment's schedule")
    history.add_argument("environment", metavar="ENV", help="the environment (the schedule's id)")
    history.add_argument("--limit", type=int, default=50, help="how many fires, newest first (default 50)")
    return parser


def fetch(url: str) -> Any:
    """The JSON at `url`; FatalError naming the problem (service down, unknown schedule)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", "")
        except ValueError:
            message = ""
        raise FatalError(f"{url} answered {error.code}: {message or error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FatalError(
            f"cannot reach the service at {url}: {reason}; is `bodywork serve` running there? "
            "Pass its address with --url"
        ) from None
    except ValueError:
        raise FatalError(f"{url} did not answer JSON; is --url the GitOps service?") from None


def local_time(iso: str | None, zone: str = "UTC") -> str:
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def schedules_table(data: dict[str, Any]) -> str:
    rows = [
        ["ENVIRONMENT", "SOURCE", "CRON", "TIME ZONE", "POLICY", "NEXT FIRE", "LAST FIRE", "LAST OUTCOME"]
    ]
    for item in data["schedules"]:
        schedule = item["schedule"]
        zone = schedule["timezone"]
        outcome = item["last_outcome"] or "-"
        if item["last_run_id"]:
            outcome += f" (run {item['last_run_id']})"
        next_fire = "suspended" if schedule["suspend"] else local_time(item["next_fire"], zone)
        rows.append(
            [
                item["id"],
                item["source"],
                schedule["cron"],
                zone,
                schedule["concurrency_policy"],
                next_fire,
                local_time(item["last_fire"], zone),
                outcome,
            ]
        )
    if len(rows) == 1:
        return "no schedules: declare one under pipeline.schedule in bodywork.yaml (docs/schedules.md)"
    text = table(rows)
    if not data.get("firing", True):
        text += "\n(this replica does not fire schedules: another one holds the lease)"
    return text


def history_table(data: dict[str, Any]) -> str:
    rows = [["SCHEDULED FOR", "OUTCOME", "RUN", "DETAIL"]]
    for entry in data["history"]:
        rows.append(
            [local_time(entry["scheduled_for"]), entry["outcome"], entry["run_id"] or "-", entry["detail"]]
        )
    if len(rows) == 1:
        return f"schedule {data['schedule']} has not fired yet"
    return table(rows)


def run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    if args.action == "list":
        print(schedules_table(fetch(f"{base}/api/schedules")))
        return 0
    path = f"/api/schedules/{quote(args.environment, safe='')}/history?limit={args.limit}"
    print(history_table(fetch(base + path)))
    return 0
