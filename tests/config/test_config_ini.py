"""The bodywork.ini layout: loads into the same model as bodywork.yaml, with its quirks."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import ConfigError, load_pipeline
from runner.model import BatchSettings, PipelineSettings, ServiceSettings, Stage

PROJECT = """\
[default]
PROJECT_NAME=demo
DOCKER_IMAGE=bodyworkml/bodywork-core:latest

[workflow]
DAG={dag}

[logging]
LOG_LEVEL=INFO
"""
BATCH = """\
[default]
STAGE_TYPE=batch
EXECUTABLE_SCRIPT=main.py
CPU_REQUEST=1
MEMORY_REQUEST_MB=100

[batch]
MAX_COMPLETION_TIME_SECONDS=30
RETRIES=2
"""
SERVICE = """\
[default]
stage_type=service
executable_script=serve.py
cpu_request=0.25
memory_request_mb=100

[service]
MAX_STARTUP_TIME_SECONDS=30
REPLICAS=2
PORT=5000
{ingress}
[secrets]
USERNAME=credentials
"""


def _project(root: Path, dag: str = "train >> serve", ingress: str = "INGRESS=True\n") -> Path:
    (root / "bodywork.ini").write_text(PROJECT.format(dag=dag))
    for name, config, module, requirements in (
        ("train", BATCH, "main.py", ""),
        ("serve", SERVICE.format(ingress=ingress), "serve.py", "flask==2.0\n# a comment\n\n"),
    ):
        (root / name).mkdir()
        (root / name / "config.ini").write_text(config)
        (root / name / module).write_text("")
        (root / name / "requirements.txt").write_text(requirements)
    return root


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(root)
    return caught.value.problems


def test_ini_layout_loads_into_the_model(tmp_path: Path) -> None:
    pipeline = load_pipeline(_project(tmp_path), check_files=True)
    assert pipeline.source_schema == "ini"
    assert pipeline.pipeline == PipelineSettings(
        name="demo", docker_image="bodyworkml/bodywork-core:latest", dag=(("train",), ("serve",))
    )
    assert pipeline.stages == {
        "train": Stage(
            name="train",
            executable_module_path="train/main.py",
            cpu_request=1.0,
            memory_request_mb=100,
            batch=BatchSettings(max_completion_time_seconds=30, retries=2),
        ),
        "serve": Stage(
            name="serve",
            executable_module_path="serve/serve.py",
            cpu_request=0.25,
            memory_request_mb=100,
            requirements=("flask==2.0",),
            secrets=(("USERNAME", "credentials"),),
            service=ServiceSettings(
                max_startup_time_seconds=30, replicas=2, port=5000, ingress=True
            ),
        ),
    }
    assert pipeline.notices == (
        "bodywork.ini -> the bodywork.ini layout (Bodywork 0.x and 1.x) is the oldest format; it "
        "loads, but run `bodywork migrate` to write the equivalent bodywork.yaml",
    )


def test_missing_ingress_reads_as_false_with_a_notice(tmp_path: Path) -> None:
    pipeline = load_pipeline(_project(tmp_path, ingress=""))
    service = pipeline.stages["serve"].service
    assert service is not None and service.ingress is False
    assert pipeline.notices[1] == (
        "serve/config.ini [service] INGRESS -> missing; read as False (no ingress), as Bodywork "
        "0.2 did; Bodywork 1.0 required it"
    )


def test_quoted_dag_says_what_is_wrong(tmp_path: Path) -> None:
    assert _problems(_project(tmp_path, dag='"train >> serve"')) == [
        'bodywork.ini [workflow] DAG -> the value is wrapped in quotes ("..."); remove them: an ini '
        "value needs no quotes"
    ]


def test_dag_naming_a_missing_folder(tmp_path: Path) -> None:
    assert _problems(_project(tmp_path, dag="train >> serve_model")) == [
        'bodywork.ini [workflow] DAG -> names stage "serve_model", but there is no folder '
        'serve_model/ next to bodywork.ini; did you mean "serve"?'
    ]


def test_stage_problems_name_file_section_and_key(tmp_path: Path) -> None:
    root = _project(tmp_path, ingress="INGRESS=yes\n")
    config = root / "train" / "config.ini"
    config.write_text(config.read_text().replace("RETRIES=2", "RETRIES=two\nRETRYS=3"))
    (root / "train" / "main.py").unlink()
    (root / "serve" / "requirements.txt").unlink()
    assert _problems(root) == [
        'train/config.ini [batch] RETRYS -> unknown key; did you mean "RETRIES"?',
        'train/config.ini [default] EXECUTABLE_SCRIPT -> "main.py" does not exist in train/; add '
        "the file or correct EXECUTABLE_SCRIPT",
        'train/config.ini [batch] RETRIES -> must be an integer >= 0, got "two"',
        "serve/requirements.txt -> missing; create it, one requirement a line (it may be empty)",
        'serve/config.ini [service] INGRESS -> must be True or False, got "yes"',
    ]


def test_project_file_problems(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "bodywork.ini").write_text("[default]\nPIPELINE_NAME=demo\n[workflow]\nDAG=train\n")
    assert _problems(root) == [
        'bodywork.ini [default] PIPELINE_NAME -> unknown key; did you mean "PROJECT_NAME"?',
        "bodywork.ini [default] PROJECT_NAME -> missing; add PROJECT_NAME=my-project",
        "bodywork.ini [default] DOCKER_IMAGE -> missing; add "
        "DOCKER_IMAGE=bodyworkml/bodywork-core:latest",
        "bodywork.ini [logging] -> missing section; add [logging] with LOG_LEVEL=INFO",
    ]


def test_unreadable_ini(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "bodywork.ini").write_text("PROJECT_NAME=demo\n")
    assert _problems(root) == [
        "bodywork.ini -> cannot be read as an ini file: File contains no section headers. file: "
        "'bodywork.ini', line: 1 'PROJECT_NAME=demo\\n'"
    ]


def test_a_yaml_file_wins_over_the_ini_layout(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "bodywork.yaml").write_text("not: [valid")
    assert _problems(root)[0].startswith("bodywork.yaml -> YAML syntax error at line 1")
    assert load_pipeline(root / "bodywork.ini").name == "demo"
