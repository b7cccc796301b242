"""Notebook stages: run by the executor in runner/_stage_support/notebook.py in the stage's interpreter.

The executor needs nbclient and ipykernel, so a notebook stage's environment holds them besides the
stage's own requirements: the cache key includes them, and a warm start costs nothing extra.
"""

from __future__ import annotations

from pathlib import Path

from runner.model import Stage

EXECUTOR = Path(__file__).resolve().parent.parent / "_stage_support" / "notebook.py"
# Kept equal to REQUIREMENTS in the executor, which must stay importable without this package.
NOTEBOOK_REQUIREMENTS = ("nbclient>=0.10", "ipykernel>=6.0")


def environment_requirements(stage: Stage) -> tuple[str, ...]:
    """What the stage's environment holds: its requirements, and the kernel's for a notebook."""
    if stage.is_notebook:
        return (*stage.requirements, *NOTEBOOK_REQUIREMENTS)
    return stage.requirements


def command(python: Path, stage: Stage) -> list[str]:
    module = Path(stage.executable_module_path).name
    if stage.is_notebook:
        return [str(python), str(EXECUTOR), module, *stage.args]
    return [str(python), module, *stage.args]
