"""Wording shared by the config loaders: how a value is shown, and "did you mean" hints. Pure."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from typing import Any

# Keys that older drafts of the format used for a key that now has another name.
RENAMED_KEYS = {
    "executable_script": "executable_module_path",
    "executable_module": "executable_module_path",
    "module": "executable_module_path",
    "workflow": "DAG",
    "dag": "DAG",
    "pipeline_name": "PROJECT_NAME",
}


# The rules both layouts state in their "must be ..." problems.
CPU_RULE = "a number >= 0 (CPU cores, e.g. 0.5)"
MODULE_SUFFIXES = (".py", ".ipynb")
MODULE_RULE = "must name a .py or .ipynb file"


ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_VAR_RULE = "is not an environment variable name (letters, digits and '_', not starting with a digit)"
SECRET_NAME = re.compile(r"[a-zA-Z0-9\-.]+")
SECRET_NAME_RULE = "a secret name: letters, digits, '-' and '.'"


def secret_problem(variable: str, secret: str) -> str | None:
    """Why `variable` = `secret` is not a stage's secret (an environment variable named after a
    secret), or None: a name that cannot be an environment variable fails later otherwise."""
    if not ENV_VAR_NAME.fullmatch(variable):
        return ENV_VAR_RULE
    if not SECRET_NAME.fullmatch(secret):
        return f"must be {SECRET_NAME_RULE}, got {json.dumps(secret)}"
    return None


def integer_rule(low: int, high: int | None) -> str:
    return f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"


def show(value: Any) -> str:
    """`value` as a user wrote it, with its kind when YAML may have surprised them."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int):
        return f"{value} (a number)"
    if isinstance(value, float):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:57] + '..."'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} value"


def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _normal(key: str) -> str:
    return key.strip().strip("\"'").lower().replace("-", "_").replace(" ", "_")


def closest(key: object, known: Iterable[str]) -> str | None:
    """The known key that `key` most likely meant, or None."""
    if not isinstance(key, str):
        return None
    known = list(known)
    by_normal = {_normal(k): k for k in known}
    candidates = [key, key.rsplit(".", 1)[-1]]  # `project.usage_stats` meant `usage_stats`
    for candidate in candidates:
        normal = _normal(candidate)
        if normal in by_normal:
            return by_normal[normal]
        if normal in RENAMED_KEYS and RENAMED_KEYS[normal] in known:
            return RENAMED_KEYS[normal]
    matches = difflib.get_close_matches(_normal(key), list(by_normal), n=1, cutoff=0.75)
    return by_normal[matches[0]] if matches else None


def unknown_key_message(key: object, known: Iterable[str]) -> str:
    known = list(known)
    hint = closest(key, known)
    if hint is None:
        return "unknown key; expected one of: " + ", ".join(known)
    if isinstance(key, str) and "." in key and key.rsplit(".", 1)[-1] == hint:
        return (
            f"unknown key; did you mean {quoted(hint)}? Keys are not dotted paths: write "
            f"{hint}: inside this section"
        )
    return f"unknown key; did you mean {quoted(hint)}?"


def close_names(name: str, names: Iterable[str]) -> str:
    """' did you mean "x"?' when a name is close to `name`, else ''."""
    matches = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f"; did you mean {quoted(matches[0])}?" if matches else ""
