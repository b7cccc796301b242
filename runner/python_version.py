"""Which Python a pipeline's stages were written for: an extension key, or Bodywork's image.

Bodywork ran every stage in its own image, so the Python version was the image's. Old pipelines pin
packages that only have wheels for that version; running them on another Python makes the installer
build from source, which usually fails. The local backend therefore looks for the same version on this
machine. Pure: no I/O.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

# Our extension key under `pipeline:`. Only the local backend reads it: on Kubernetes the image decides.
PYTHON_VERSION_KEY = "python_version"
VERSION_PATTERN = re.compile(r"3\.[0-9]{1,2}")

# Bodywork's images, as their Dockerfile in bodywork-core builds them (`FROM python:X-slim`).
_BODYWORK_IMAGE = re.compile(r"^(?:docker\.io/)?bodyworkml/bodywork-core(?::(?P<tag>[^@]+))?(?:@.*)?$")
BODYWORK_IMAGE_PYTHON: tuple[tuple[str, str], ...] = (
    # (tag prefix, Python version): the first match wins
    ("latest", "3.9"),
    ("3.", "3.9"),
    ("2.", "3.8"),
    ("1.", "3.7"),
    ("0.", "3.7"),
)


@dataclass(frozen=True)
class PythonChoice:
    """The version a pipeline asks for, and why; `required` when the user wrote it down."""

    version: str
    reason: str
    required: bool


def runner_version() -> str:
    """The version of the interpreter running this code, as "3.MINOR"."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def image_python(image: str) -> str | None:
    """The Python version of a Bodywork image, or None for any other image (or an unknown tag)."""
    match = _BODYWORK_IMAGE.match(image.strip())
    if match is None:
        return None
    tag = match.group("tag") or "latest"
    for prefix, version in BODYWORK_IMAGE_PYTHON:
        if tag.startswith(prefix):
            return version
    return None


def choose_python(python_version: str | None, docker_image: str) -> PythonChoice | None:
    """What the pipeline asks for: its `python_version`, else its Bodywork image's Python, else None."""
    if python_version is not None:
        return PythonChoice(python_version, f"pipeline.{PYTHON_VERSION_KEY} is {python_version}", True)
    version = image_python(docker_image)
    if version is None:
        return None
    return PythonChoice(version, f"docker_image {docker_image} runs Python {version}", False)


def version_problem(value: object) -> str | None:
    """Why `value` is not a usable python_version, or None when it is one ("3.9", "3.11")."""
    if isinstance(value, float):
        return (
            f'write the version in quotes, like "3.10": unquoted, YAML reads it as the number {value}'
        )
    if not isinstance(value, str) or not VERSION_PATTERN.fullmatch(value):
        return 'expected a Python version as "3.MINOR", for example "3.9"'
    return None
