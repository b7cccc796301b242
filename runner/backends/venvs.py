"""Virtual environments for stages, built by uv and cached by a hash of their Python and requirements.

Bodywork installed every stage's requirements on every run. Here the environment for one set of
requirements and one Python version is built once per machine and reused, so a second run of the same
stage installs nothing. Like Bodywork's image (and any ordinary virtual environment), each one has pip
and setuptools, with ``pkg_resources``, which older packages import at run time.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from runner.backends import env_cache
from runner.backends.base import StageError
from runner.backends.install_errors import diagnose, failure_message
from runner.backends.processes import StageProcess
from runner.backends.uv import uv_command, uv_environment
from runner.python_version import runner_version

# Installed into every environment unless the requirements name them: what a Bodywork image had.
# setuptools 81 dropped pkg_resources, which dash 2.x and many older packages import.
SEED_REQUIREMENTS = {"pip": "pip", "setuptools": "setuptools<81"}
# Bumped when what an environment holds changes, so that older environments are not reused.
_LAYOUT = 2
# uv's lines that say what happened; the whole output goes to a file when the install fails.
_SUMMARY = re.compile(r"^\s*(Resolved|Installed) ")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirements_key(requirements: Sequence[str], python: str) -> str:
    """The cache key: the interpreter's version and the requirements, order and case ignored."""
    normalized = sorted({r.strip() for r in requirements if r.strip()}, key=str.lower)
    payload = json.dumps({"python": python, "requirements": normalized, "layout": _LAYOUT})
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def with_seeds(requirements: Sequence[str]) -> list[str]:
    named = {m.group(1).lower().replace("_", "-") for r in requirements if (m := _NAME.match(r))}
    return [*requirements, *(spec for name, spec in SEED_REQUIREMENTS.items() if name not in named)]


class VenvCache:
    """Environments under `root`; uv's own download cache and failed-install logs sit beside it."""

    def __init__(self, root: Path, limits: env_cache.Limits | None = None) -> None:
        self.root = root
        self.uv_cache = root.parent / "uv"
        self.logs = root.parent / "install-logs"
        self.limits = limits or env_cache.Limits.from_environment()
        self._locks: dict[str, asyncio.Lock] = {}
        # Keys of the environments that running processes use (the backend's services): never pruned.
        self.protected: Callable[[], Collection[str]] = frozenset

    def python_for(self, requirements: Sequence[str], version: str | None = None) -> Path:
        """Where the interpreter of the environment for `requirements` is (built or not)."""
        return self.root / requirements_key(requirements, version or runner_version()) / "bin" / "python"

    async def ensure(
        self,
        requirements: Sequence[str],
        log: Callable[[str], None],
        python: str = sys.executable,
        version: str | None = None,
    ) -> Path:
        """The interpreter of an environment holding `requirements`, built first if it is not cached.

        `python` is the base interpreter, of version `version` (default: the runner's own).
        """
        version = version or runner_version()
        key = requirements_key(requirements, version)
        folder = self.root / key
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # stages of one run that share requirements build it once
            if not (folder / env_cache.COMPLETE_MARKER).exists():
                await self._build_locked(key, folder, list(requirements), log, python, version)
        # The marker's time is the environment's last use, for pruning.
        os.utime(folder / env_cache.COMPLETE_MARKER)
        return folder / "bin" / "python"

    async def _build_locked(
        self, key: str, folder: Path, requirements: list[str], log: Callable[[str], None],
        python: str, version: str,
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f"{key}.lock").open("w") as lock_file:
            # Another process (a second `bodywork run`) may be building the same environment.
            await asyncio.to_thread(fcntl.flock, lock_file, fcntl.LOCK_EX)
            if (folder / env_cache.COMPLETE_MARKER).exists():
                return
            started = time.monotonic()
            # Building the bare environment (pip and setuptools only) is not worth a word in the log.
            quiet: Callable[[str], None] = log if requirements else (lambda line: None)
            await self._build(folder, requirements, quiet, python, version)
            quiet(f"environment built in {time.monotonic() - started:.1f}s (Python {version}, cached)")
        await asyncio.to_thread(self.prune, self.limits)

    async def _build(
        self, folder: Path, requirements: list[str], log: Callable[[str], None], python: str, version: str
    ) -> None:
        shutil.rmtree(folder, ignore_errors=True)  # the remains of an interrupted build
        if requirements:
            log(f"installing {len(requirements)} requirement(s) with uv into a new cached environment")
        await self._uv(["venv", "--quiet", "--no-project", "--python", python, str(folder)], log, version)
        spec = folder / "bodywork-requirements.txt"
        spec.write_text("\n".join(with_seeds(requirements)) + "\n")
        await self._uv(
            ["pip", "install", "--python", str(folder / "bin" / "python"), "-r", str(spec)], log, version
        )
        marker = {"requirements": requirements, "python": version, "interpreter": python}
        (folder / env_cache.COMPLETE_MARKER).write_text(json.dumps(marker))

    async def _uv(self, args: list[str], log: Callable[[str], None], version: str) -> None:
        output: list[str] = []

        def keep(line: str) -> None:
            output.append(line)
            if _SUMMARY.match(line):
                log(f"uv: {line.strip()}")

        env = {**uv_environment(), "UV_CACHE_DIR": str(self.uv_cache)}
        process = await StageProcess.start([*uv_command(), *args], self.root, env, keep)
        try:
            code = await process.wait()
        finally:
            await process.stop()
        if code != 0:
            raise StageError(self._report_failure(output, log, version))

    def _report_failure(self, output: list[str], log: Callable[[str], None], version: str) -> str:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_file = self.logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(output)}.log"
        log_file.write_text("\n".join(output) + "\n")
        failure = diagnose(output, version)
        for line in failure.shown:
            log(f"uv: {line}")
        return failure_message(failure, str(log_file), version)

    def prune(
        self, limits: env_cache.Limits, min_idle_seconds: float = env_cache.RECENT_USE_SECONDS
    ) -> list[env_cache.CachedEnvironment]:
        """Removes environments over the limits (never a protected one); returns them. When the cache
        is still over the size limit, uv's download cache is cleared too (environments keep their
        hard-linked files; later builds download again)."""
        environments = env_cache.list_environments(self.root)
        total = env_cache.disk_usage([self.root, self.uv_cache])
        shared = total - sum(e.size for e in environments)
        chosen = env_cache.select_for_removal(
            environments, limits, time.time(), shared, self.protected(), min_idle_seconds
        )
        for environment in chosen:
            env_cache.remove_environment(environment)
            (self.root / f"{environment.key}.lock").unlink(missing_ok=True)
        if total - sum(e.size for e in chosen) > limits.max_bytes:
            self.uv_cache_command("clean")
        return chosen

    def uv_cache_command(self, action: str) -> None:
        """`uv cache prune` (unused entries) or `uv cache clean` (everything) on uv's download cache."""
        if self.uv_cache.exists():
            env = {**uv_environment(), "UV_CACHE_DIR": str(self.uv_cache)}
            subprocess.run([*uv_command(), "cache", action, "--quiet"], env=env, check=False)
