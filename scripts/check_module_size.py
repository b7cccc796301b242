"""Fails when a module of the product is longer than MAX_LINES: one concept per module, a few hundred
lines at most (the style guide's limit). Prints every such module as ``path: N lines``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "gitops", "chatops")
MAX_LINES = 400


def oversized(root: Path = ROOT) -> list[tuple[str, int]]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                found.append((relative, lines))
    return found


def main() -> int:
    found = oversized()
    for relative, lines in found:
        print(f"{relative}: {lines} lines, over the limit of {MAX_LINES}; split it by concept")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
