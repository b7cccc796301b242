"""Checking single values of a bodywork.yaml and reporting problems with their path and line.

Every reader returns the value in its type, or ``None`` after reporting why it cannot; so one pass
finds every problem of a file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from runner.hints import CPU_RULE, integer_rule, quoted, show, unknown_key_message
from runner.yaml_io import Index, YamlDocument, YamlPath
from runner.yaml_schema.keys import EXAMPLES

MISSING: Any = object()
"""What :meth:`Checker.required` returns for a missing key (after reporting it); readers pass it on."""


def dotted(path: YamlPath) -> str:
    """`("stages", "train", "args", 1)` as ``stages.train.args[1]``; odd keys are quoted."""
    text = ""
    for part in path:
        if isinstance(part, Index):
            text += f"[{part}]"
            continue
        name = str(part) if not isinstance(part, bool) else str(part).lower()
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            name = quoted(name)
        text += f".{name}" if text else name
    return text


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


class Checker:
    """Reads values out of one document, collecting each problem as ``<dotted.path> -> <message>``."""

    def __init__(self, document: YamlDocument, source: str) -> None:
        self.doc = document
        self.source = source
        self.out = Findings()

    # ----- reporting
    def problem(self, path: YamlPath, message: str, *, at_key: bool = False) -> None:
        lines = self.doc.key_lines if at_key else self.doc.value_lines
        line = lines.get(path) or self.doc.key_lines.get(path)
        suffix = f" (line {line})" if line is not None and path else ""
        self.out.problems.append(f"{dotted(path) or self.source} -> {message}{suffix}")

    def notice(self, message: str) -> None:
        self.out.notices.append(message)

    def unknown_keys(self, mapping: dict[object, Any], path: YamlPath, known: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in known:
                self.problem((*path, key), unknown_key_message(key, known), at_key=True)

    # ----- structure
    def section(self, parent: dict[object, Any], path: YamlPath) -> dict[object, Any] | None:
        value = parent[path[-1]]
        if isinstance(value, dict):
            return value
        self.problem(path, f"must be a mapping of settings, got {show(value)}")
        return None

    def required(self, mapping: dict[object, Any], path: YamlPath) -> Any:
        key = path[-1]
        if key in mapping:
            return mapping[key]
        example = EXAMPLES.get(str(key), "...")
        self.problem(path, f"missing; add it, e.g. {key}: {example}")
        return MISSING

    # ----- typed values (None when the value is missing or wrong)
    def string(
        self, value: Any, path: YamlPath, pattern: re.Pattern[str] | None = None, rule: str = ""
    ) -> str | None:
        if value is MISSING:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"must be a non-empty string, got {show(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(path, f"must be {rule}, got {show(value)}")
            return None
        return value

    def integer(self, value: Any, path: YamlPath, low: int = 0, high: int | None = None) -> int | None:
        if value is MISSING:
            return None
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and value >= low and (high is None or value <= high):
            return int(value)
        rule = integer_rule(low, high)
        fix = "; write it without quotes" if isinstance(value, str) and value.strip().isdigit() else ""
        self.problem(path, f"must be {rule}, got {show(value)}{fix}")
        return None

    def number(self, value: Any, path: YamlPath) -> float | None:
        if value is MISSING:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and math.isfinite(value) and value >= 0:
            return float(value)
        self.problem(path, f"must be {CPU_RULE}, got {show(value)}")
        return None

    def boolean(self, value: Any, path: YamlPath) -> bool | None:
        if value is MISSING:
            return None
        if isinstance(value, bool):
            return value
        self.problem(path, f"must be true or false, got {show(value)}")
        return None

    def string_list(self, value: Any, path: YamlPath) -> tuple[str, ...] | None:
        if value is None:
            self.problem(path, "is empty; list the items under it (- item), or remove the key")
            return None
        if not isinstance(value, list):
            self.problem(path, f"must be a list of strings, got {show(value)}")
            return None
        items: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                items.append(item)
            else:
                fix = f"; quote it: {quoted(str(item).lower() if isinstance(item, bool) else str(item))}"
                scalar = isinstance(item, int | float | bool) or item is None
                self.problem(
                    (*path, Index(index)),
                    f"must be a string, got {show(item)}" + (fix if scalar and item is not None else ""),
                )
        return tuple(items) if len(items) == len(value) else None
