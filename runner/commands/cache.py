"""``bodywork cache [list|prune|clear]``: the local backend's stage environments and uv's downloads."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from runner.backends import env_cache
from runner.backends.local import default_cache_dir
from runner.backends.venvs import VenvCache
from runner.commands.cluster import print_table
from runner.errors import FatalError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cache",
        help="show or prune the cached stage environments of local runs",
        description="Shows the stage environments that local runs keep (one per Python version and set "
        "of requirements), or prunes them. Environments are also pruned after each new one is built, "
        f"within ${env_cache.MAX_SIZE_VARIABLE} (default 10G) and ${env_cache.MAX_AGE_VARIABLE} "
        "(default 30d).",
    )
    parser.add_argument("--cache-dir", type=Path, help="default: $XDG_CACHE_HOME/bodywork-gitops")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="list the environments, most recently used first (the default)")
    prune = actions.add_parser("prune", help="remove environments over the size or age limit")
    prune.add_argument("--max-size", help="e.g. 5G, 500M (default: the automatic limit)")
    prune.add_argument("--older-than", help="remove environments unused this long: 7d, 12h, 90m")
    actions.add_parser("clear", help="remove every environment and uv's download cache")
    return parser


def run(args: argparse.Namespace) -> int:
    cache = VenvCache((args.cache_dir or default_cache_dir()) / "venvs")
    if args.action == "prune":
        return _prune(cache, args)
    if args.action == "clear":
        return _clear(cache)
    return _list(cache)


def _list(cache: VenvCache) -> int:
    environments = env_cache.list_environments(cache.root)
    now = time.time()
    rows = [
        [e.key, e.python, env_cache.format_size(e.size), _age(now - e.last_used), _short(e.requirements)]
        for e in environments
    ]
    if rows:
        print_table(rows, ["KEY", "PYTHON", "OWN SIZE", "LAST USED", "REQUIREMENTS"])
    total = env_cache.disk_usage([cache.root, cache.uv_cache])
    limits = cache.limits
    print(
        f"{len(rows)} environment(s) in {cache.root}; {env_cache.format_size(total)} on disk with uv's "
        f"download cache (OWN SIZE is what removing one frees: files shared with that cache count once, "
        f"here); limits {env_cache.format_size(limits.max_bytes)}, {_age(limits.max_age_seconds)} unused"
    )
    return 0


def _prune(cache: VenvCache, args: argparse.Namespace) -> int:
    limits = cache.limits
    try:
        if args.max_size:
            limits = env_cache.Limits(env_cache.parse_size(args.max_size), limits.max_age_seconds)
        if args.older_than:
            limits = env_cache.Limits(limits.max_bytes, env_cache.parse_age(args.older_than))
    except ValueError as error:
        raise FatalError(str(error)) from None
    # Asked for by the user, so recently used environments may go too.
    removed = cache.prune(limits, min_idle_seconds=0.0)
    for environment in removed:
        print(f"removed {environment.key} (Python {environment.python}, {_short(environment.requirements)})")
    cache.uv_cache_command("prune")
    print(f"{len(removed)} environment(s) removed")
    return 0


def _clear(cache: VenvCache) -> int:
    removed = cache.prune(env_cache.Limits(0, 0.0), min_idle_seconds=0.0)
    cache.uv_cache_command("clean")
    print(f"{len(removed)} environment(s) removed, and uv's download cache")
    return 0


def _short(requirements: tuple[str, ...]) -> str:
    text = ", ".join(requirements) or "(none)"
    return text if len(text) <= 60 else f"{text[:57]}..."


def _age(seconds: float) -> str:
    for unit, size in (("d", env_cache.DAY), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return "now"
