"""``bodywork validate`` and ``bodywork migrate`` through the real command line entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.cli import main
from runner.config import load_pipeline

from .helpers import VALID, replace

OLD = replace(
    "pipeline:\n", "project:  # the 1.0 name\n", replace('version: "1.1"', 'version: "1.0"')
)


def _write_modules(folder: Path) -> None:
    for module in ("prepare/main.py", "train/main.py", "score/serve.py"):
        (folder / module).parent.mkdir(parents=True, exist_ok=True)
        (folder / module).write_text("")


def test_validate_confirms_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bodywork.yaml").write_text(VALID)
    assert main(["validate", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        "bodywork.yaml is valid: pipeline demo, 3 stages, DAG prepare >> train, score\n"
    )


def test_validate_lists_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = replace(
        "retries: 2",
        'retries: "three"',
        replace("DAG: prepare >> train, score", "DAG: prepare >> trian"),
    )
    (tmp_path / "bodywork.yaml").write_text(text)
    assert main(["validate", str(tmp_path / "bodywork.yaml")]) == 1
    assert capsys.readouterr().out == (
        "bodywork.yaml has 2 problems:\n"
        '  stages.prepare.batch.retries -> must be an integer >= 0, got "three" (line 15)\n'
        '  pipeline.DAG -> names stage "trian", which is not configured under stages:; did you '
        'mean "train"? (line 5)\n'
    )


def test_validate_check_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bodywork.yaml").write_text(VALID)
    assert main(["validate", str(tmp_path), "--check-files"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("bodywork.yaml has 3 problems:\n")
    assert (
        "  stages.prepare.executable_module_path -> executable_module_path 'prepare/main.py' does not exist"
        in out
    )
    _write_modules(tmp_path)
    assert main(["validate", str(tmp_path), "--check-files"]) == 0


def test_validate_prints_notices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bodywork.yaml").write_text(OLD)
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "bodywork.yaml is valid: pipeline demo, 3 stages, DAG prepare >> train, score"
    assert out[1].startswith('notice: version -> schema "1.0"')


def test_validate_without_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 1
    assert "holds no bodywork.yaml (nor the older bodywork.ini)" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "nowhere")]) == 1


def test_migrate_rewrites_1_0_in_place_keeping_comments_and_a_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bodywork.yaml"
    config.write_text(OLD)
    before = load_pipeline(tmp_path)
    assert main(["migrate", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f'rewrote {config} as schema "1.1" (pipeline demo')
    assert config.read_text() == replace("pipeline:\n", "pipeline:  # the 1.0 name\n")
    assert (tmp_path / "bodywork.yaml.1.0.bak").read_text() == OLD
    assert load_pipeline(tmp_path) == before
    # a second run has nothing to do
    assert main(["migrate", str(tmp_path)]) == 0
    assert capsys.readouterr().out == 'bodywork.yaml is already schema "1.1"; nothing to migrate\n'


def test_migrate_refuses_to_overwrite_a_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bodywork.yaml").write_text(OLD)
    (tmp_path / "bodywork.yaml.1.0.bak").write_text("precious")
    assert main(["migrate", str(tmp_path)]) == 1
    assert (
        "bodywork.yaml.1.0.bak already exists; remove it or pass --force" in capsys.readouterr().err
    )
    assert (tmp_path / "bodywork.yaml").read_text() == OLD
    assert main(["migrate", "--force", str(tmp_path)]) == 0


def test_migrate_stdout_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bodywork.yaml").write_text(OLD)
    assert main(["migrate", "--stdout", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith('version: "1.1"\npipeline:  # the 1.0 name\n')
    assert (tmp_path / "bodywork.yaml").read_text() == OLD
    assert not (tmp_path / "bodywork.yaml.1.0.bak").exists()


def test_migrate_an_unusual_1_0_layout_renders_the_model(tmp_path: Path) -> None:
    # `project` in flow style: the two-line edit cannot apply, so the model is written out
    flow = OLD.replace("project:  # the 1.0 name\n  name: demo\n", "project: {name: demo, ")
    flow = flow.replace("  docker_image: bodyworkml/bodywork-core:3.0\n", "docker_image: x, ")
    flow = flow.replace("  DAG: prepare >> train, score\n", "DAG: 'prepare >> train, score'}\n")
    (tmp_path / "bodywork.yaml").write_text(flow)
    before = load_pipeline(tmp_path)
    assert main(["migrate", str(tmp_path)]) == 0
    text = (tmp_path / "bodywork.yaml").read_text()
    assert text.startswith('version: "1.1"\npipeline:\n  name: demo\n  docker_image: x\n')
    assert load_pipeline(tmp_path) == before


def test_migrate_refuses_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bodywork.yaml").write_text(OLD.replace("retries: 2", "retries: two"))
    assert main(["migrate", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "error: bodywork.yaml has 1 problem:\n"
        '  stages.prepare.batch.retries -> must be an integer >= 0, got "two" (line 15)\n'
    )
