"""DAG strings and the YAML writer used by ``bodywork migrate``."""

from __future__ import annotations

import pytest

from runner.config import parse_pipeline_yaml
from runner.dag import format_dag, parse_dag
from runner.migration import scalar, to_yaml, upgrade_1_0_text
from runner.model import BatchSettings, Pipeline, PipelineSettings, ServiceSettings, Stage

from .helpers import VALID


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("a", (("a",),)),
        ("a >> b, c >> d", (("a",), ("b", "c"), ("d",))),
        ("a>>b,c", (("a",), ("b", "c"))),
        ("  a >>\n b ,c ", (("a",), ("b", "c"))),
        ("stage-1.x >> stage_2", (("stage-1.x",), ("stage_2",))),
    ],
)
def test_parse_dag(text: str, steps: tuple[tuple[str, ...], ...]) -> None:
    assert parse_dag(text) == (steps, [])


def test_format_dag_is_canonical() -> None:
    assert format_dag((("a",), ("b", "c"))) == "a >> b, c"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "a >> b > c",
            "step 2: 'b>c' is not a stage name (letters, digits, '-', '_' and '.', not "
            "starting with '-' or '.'); "
            "separate steps with '>>' and stages with ',', e.g. \"prepare >> train_a, train_b >> serve\"",
        ),
        (
            ">> a",
            "step 1 is empty; separate steps with '>>' and the stages of one step with ',', "
            'e.g. "prepare >> train_a, train_b >> serve"',
        ),
        ("   ", 'is empty; name the stages to run, e.g. "prepare >> train_a, train_b >> serve"'),
    ],
)
def test_parse_dag_problems(text: str, problem: str) -> None:
    assert parse_dag(text)[1] == [problem]


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "a b",
        "yes",
        "No",
        "null",
        "~",
        "123",
        "1.5",
        "0x1f",
        "2021-01-01",
        "a: b",
        "#x",
        "- x",
        "[x]",
        "{x}",
        "&a",
        "*a",
        "!x",
        "|",
        ">",
        "'q'",
        '"q"',
        "%x",
        "@x",
        "`x",
        "x:",
        "tab\there",
        "new\nline",
        "üñí",
        "\u2028",
        "",
        " lead",
        "trail ",
        "<<",
        "=",
        "git+https://x@v1",
        "requests>=2.0,<3",
        "a #b",
        ".inf",
        ".nan",
        "True",
    ],
)
def test_scalar_reads_back_as_the_same_string(text: str) -> None:
    pipeline = parse_pipeline_yaml(VALID)
    stage = pipeline.stages["prepare"]
    changed = Pipeline(
        version="1.1",
        pipeline=pipeline.pipeline,
        stages={
            **pipeline.stages,
            "prepare": Stage(
                name="prepare",
                executable_module_path=stage.executable_module_path,
                cpu_request=stage.cpu_request,
                memory_request_mb=stage.memory_request_mb,
                args=(text,),
                requirements=(text, scalar(text)),
                batch=stage.batch,
            ),
        },
    )
    assert parse_pipeline_yaml(to_yaml(changed)).stages["prepare"].args == (text,)


def test_to_yaml_round_trips_every_field() -> None:
    pipeline = Pipeline(
        version="1.1",
        pipeline=PipelineSettings(
            name="p.1",
            docker_image="registry:5000/img@sha256:abc",
            dag=(("a",), ("b", "c")),
            run_on_failure="notify",
            namespace="ns-1",
            secrets_group="dev",
        ),
        stages={
            "a": Stage("a", "a/m.ipynb", 1e-05, 0, batch=BatchSettings(0, 0)),
            "b": Stage(
                "b",
                "b.py",
                2.0,
                10,
                args=("--x=1",),
                secrets=(("K", "s"),),
                service=ServiceSettings(1, 0, 65535, False),
            ),
            "c": Stage("c", "c.py", 0.0, 1, batch=BatchSettings(1, 1)),
            "notify": Stage("notify", "n.py", 0.1, 1, batch=BatchSettings(1, 1)),
        },
        log_level="DEBUG",
    )
    assert parse_pipeline_yaml(to_yaml(pipeline)) == pipeline


def test_upgrade_1_0_text_edits_two_lines_only() -> None:
    text = "# top\nversion: '1.0'  # old\nproject:   # section\n  name: x\n"
    assert upgrade_1_0_text(text) == (
        '# top\nversion: "1.1" # old\npipeline:   # section\n  name: x\n'
    )
    assert upgrade_1_0_text("version: '1.0'\nproject: {name: x}\n") is None
