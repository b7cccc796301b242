"""Virtual environments for stages, cached by a hash of their requirements.

Bodywork installed every stage's requirements on every run. Here the environment for one set of
requirements is built once per machine and reused, so a second run of the same stage installs nothing.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from runner.backends.base import StageError
from runner.backends.processes import StageProcess, stage_environment

_COMPLETE_MARKER = "bodywork-complete.json"
# pip's own output is kept short in the stage log: the lines that say what happened.
_PIP_SUMMARY_PREFIXES = ("Successfully installed", "ERROR", "error:", "WARNING: Retrying")


def requirements_key(requirements: Sequence[str], python: str) -> str:
    """The cache key: the interpreter's version and the requirements, order and case ignored."""
    normalized = sorted({r.strip() for r in requirements if r.strip()}, key=str.lower)
    payload = json.dumps({"python": python, "requirements": normalized})
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class VenvCache:
    def __init__(self, root: Path, base_python: str = sys.executable) -> None:
        self.root = root
        self.base_python = base_python
        self._python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
        self._locks: dict[str, asyncio.Lock] = {}

    def python_for(self, requirements: Sequence[str]) -> Path:
        key = requirements_key(requirements, self._python_version)
        return self.root / key / "bin" / "python"

    async def ensure(self, requirements: Sequence[str], log: Callable[[str], None]) -> Path:
        """The interpreter of a venv holding `requirements`, built first if it is not cached."""
        key = requirements_key(requirements, self._python_version)
        folder = self.root / key
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # stages of one run that share requirements build it once
            if (folder / _COMPLETE_MARKER).exists():
                return folder / "bin" / "python"
            self.root.mkdir(parents=True, exist_ok=True)
            lock_file = (self.root / f"{key}.lock").open("w")
            try:
                # Another process (a second `bodywork run`) may be building the same venv.
                await asyncio.to_thread(fcntl.flock, lock_file, fcntl.LOCK_EX)
                if not (folder / _COMPLETE_MARKER).exists():
                    await self._build(folder, list(requirements), log)
            finally:
                lock_file.close()
        return folder / "bin" / "python"

    async def _build(self, folder: Path, requirements: list[str], log: Callable[[str], None]) -> None:
        shutil.rmtree(folder, ignore_errors=True)  # the remains of an interrupted build
        await self._run([self.base_python, "-m", "venv", "--without-pip", str(folder)], log, "venv")
        python = str(folder / "bin" / "python")
        if requirements:
            log(f"installing {len(requirements)} requirement(s) into a new cached environment")
            await self._run(
                [self.base_python, "-m", "pip", "--python", python, "install",
                 "--disable-pip-version-check", "--no-input", *requirements],
                log,
                "pip",
            )
        marker = {"requirements": requirements}
        (folder / _COMPLETE_MARKER).write_text(json.dumps(marker))

    async def _run(self, argv: list[str], log: Callable[[str], None], what: str) -> None:
        output: list[str] = []

        def keep(line: str) -> None:
            output.append(line)
            if line.startswith(_PIP_SUMMARY_PREFIXES):
                log(f"{what}: {line}")

        process = await StageProcess.start(argv, self.root, stage_environment({}), keep)
        try:
            code = await process.wait()
        finally:
            await process.stop()
        if code != 0:
            tail = " | ".join(output[-5:])
            raise StageError(
                f"installing the requirements failed ({what} exit code {code}): {tail}; "
                "check the names and versions in the stage's requirements"
            )
