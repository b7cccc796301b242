"""DAG strings: ``"a >> b, c >> d"`` to steps and back. Pure functions, no I/O.

Steps are separated by ``>>``, the stages of one step by ``,``; whitespace is ignored, so ``a, b`` and
``a,b`` are the same step (as in Bodywork).
"""

from __future__ import annotations

import re

from runner.model import Step

_WHITESPACE = re.compile(r"\s+")
_STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
EXAMPLE = '"prepare >> train_a, train_b >> serve"'


def parse_dag(text: str) -> tuple[tuple[Step, ...], list[str]]:
    """The steps of `text` and the problems found (each a message without a path)."""
    problems: list[str] = []
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
        problems.append(
            f"the value is wrapped in quotes ({stripped[0]}...{stripped[0]}); remove them: "
            "an ini value needs no quotes"
        )
        stripped = stripped[1:-1]
    compact = _WHITESPACE.sub("", stripped)
    if not compact:
        problems.append(f"is empty; name the stages to run, e.g. {EXAMPLE}")
        return (), problems
    steps: list[Step] = []
    seen: set[str] = set()
    for number, step_text in enumerate(compact.split(">>"), start=1):
        names = step_text.split(",")
        if any(not name for name in names):
            what = "is empty" if step_text == "" else f"({step_text!r}) has an empty stage name"
            problems.append(
                f"step {number} {what}; separate steps with '>>' and the stages of one step "
                f"with ',', e.g. {EXAMPLE}"
            )
            continue
        for name in names:
            if not _STAGE_NAME.fullmatch(name):
                problems.append(
                    f"step {number}: {name!r} is not a stage name (letters, digits, '-', '_' "
                    "and '.', not starting with '-' or '.'); separate steps with '>>' and stages "
                    f"with ',', e.g. {EXAMPLE}"
                )
            elif name in seen:
                problems.append(
                    f"step {number}: stage {name!r} appears more than once; a stage runs once "
                    "per workflow, remove the repeat"
                )
            seen.add(name)
        steps.append(tuple(names))
    return tuple(steps), problems


def format_dag(steps: tuple[Step, ...]) -> str:
    """The canonical text of `steps`: ``"a >> b, c"``."""
    return " >> ".join(", ".join(step) for step in steps)
