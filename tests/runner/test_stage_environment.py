"""A stage's environment is like Bodywork's image: pip and setuptools, and the repository on PYTHONPATH."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from runner.backends.local import LocalBackend
from runner.events import RunState
from tests.runner.builders import batch, pipeline, wheel, write
from tests.runner.conftest import Harness, Recorder


def test_a_stage_imports_root_modules_and_packages_that_need_pkg_resources(
    harness: Harness, tmp_path: Path
) -> None:
    plugin = wheel(tmp_path / "wheels", "old-style-plugin", "0.3", {
        "old_style_plugin/__init__.py": "from pkg_resources import get_distribution\n"
        "VERSION = get_distribution('old-style-plugin').version\n",
    })
    source = write(tmp_path / "repo", {
        "common.py": "GREETING = 'hello from the root'\n",
        "stage_a/main.py": """
            import subprocess, sys
            from common import GREETING
            import old_style_plugin
            print(GREETING, old_style_plugin.VERSION)
            pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
            print("pip works" if pip.returncode == 0 else pip.stderr)
        """,
    })
    p = pipeline("stage_a", batch("stage_a", "stage_a/main.py", requirements=(str(plugin),)))

    outcome = harness.run(p, source)

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    lines = [line for line in harness.recorder.logs("stage_a") if "pkg_resources is deprecated" not in line]
    assert lines[-2:] == ["hello from the root 0.3", "pip works"]


def test_stages_run_at_the_niceness_they_are_given(tmp_path: Path, venv_cache: Path) -> None:
    # The service starts stages at niceness 10: a busy pipeline leaves the CPU to webhooks first.
    backend = LocalBackend(cache_dir=venv_cache, state_dir=tmp_path / "state", stage_niceness=7)
    harness = Harness(backend, Recorder())
    source = write(tmp_path / "repo", {"stage_a/main.py": "import os\nprint('niceness', os.nice(0))\n"})
    try:
        outcome = harness.run(pipeline("stage_a", batch("stage_a", "stage_a/main.py")), source)
    finally:
        asyncio.run(backend.close())
    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert harness.recorder.logs("stage_a")[-1] == f"niceness {min(19, os.nice(0) + 7)}"
