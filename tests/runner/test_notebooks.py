"""Notebook stages run in a real IPython kernel, as in Jupyter: display(), magics and ! lines work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.backends.notebooks import EXECUTOR
from runner.events import RunState
from tests.runner.builders import batch, pipeline, write
from tests.runner.conftest import Harness


def _notebook(*cells: tuple[str, str]) -> str:
    return json.dumps({
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": source,
             **({"outputs": [], "execution_count": None} if kind == "code" else {})}
            for kind, source in cells
        ],
        "metadata": {
            "kernelspec": {"name": "someones-own-kernel", "display_name": "x", "language": "python"}
        },
        "nbformat": 4, "nbformat_minor": 5,
    })


def _stage_lines(harness: Harness, stage: str) -> list[str]:
    installer = ("uv:", "installing", "environment built")
    return [line for line in harness.recorder.logs(stage) if not line.startswith(installer)]


def test_a_notebook_uses_what_jupyter_gives_every_notebook(harness: Harness, tmp_path: Path) -> None:
    source = write(tmp_path / "repo", {"nb/train.ipynb": _notebook(
        ("markdown", "# Training"),
        ("code", "import sys\nprint('args', sys.argv[1:])\ndisplay({'rows': 3})"),
        ("code", "%time total = 40 + 2\n!echo from the shell\ntotal"),
    )})
    p = pipeline("train", batch("train", "nb/train.ipynb", args=("--rows", "3"), limit=120))

    outcome = harness.run(p, source)

    assert outcome.state is RunState.SUCCEEDED, (outcome.reason, harness.recorder.logs("train"))
    lines = _stage_lines(harness, "train")
    assert lines[:2] == ["args ['--rows', '3']", "{'rows': 3}"]
    assert lines[2].startswith("CPU times:") and lines[3].startswith("Wall time:")
    assert lines[4:] == ["from the shell", "42"]


def test_a_failing_cell_is_reported_with_its_index_and_traceback(harness: Harness, tmp_path: Path) -> None:
    source = write(tmp_path / "repo", {"nb/train.ipynb": _notebook(
        ("code", "x = 1"),
        ("markdown", "then"),
        ("code", "def load():\n    return {}['model']\nload()"),
        ("code", "print('never')"),
    )})

    outcome = harness.run(pipeline("train", batch("train", "nb/train.ipynb", limit=120)), source)

    assert outcome.reason == "stage train failed: exited with code 1"
    lines = _stage_lines(harness, "train")
    assert lines[0] == (
        "[notebook] cell 2 failed (cells counted from 0, markdown cells included): KeyError: 'model'"
    )
    assert any("----> 3 load()" in line for line in lines)
    assert any("----> 2     return {}['model']" in line for line in lines)
    assert "never" not in lines


@pytest.mark.slow
def test_where_the_kernel_is_missing_the_executor_installs_it_first(tmp_path: Path) -> None:
    # As in a Bodywork image on Kubernetes: a plain Python with pip, and no nbclient or ipykernel.
    plain = tmp_path / "plain"
    subprocess.run([sys.executable, "-m", "venv", str(plain)], check=True)
    notebook = write(tmp_path / "nb", {"n.ipynb": _notebook(("code", "display('from a kernel')"))})
    env = dict(os.environ, BODYWORK_CACHE_DIR=str(tmp_path / "cache"))

    result = subprocess.run(
        [str(plain / "bin" / "python"), str(EXECUTOR), "n.ipynb"], cwd=notebook, env=env,
        capture_output=True, text=True, timeout=280, check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[notebook] installing nbclient>=0.10 and ipykernel>=6.0 for this Python")
    assert lines[-1] == "'from a kernel'"
