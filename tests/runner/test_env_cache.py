"""The environment cache stays within its size and age limits; `bodywork cache` shows and prunes it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.backends.env_cache import (
    DAY,
    GIB,
    CachedEnvironment,
    Limits,
    parse_age,
    parse_size,
    select_for_removal,
)
from runner.backends.venvs import VenvCache
from tests.runner.builders import wheel

NOW = 1_000_000_000.0


def _env(key: str, idle_days: float, size_gib: float) -> CachedEnvironment:
    return CachedEnvironment(key, Path(key), "3.11", (), int(size_gib * GIB), NOW - idle_days * DAY)


def test_old_environments_go_first_then_the_least_recently_used_while_over_the_size() -> None:
    environments = [_env("new", 0.5, 3), _env("week", 7, 3), _env("month", 31, 1), _env("busy", 40, 2)]

    chosen = select_for_removal(environments, Limits(5 * GIB, 30 * DAY), NOW, protected={"busy"})

    # month is too old; then 3+3+2 GiB is still over 5 GiB, so week (least recently used) goes too.
    assert [e.key for e in chosen] == ["month", "week"]


def test_environments_used_within_the_hour_are_kept_even_over_the_limit() -> None:
    recent = CachedEnvironment("recent", Path("r"), "3.11", (), 9 * GIB, NOW - 60)
    assert select_for_removal([recent], Limits(GIB, DAY), NOW) == []
    assert select_for_removal([recent], Limits(GIB, DAY), NOW, min_idle_seconds=0) == [recent]


def test_sizes_and_ages_are_read_as_people_write_them() -> None:
    assert parse_size("10G") == 10 * GIB
    assert parse_size("500MiB") == 500 * 1024**2
    assert parse_age("7d") == 7 * DAY
    with pytest.raises(ValueError, match="write it like 10G"):
        parse_size("ten gigs")


def _build(cache: VenvCache, folder: Path, name: str) -> Path:
    built = wheel(folder, name, "1.0", {f"{name.replace('-', '_')}/__init__.py": ""})
    return asyncio.run(cache.ensure([str(built)], lambda line: None))


def _age_by(python: Path, seconds: float) -> None:
    marker = python.parent.parent / "bodywork-complete.json"
    then = time.time() - seconds
    os.utime(marker, (then, then))


def test_building_a_new_environment_prunes_the_ones_over_the_age_limit(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path / "cache" / "venvs", Limits(100 * GIB, 2 * DAY))
    old = _build(cache, tmp_path / "wheels", "old-one")
    _age_by(old, 3 * DAY)

    new = _build(cache, tmp_path / "wheels", "new-one")

    assert not old.parent.parent.exists()
    assert new.exists()


def test_over_the_size_limit_old_environments_and_then_uvs_downloads_go(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path / "cache" / "venvs", Limits(1, 30 * DAY))
    old = _build(cache, tmp_path / "wheels", "old-one")
    _age_by(old, 2 * 3600)

    new = _build(cache, tmp_path / "wheels", "new-one")

    assert not old.parent.parent.exists()
    assert not list((tmp_path / "cache" / "uv").glob("*/*"))  # uv's download cache was cleared
    # The environment just built was used a moment ago, so it stays, with its hard-linked files.
    check = subprocess.run([str(new), "-c", "import new_one, pip"], check=False)
    assert check.returncode == 0


def test_the_cache_command_lists_and_prunes(tmp_path: Path) -> None:
    home = tmp_path / "xdg-cache"
    cache = VenvCache(home / "bodywork-gitops" / "venvs")
    kept = _build(cache, tmp_path / "wheels", "kept-one")
    unused = _build(cache, tmp_path / "wheels", "unused-one")
    _age_by(unused, 10 * DAY)
    env = dict(os.environ, XDG_CACHE_HOME=str(home))

    def bodywork(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "gitops.cli", "cache", *args], env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    listing = bodywork("list").splitlines()
    assert listing[0].split() == ["KEY", "PYTHON", "OWN", "SIZE", "LAST", "USED", "REQUIREMENTS"]
    assert [line.split()[0] for line in listing[1:3]] == [kept.parent.parent.name, unused.parent.parent.name]
    assert listing[3].startswith("2 environment(s) in ")

    pruned = bodywork("prune", "--older-than", "7d").splitlines()

    assert pruned[0].startswith(f"removed {unused.parent.parent.name} (Python 3.11, ")
    assert pruned[-1] == "1 environment(s) removed"
    assert kept.exists() and not unused.parent.parent.exists()
    assert bodywork("clear").splitlines()[-1] == "1 environment(s) removed, and uv's download cache"
    assert not kept.parent.parent.exists()
