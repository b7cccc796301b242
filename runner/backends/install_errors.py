"""Turns an installer's failed output into a message a user can act on. Pure: text in, text out.

uv prints its diagnosis as ``error:`` / ``cause:`` / ``hint:`` lines (a build's own output sits in an
indented ``[stderr]`` block between them). From those lines we name the package that failed and, when
uv had to build a package from source because no wheel matches this Python, say so: that is how a
pipeline written for an older Python usually fails on a newer one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# The most lines of installer output shown in the stage log; the whole output is kept in a file.
MAX_SHOWN_LINES = 20

_BUILD_FAILED = re.compile(r"Failed to (?:download and )?build `(?P<package>[^`]+)`")
_NOT_FOUND = re.compile(r"Because (?P<package>\S+) was not found in the package registry")
_NO_VERSION = re.compile(r"Because there is no version of (?P<package>\S+?)(?: and|,| )")
_NEEDS_OTHER_PYTHON = re.compile(
    r"Because (?P<package>\S+) requires Python (?P<wanted>[^ ,]+)"
    r"|current Python version \((?P<current>[\d.]+)\) does not satisfy Python ?(?P<wanted2>[^ ,]+)"
    r"|Because (?P<package2>\S+) has no wheels with a matching Python"
)


@dataclass(frozen=True)
class InstallFailure:
    package: str | None
    summary: str
    # True when the cause is that this Python has no wheel (or the package needs another Python).
    wrong_python: bool
    shown: tuple[str, ...]


def diagnose(output: Sequence[str], python_version: str) -> InstallFailure:
    text = "\n".join(output)
    shown = relevant_lines(output)
    if match := _BUILD_FAILED.search(text):
        package = match["package"]
        return InstallFailure(
            package,
            f"{package} has no wheel for Python {python_version} on this platform, so it was built "
            "from source, and that build failed",
            True,
            shown,
        )
    if match := _NEEDS_OTHER_PYTHON.search(text):
        package = match["package"] or match["package2"] or _first_package(text)
        wanted_version = match["wanted"] or match["wanted2"]
        wanted = f" (Python {wanted_version})" if wanted_version else ""
        return InstallFailure(
            package,
            f"{package or 'a requirement'} needs another Python{wanted} than {python_version}",
            True,
            shown,
        )
    if match := _NOT_FOUND.search(text):
        package = match["package"]
        return InstallFailure(package, f"no package named {package} was found on the index", False, shown)
    if match := _NO_VERSION.search(text):
        package = match["package"]
        return InstallFailure(package, f"no release of the index matches {package}", False, shown)
    return InstallFailure(None, "the installer failed", False, shown)


def relevant_lines(output: Sequence[str]) -> tuple[str, ...]:
    """Installer output from its first ``error:`` line, the middle of a long build log left out."""
    start = next((i for i, line in enumerate(output) if line.lstrip().startswith("error")), None)
    lines = [line for line in output[start if start is not None else -MAX_SHOWN_LINES:] if line.strip()]
    if len(lines) <= MAX_SHOWN_LINES:
        return tuple(lines)
    head, tail = lines[:6], lines[-(MAX_SHOWN_LINES - 7):]
    return (*head, f"... ({len(lines) - len(head) - len(tail)} lines left out, see the full log)", *tail)


def _first_package(text: str) -> str | None:
    match = re.search(r"Because (?P<package>[A-Za-z0-9_.\-]+(?:[=<>!~]=?[^\s,]+)?)", text)
    return match["package"] if match else None


def failure_message(failure: InstallFailure, log_file: str, python_version: str) -> str:
    """The stage's failure reason: what failed, what to do, and where the whole log is."""
    if failure.wrong_python:
        fix = (
            "set pipeline.python_version to the Python the pipeline was written for (pipelines from "
            "Bodywork's time often pin versions built for an older one; see \"Which Python\" in "
            f"docs/runner.md), or pin versions that have wheels for Python {python_version}"
        )
    elif failure.package is not None:
        fix = f"check the name and version of {failure.package} in the stage's requirements"
    else:
        fix = "check the names and versions in the stage's requirements"
    return (
        f"installing the requirements failed: {failure.summary}; {fix}; the installer's output is in the "
        f"stage log above and in full in {log_file}"
    )
