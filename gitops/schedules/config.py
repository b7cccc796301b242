"""The schedules' part of the service config: schedules declared per repository and branch (for
pipelines whose bodywork.yaml should stay untouched), and which replica fires them.

    service:
      schedules:
        lease: auto              # auto (a Lease when running in a cluster) | true | false
        lease_name: bodywork-gitops-scheduler
        lease_namespace: ...     # default: the service's own namespace
        lease_seconds: 15        # a holder that has not renewed for this long is replaced
    repositories:
      - url: ...
        schedules:
          main: "0 3 * * *"      # branch (or fnmatch pattern): a schedule, as in bodywork.yaml
          "release/*": {cron: "0 6 * * 1", timezone: Europe/Berlin}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from gitops.config_reader import ConfigReader
from runner.schedule import Schedule, read_schedule

LEASE_MODES = ("auto", "true", "false")
_KEYS = ("lease", "lease_name", "lease_namespace", "lease_seconds")
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class ScheduleSettings:
    lease: str = "auto"
    lease_name: str = "bodywork-gitops-scheduler"
    lease_namespace: str | None = None
    lease_seconds: int = 15


def read_service_schedules(reader: ConfigReader, raw: Any, path: str) -> ScheduleSettings:
    data = reader.mapping(raw, path)
    reader.unknown_keys(data, _KEYS, path)
    defaults = ScheduleSettings()
    lease = data.get("lease", defaults.lease)
    lease = str(lease).lower() if isinstance(lease, bool) else lease
    if lease not in LEASE_MODES:
        reader.problem(f"{path}.lease", f"must be auto, true or false, not {lease!r}")
        lease = defaults.lease
    name = reader.string(data, "lease_name", path, defaults.lease_name) or defaults.lease_name
    if not _DNS_NAME.fullmatch(name):
        reader.problem(f"{path}.lease_name", f"must be a Kubernetes object name, not {name!r}")
    return ScheduleSettings(
        lease=lease,
        lease_name=name,
        lease_namespace=reader.string(data, "lease_namespace", path),
        lease_seconds=reader.integer(data, "lease_seconds", path, defaults.lease_seconds, 2),
    )


def read_repository_schedules(reader: ConfigReader, raw: Any, path: str) -> tuple[tuple[str, Schedule], ...]:
    """``branch pattern -> schedule`` pairs; each schedule is checked as in bodywork.yaml."""
    data: Mapping[str, Any] = reader.mapping(raw, path)
    pairs = []
    for branch, value in data.items():
        where = f"{path}.{branch}"

        def report(at: tuple[Any, ...], message: str, where: str = where) -> None:
            reader.problem(".".join([where, *(str(part) for part in at[1:])]), message)

        schedule = read_schedule(value, (branch,), report)
        if schedule is not None:
            pairs.append((str(branch), schedule))
    return tuple(pairs)


def check_branches(
    reader: ConfigReader,
    schedules: tuple[tuple[str, Schedule], ...],
    deploys: tuple[str, ...],
    previews: tuple[str, ...],
    path: str,
) -> None:
    """A schedule for a branch that deploys nowhere would never fire: a problem, not a silent no-op."""
    for branch, _schedule in schedules:
        if any(char in branch for char in "*?["):
            continue  # a pattern: checked when a branch it matches deploys
        if not any(fnmatchcase(branch, pattern) for pattern in (*deploys, *previews)):
            reader.problem(
                f"{path}.{branch}",
                f"branch {branch!r} matches neither deploy_branches nor preview_branches, so it has "
                "no environment to re-run; add it to one of them or remove the schedule",
            )


def configured_schedule(schedules: tuple[tuple[str, Schedule], ...], ref: str) -> Schedule | None:
    """The schedule the service config declares for the branch or tag `ref` (first match), or None."""
    name = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    return next((schedule for pattern, schedule in schedules if fnmatchcase(name, pattern)), None)
