"""The stage environment cache on disk: what it holds, how big it is, and pruning it within limits.

Every environment folder holds a marker written last (its requirements and Python); the marker's
modification time is the environment's last use, refreshed each time a stage uses it. Pruning removes
environments unused for longer than the age limit, then the least recently used ones while the cache
(environments plus uv's download cache) is over the size limit. Environments used within the last hour
are never removed automatically: another run may be using them right now.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

COMPLETE_MARKER = "bodywork-complete.json"
GIB = 1024**3
DAY = 86_400.0
DEFAULT_MAX_BYTES = 10 * GIB
DEFAULT_MAX_AGE_SECONDS = 30 * DAY
RECENT_USE_SECONDS = 3600.0
# Settings from the environment, for the service and `bodywork run`.
MAX_SIZE_VARIABLE = "BODYWORK_CACHE_MAX_SIZE"
MAX_AGE_VARIABLE = "BODYWORK_CACHE_MAX_AGE"

_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)i?B?", re.IGNORECASE)
_AGE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[dhm])", re.IGNORECASE)


@dataclass(frozen=True)
class CachedEnvironment:
    key: str
    path: Path
    python: str
    requirements: tuple[str, ...]
    # What removing it frees: its files that have no other hard link (in uv's cache or elsewhere).
    size: int
    last_used: float


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Limits:
        source = os.environ if environ is None else environ
        limits = cls()
        if size := source.get(MAX_SIZE_VARIABLE):
            limits = cls(parse_size(size), limits.max_age_seconds)
        if age := source.get(MAX_AGE_VARIABLE):
            limits = cls(limits.max_bytes, parse_age(age))
        return limits


def parse_size(text: str) -> int:
    """'10G', '500M', '2.5GiB' or a number of bytes; ValueError with the expected form otherwise."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size; write it like 10G, 500M or 2.5GiB")
    power = " KMGT".index((match["unit"] or " ").upper())
    return int(float(match["number"]) * 1024**power)


def parse_age(text: str) -> float:
    """'30d', '12h' or '90m' in seconds; ValueError with the expected form otherwise."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an age; write it like 30d, 12h or 90m")
    return float(match["number"]) * {"d": DAY, "h": 3600.0, "m": 60.0}[match["unit"].lower()]


def format_size(size: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def disk_usage(paths: Iterable[Path], only_unshared: bool = False) -> int:
    """Bytes on disk under `paths`, each hard-linked file counted once (uv links files from its cache).

    With `only_unshared`, only files with no other link: what removing `paths` would free.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in paths:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                try:
                    info = os.lstat(os.path.join(folder, name))
                except OSError:
                    continue
                if only_unshared and info.st_nlink > 1:
                    continue
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_blocks * 512
    return total


def list_environments(root: Path) -> list[CachedEnvironment]:
    """Every complete environment under `root`, most recently used first."""
    found = []
    for marker in root.glob(f"*/{COMPLETE_MARKER}"):
        try:
            details = json.loads(marker.read_text())
            last_used = marker.stat().st_mtime
        except (OSError, ValueError):
            continue
        found.append(
            CachedEnvironment(
                key=marker.parent.name,
                path=marker.parent,
                python=str(details.get("python", "?")),
                requirements=tuple(details.get("requirements", ())),
                size=disk_usage([marker.parent], only_unshared=True),
                last_used=last_used,
            )
        )
    return sorted(found, key=lambda e: e.last_used, reverse=True)


def select_for_removal(
    environments: Iterable[CachedEnvironment],
    limits: Limits,
    now: float,
    shared_bytes: int = 0,
    protected: Collection[str] = (),
    min_idle_seconds: float = RECENT_USE_SECONDS,
) -> list[CachedEnvironment]:
    """The environments to remove: too old first, then least recently used while over the size limit.

    `shared_bytes` is what the cache holds besides the environments' own files (uv's download cache,
    and the files environments share with it).
    """
    removable = [
        e for e in environments if e.key not in protected and now - e.last_used >= min_idle_seconds
    ]
    chosen = [e for e in removable if now - e.last_used > limits.max_age_seconds]
    total = shared_bytes + sum(e.size for e in environments) - sum(e.size for e in chosen)
    for environment in sorted(removable, key=lambda e: e.last_used):
        if total <= limits.max_bytes:
            break
        if environment not in chosen:
            chosen.append(environment)
            total -= environment.size
    return chosen


def remove_environment(environment: CachedEnvironment) -> None:
    # The marker goes first, so a half-removed folder is never taken for a complete environment.
    (environment.path / COMPLETE_MARKER).unlink(missing_ok=True)
    shutil.rmtree(environment.path, ignore_errors=True)
