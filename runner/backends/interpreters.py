"""Finds an installed Python of a given version on this machine; never downloads one.

Looks, in order, at ``python3.X`` on PATH, at pyenv's versions, and at what ``uv python find`` knows
(uv-managed and system interpreters). Every candidate is run once to confirm its version, because a
pyenv shim on PATH may exist for a version that is not enabled.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from runner.backends.base import StageError
from runner.backends.uv import uv_command, uv_environment
from runner.python_version import PythonChoice, runner_version

_VERSION_CHECK = "import sys; print('%d.%d' % sys.version_info[:2])"


class PythonNotFound(StageError):
    """The version a pipeline requires is not installed here; the message says how to install it."""


def install_hint(version: str) -> str:
    return (
        f"install Python {version} (e.g. `uv python install {version}`, `pyenv install {version}`, "
        f"or your system's python{version} package) so that python{version} is on PATH"
    )


def interpreter_for(choice: PythonChoice | None) -> tuple[str, str]:
    """(path, version) of the interpreter for `choice`: the runner's own when there is no choice or
    when only Bodywork's image suggested a version that is not installed (`required` is False)."""
    if choice is None or choice.version == runner_version():
        return sys.executable, runner_version()
    found = find_python(choice.version)
    if found is not None:
        return found, choice.version
    if choice.required:
        raise PythonNotFound(f"{choice.reason}, but no Python {choice.version} is installed on this "
                             f"machine; {install_hint(choice.version)}")
    return sys.executable, runner_version()


@functools.cache
def find_python(version: str) -> str | None:
    """The path of an installed python`version`, or None."""
    for candidate in _candidates(version):
        if _reports_version(candidate, version):
            return candidate
    return None


def _candidates(version: str) -> Iterator[str]:
    on_path = shutil.which(f"python{version}")
    if on_path:
        yield on_path
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = sorted(
        (pyenv_root / "versions").glob(f"{version}.*"),
        key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()],
        reverse=True,
    )
    for folder in versions:
        yield str(folder / "bin" / f"python{version}")
    found = _uv_python_find(version)
    if found:
        yield found


def _uv_python_find(version: str) -> str | None:
    env = {**uv_environment(), "UV_PYTHON_DOWNLOADS": "never"}
    try:
        result = subprocess.run(
            [*uv_command(), "python", "find", "--system", "--no-project", version],
            capture_output=True, text=True, env=env, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _reports_version(path: str, version: str) -> bool:
    try:
        result = subprocess.run(
            [path, "-c", _VERSION_CHECK], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == version
