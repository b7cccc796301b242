"""Reading a config mapping into typed values, with every problem named by its dotted path.

Used by :mod:`gitops.settings` for the service's sections and handed to extensions for theirs, so that
every message reads alike: ``service.port -> must be an integer, not 'x'``, with a "did you mean" for
an unknown key that is close to a known one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gitops.secret import Secret
from runner.errors import FatalError


class SettingsError(FatalError):
    """The config is invalid; `problems` lists every problem as ``dotted.path -> message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid service configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class ConfigReader:
    """Reads typed values out of a mapping, collecting every problem with its dotted path.

    Extensions get one to parse their own section, so their messages read like the service's.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path} -> {message}")

    def unknown_keys(self, data: Mapping[str, Any], known: Iterable[str], path: str) -> None:
        """One problem per key of `data` not in `known`, with the closest known key as a hint."""
        known = sorted(known)
        for key in sorted(set(data) - set(known)):
            self.problem(f"{path}.{key}", f"unknown setting{did_you_mean(key, known)}; see docs/service.md "
                         "for the accepted keys")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        """`value` if it is a mapping; None counts as empty; anything else is a problem."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(path, f"must be a mapping, not {value!r}")
            return {}
        return value

    def mappings(
        self, value: Any, path: str, items: str, known: Iterable[str]
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Each mapping in the list `value`, with its dotted path; not a list (`items` says of what),
        an item that is not a mapping and an item's unknown keys are problems."""
        if not isinstance(value, list):
            self.problem(path, f"must be a list of {items}")
            return
        for index, item in enumerate(value):
            where = f"{path}.{index}"
            if not isinstance(item, Mapping):
                self.problem(where, f"must be a mapping, not {item!r}")
                continue
            self.unknown_keys(item, known, where)
            yield where, item

    def string(self, data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str | None:
        value = data.get(key, default)
        if value is None or isinstance(value, str):
            return value
        self.problem(f"{path}.{key}", f"must be a string, not {type(value).__name__} {value!r}")
        return default

    def integer(self, data: Mapping[str, Any], key: str, path: str, default: int, minimum: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}", f"must be an integer, not {value!r}")
            return default
        if value < minimum:
            self.problem(f"{path}.{key}", f"must be at least {minimum}, not {value}")
            return default
        return value

    def number(self, data: Mapping[str, Any], key: str, path: str, default: float) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.problem(f"{path}.{key}", f"must be a non-negative number, not {value!r}")
            return default
        return float(value)

    def boolean(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", f"must be true or false, not {value!r}")
            return default
        return value

    def patterns(
        self, data: Mapping[str, Any], key: str, path: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        value = data.get(key, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem(f"{path}.{key}", f"must be a list of non-empty strings, not {value!r}")
            return default
        return tuple(value)

    def secret(self, data: Mapping[str, Any], key: str, path: str, required: bool) -> Secret | None:
        """A secret named by ``<key>_env`` (an environment variable) or ``<key>_file`` (a file)."""
        if key in data:
            self.problem(
                f"{path}.{key}",
                f"secrets are not read from the config file; set {key}_env to the name of an "
                f"environment variable or {key}_file to a mounted file",
            )
            return None
        env_name = self.string(data, f"{key}_env", path)
        file_name = self.string(data, f"{key}_file", path)
        if env_name:
            value = self.environ.get(env_name)
            if not value:
                self.problem(f"{path}.{key}_env", f"environment variable {env_name} is not set or empty")
                return None
            return Secret(value)
        if file_name:
            try:
                text = Path(file_name).read_text().strip()
            except OSError as error:
                self.problem(f"{path}.{key}_file", f"cannot read {file_name}: {error.strerror}")
                return None
            if not text:
                self.problem(f"{path}.{key}_file", f"{file_name} is empty")
                return None
            return Secret(text)
        if required:
            self.problem(f"{path}.{key}_env", f"required: name the environment variable holding the {key}")
        return None


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'"`` for the known name closest to `key`, or nothing."""
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f"; did you mean {close[0]!r}" if close else ""
