"""The Python a pipeline's stages run on: its python_version, or its Bodywork image's, if installed."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from runner.backends.interpreters import find_python
from runner.config import parse_pipeline_yaml
from runner.errors import FatalError
from runner.events import RunState
from runner.model import Pipeline
from runner.python_version import choose_python, image_python, runner_version
from tests.runner.conftest import Harness

# A Python that exists in no distribution, so the test sees the real "not installed" path everywhere.
MISSING = "3.5"
OTHERS = ("3.9", "3.12", "3.10", "3.8", "3.13")


def _yaml(extra: str = "", image: str = "bodyworkml/bodywork-core:3.0") -> str:
    return textwrap.dedent(f"""\
        version: "1.1"
        pipeline:
          name: pick-python
          docker_image: {image}
          DAG: show
        {extra}
        stages:
          show:
            executable_module_path: show.py
            cpu_request: 0.1
            memory_request_mb: 64
            batch: {{max_completion_time_seconds: 60, retries: 0}}
        logging:
          log_level: INFO
        """)


def _pipeline(version: str | None, image: str = "bodywork-stage:bookworm") -> Pipeline:
    line = f'  python_version: "{version}"' if version else ""
    return parse_pipeline_yaml(_yaml(line, image))


def _source(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir(exist_ok=True)
    return folder


def test_bodywork_images_map_to_their_python() -> None:
    assert image_python("bodyworkml/bodywork-core:3.0") == "3.9"
    assert image_python("bodyworkml/bodywork-core:latest") == "3.9"
    assert image_python("bodyworkml/bodywork-core") == "3.9"
    assert image_python("docker.io/bodyworkml/bodywork-core:2.0.2") == "3.8"
    assert image_python("python:3.9-slim") is None
    assert choose_python("3.10", "bodyworkml/bodywork-core:3.0").version == "3.10"  # type: ignore[union-attr]
    assert choose_python(None, "my/image:1") is None


def test_python_version_is_validated_with_the_fix() -> None:
    with pytest.raises(FatalError) as raised:
        parse_pipeline_yaml(_yaml("  python_version: 3.10"))
    assert str(raised.value) == (
        "bodywork.yaml has 1 problem:\n  pipeline.python_version -> write the version in quotes, like "
        '"3.10": unquoted, YAML reads it as the number 3.1 (line 6)'
    )
    assert _pipeline("3.10").pipeline.python_version == "3.10"


def test_a_required_python_that_is_not_installed_fails_before_any_stage(
    harness: Harness, tmp_path: Path
) -> None:
    _source(tmp_path).joinpath("show.py").write_text("print('ran')")

    outcome = harness.run(_pipeline(MISSING), tmp_path / "repo")

    assert outcome.state is RunState.FAILED
    assert outcome.reason == (
        f"could not prepare the environment: pipeline.python_version is {MISSING}, but no Python "
        f"{MISSING} is installed on this machine; install Python {MISSING} (e.g. `uv python install "
        f"{MISSING}`, `pyenv install {MISSING}`, or your system's python{MISSING} package) so that "
        f"python{MISSING} is on PATH"
    )
    assert harness.recorder.logs("show") == []


SHOW = "import sys; print('%d.%d' % sys.version_info[:2])"


def test_the_stage_runs_on_the_chosen_python(harness: Harness, tmp_path: Path) -> None:
    _source(tmp_path).joinpath("show.py").write_text(SHOW)

    outcome = harness.run(_pipeline(runner_version()), tmp_path / "repo")

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert harness.recorder.logs("show") == [runner_version()]


def test_the_stage_runs_on_another_installed_python(harness: Harness, tmp_path: Path) -> None:
    other = next((v for v in OTHERS if v != runner_version() and find_python(v)), None)
    if other is None:
        pytest.skip(f"no Python other than {runner_version()} is installed here (looked for {OTHERS})")
    _source(tmp_path).joinpath("show.py").write_text(SHOW)

    outcome = harness.run(_pipeline(other), tmp_path / "repo")

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert harness.recorder.logs("show") == [other]


def test_a_bodywork_image_picks_its_python_when_installed_and_says_so_when_not(
    harness: Harness, tmp_path: Path
) -> None:
    _source(tmp_path).joinpath("show.py").write_text(SHOW)

    outcome = harness.run(_pipeline(None, "bodyworkml/bodywork-core:3.0"), tmp_path / "repo")

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    lines = harness.recorder.logs("show")
    if find_python("3.9"):
        assert lines == ["3.9"]
    else:
        assert lines == [
            f"note: docker_image bodyworkml/bodywork-core:3.0 runs Python 3.9, which is not installed "
            f"here: the stages run on Python {runner_version()}; install Python 3.9 (e.g. `uv python "
            "install 3.9`, `pyenv install 3.9`, or your system's python3.9 package) so that python3.9 "
            "is on PATH",
            f"{sys.version_info[0]}.{sys.version_info[1]}",
        ]
