"""Checks the layer rules that the packages' docstrings state.

- ``runner`` imports nothing from ``gitops`` or ``chatops``; ``gitops`` imports nothing from ``chatops``.
- Each external library is imported by its adapter module(s) only, listed in ADAPTERS below; a new
  library must be added there, which makes the choice of its adapter explicit.

Exits 1 and prints every violation as ``path:line: message``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "gitops", "chatops")
FORBIDDEN = {"runner": {"gitops", "chatops"}, "gitops": {"chatops"}, "chatops": set()}

# library -> the modules allowed to import it (paths relative to the repository root)
ADAPTERS: dict[str, set[str]] = {
    "yaml": {"runner/yaml_io.py"},
    "pygit2": {"runner/git_mirror.py"},
    # urllib3 is the kubernetes client's transport; its streaming responses are handled there too.
    "kubernetes": {"runner/backends/kubernetes/api.py"},
    "urllib3": {"runner/backends/kubernetes/api.py"},
    "starlette": {"gitops/app.py"},
    "uvicorn": {"gitops/commands/serve.py"},
    "httpx": {"gitops/statuses/http.py"},
    "sqlite3": {"gitops/store.py"},
    # The notebook executor runs in the stage's own interpreter, where these are installed for it.
    "nbclient": {"runner/_stage_support/notebook.py"},
    "nbformat": {"runner/_stage_support/notebook.py"},
    "jupyter_client": {"runner/_stage_support/notebook.py"},
    "ipykernel": {"runner/_stage_support/notebook.py"},
    "slack_sdk": set(),
    "apscheduler": set(),
}
# Standard-library modules that are adapters too (they are the store's or a backend's business).
STDLIB_ADAPTERS = {"sqlite3"}


def imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def violations() -> list[str]:
    problems = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for module, line in imported_modules(ast.parse(path.read_text(), relative)):
                top = module.split(".")[0]
                if top in FORBIDDEN[package]:
                    problems.append(f"{relative}:{line}: {package} must not import {top} ({module})")
                elif top in PACKAGES or (top in sys.stdlib_module_names and top not in STDLIB_ADAPTERS):
                    continue
                elif top not in ADAPTERS:
                    problems.append(
                        f"{relative}:{line}: {top} has no adapter module; add it to ADAPTERS in "
                        "scripts/check_layers.py and import it there only"
                    )
                elif relative not in ADAPTERS[top]:
                    allowed = ", ".join(sorted(ADAPTERS[top])) or "no module yet"
                    problems.append(f"{relative}:{line}: {top} may only be imported by {allowed}")
    return problems


def main() -> int:
    problems = violations()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} layer violation(s)")
        return 1
    print("layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
