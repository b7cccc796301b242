"""A stage's environment is like Bodywork's image: pip and setuptools, and the repository on PYTHONPATH."""

from __future__ import annotations

from pathlib import Path

from runner.events import RunState
from tests.runner.builders import batch, pipeline, wheel, write
from tests.runner.conftest import Harness


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
