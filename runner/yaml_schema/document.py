"""The whole document: its version, its sections, the ``pipeline:`` (or ``project:``) and ``logging:``
sections, and the checks across sections (the DAG and ``run_on_failure`` name configured stages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from runner.dag import format_dag, parse_dag
from runner.hints import close_names, quoted, show, unknown_key_message
from runner.model import LOG_LEVELS, Pipeline, PipelineSettings
from runner.python_version import PYTHON_VERSION_KEY, version_problem
from runner.schedule import schedule_in
from runner.yaml_io import YamlDocument, YamlPath
from runner.yaml_schema.checker import MISSING, Checker
from runner.yaml_schema.keys import (
    DNS_LABEL,
    K8S_NAME,
    LOGGING_KEYS,
    OLD_SCHEMA_NOTICE,
    OLD_SCHEMA_VERSION,
    PIPELINE_KEYS,
    SCHEMA_VERSION,
    STAGE_NAME,
)
from runner.yaml_schema.stages import read_stages


@dataclass(frozen=True)
class _Names:
    """What the pipeline section names, kept even when its other fields are wrong, so that the DAG is
    checked against the stages in the same pass."""

    steps: tuple[tuple[str, ...], ...] = ()
    run_on_failure: str | None = None


def validate_document(
    document: YamlDocument, source: str = "bodywork.yaml"
) -> tuple[Pipeline | None, list[str], list[str]]:
    """The pipeline in `document` (None when there are problems), its problems and its notices."""
    check = Checker(document, source)
    for path, line in document.duplicate_keys:
        check.problem(
            path,
            f"appears twice in one mapping (again at line {line}); YAML keeps only the last, remove one",
        )
    pipeline = _read(check)
    if check.out.problems:
        pipeline = None
    return pipeline, check.out.problems, check.out.notices


def describe(pipeline: Pipeline) -> str:
    """``pipeline NAME, N stages, DAG a >> b, c``."""
    count = len(pipeline.stages)
    return (
        f"pipeline {pipeline.name}, {count} stage{'s' if count != 1 else ''}, "
        f"DAG {format_dag(pipeline.steps)}"
    )


def _read(check: Checker) -> Pipeline | None:
    data = check.doc.value
    if not isinstance(data, dict):
        got = "an empty file" if data is None else show(data)
        check.problem(
            (),
            "the top level must be a mapping with the sections version, pipeline, stages and logging; "
            f"got {got}",
        )
        return None
    schema = _version(check, data)
    section_name = _section_name(check, data, schema)
    _top_level_keys(check, data, section_name)
    settings, names = _pipeline_section(check, data, section_name)
    stages = read_stages(check, data)
    log_level = _logging(check, data)
    raw_stages = data.get("stages")
    if isinstance(raw_stages, dict) and raw_stages:
        _cross_check(check, raw_stages, section_name, names)
    if check.out.problems or settings is None or stages is None or log_level is None:
        return None
    return Pipeline(
        version=SCHEMA_VERSION,
        pipeline=settings,
        stages=stages,
        log_level=log_level,
        notices=tuple(check.out.notices),
        source_schema=schema or SCHEMA_VERSION,
    )


def _top_level_keys(check: Checker, data: dict[object, Any], section_name: str) -> None:
    for key in data:
        if key in ("version", "stages", "logging", section_name):
            continue
        if key in ("pipeline", "project"):  # both names are present
            other = "1.1" if key == "pipeline" else "1.0"
            check.problem(
                (key,),
                f'is the schema "{other}" name of the section; this file already has {section_name}:, '
                "remove one",
                at_key=True,
            )
            continue
        check.problem(
            (key,), unknown_key_message(key, ("version", section_name, "stages", "logging")), at_key=True
        )
    fixes = {
        "stages": "add stages: with the settings of every stage in the DAG",
        "logging": "add logging: with log_level: INFO",
    }
    for name, fix in fixes.items():
        if name not in data:
            check.problem((name,), f"missing section; {fix}")


def _version(check: Checker, data: dict[object, Any]) -> str | None:
    if "version" not in data:
        check.problem(("version",), 'missing; add version: "1.1" at the top of the file')
        return None
    value = data["version"]
    if isinstance(value, str) and value in (SCHEMA_VERSION, OLD_SCHEMA_VERSION):
        schema = value
    elif isinstance(value, float) and value in (1.1, 1.0):
        schema = SCHEMA_VERSION if value == 1.1 else OLD_SCHEMA_VERSION
        line = check.doc.value_lines.get(("version",))
        check.notice(
            f"version -> {value} is not quoted, so YAML reads it as a number; write "
            f'version: "{schema}"' + (f" (line {line})" if line else "")
        )
    elif isinstance(value, str):
        check.problem(
            ("version",),
            f"unknown schema version {show(value)}; this loader reads "
            '"1.1" (Bodywork 3) and the older "1.0": write version: "1.1" and check '
            "the file against docs/bodywork-yaml.md",
        )
        return None
    else:
        check.problem(
            ("version",),
            f'must be the string "1.1", got {show(value)}; write version: "1.1" (with the quotes)',
        )
        return None
    if schema == OLD_SCHEMA_VERSION:
        check.notice(OLD_SCHEMA_NOTICE)
    return schema


def _section_name(check: Checker, data: dict[object, Any], schema: str | None) -> str:
    if schema == SCHEMA_VERSION:
        if "pipeline" not in data and "project" in data:
            check.problem(
                ("pipeline",),
                "missing section; this file has project:, the schema "
                '"1.0" name: rename project: to pipeline: (or set version: "1.0")',
            )
            return "project"
        return "pipeline"
    if schema == OLD_SCHEMA_VERSION:
        if "project" not in data and "pipeline" in data:
            check.problem(
                ("project",),
                'missing section; schema "1.0" calls it project:, and this file has pipeline:, the '
                'schema "1.1" name: set version: "1.1"',
            )
            return "pipeline"
        return "project"
    return "project" if "project" in data and "pipeline" not in data else "pipeline"


# Optional pipeline keys that hold a name: key -> (pattern, the rule a problem states).
_OPTIONAL_NAMES = {
    "run_on_failure": (STAGE_NAME, "a stage name"),
    "namespace": (
        DNS_LABEL,
        "a Kubernetes namespace: lowercase letters, digits and '-', at most 63 characters",
    ),
    "secrets_group": (K8S_NAME, "letters, digits, '-' and '.'"),
}


def _pipeline_section(
    check: Checker, data: dict[object, Any], name: str
) -> tuple[PipelineSettings | None, _Names]:
    if name not in data:
        check.problem((name,), "missing section; add it with name, docker_image and DAG")
        return None, _Names()
    path: YamlPath = (name,)
    section = check.section(data, path)
    if section is None:
        return None, _Names()
    check.unknown_keys(section, path, PIPELINE_KEYS)
    pipeline_name = check.string(
        check.required(section, (*path, "name")), (*path, "name"), K8S_NAME, "letters, digits, '-' and '.'"
    )
    image = check.string(
        check.required(section, (*path, "docker_image")),
        (*path, "docker_image"),
        re.compile(r"\S+"),
        "an image reference without spaces",
    )
    steps = _dag(check, section, path)
    optional: dict[str, str | None] = {}
    for key, (pattern, rule) in _OPTIONAL_NAMES.items():
        optional[key] = None
        if key in section:
            optional[key] = check.string(section[key], (*path, key), pattern, rule)
    if "usage_stats" in section:
        check.boolean(section["usage_stats"], (*path, "usage_stats"))
    python_version = _python_version(check, section, path)
    names = _Names(steps or (), optional["run_on_failure"])
    schedule = schedule_in(section, path, check.problem)
    if pipeline_name is None or image is None or steps is None:
        return None, names
    settings = PipelineSettings(
        name=pipeline_name,
        docker_image=image,
        dag=steps,
        run_on_failure=optional["run_on_failure"],
        namespace=optional["namespace"],
        secrets_group=optional["secrets_group"],
        schedule=schedule,
        python_version=python_version,
    )
    return settings, names


def _python_version(check: Checker, section: dict[object, Any], path: YamlPath) -> str | None:
    """The optional python_version extension (see runner.python_version)."""
    if PYTHON_VERSION_KEY not in section:
        return None
    problem = version_problem(section[PYTHON_VERSION_KEY])
    if problem is not None:
        check.problem((*path, PYTHON_VERSION_KEY), problem)
        return None
    return str(section[PYTHON_VERSION_KEY])


def _dag(check: Checker, section: dict[object, Any], path: YamlPath) -> tuple[tuple[str, ...], ...] | None:
    dag_text = check.string(check.required(section, (*path, "DAG")), (*path, "DAG"))
    if dag_text is None:
        return None
    steps, dag_problems = parse_dag(dag_text)
    for message in dag_problems:
        check.problem((*path, "DAG"), message)
    return None if dag_problems else steps


def _logging(check: Checker, data: dict[object, Any]) -> str | None:
    if "logging" not in data:
        return None
    section = check.section(data, ("logging",))
    if section is None:
        return None
    check.unknown_keys(section, ("logging",), LOGGING_KEYS)
    value = check.required(section, ("logging", "log_level"))
    if value is MISSING:
        return None
    if isinstance(value, str) and value in LOG_LEVELS:
        return value
    hint = ""
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        hint = f"; write {value.strip().upper()}"
    check.problem(
        ("logging", "log_level"), f"must be one of {', '.join(LOG_LEVELS)}, got {show(value)}{hint}"
    )
    return None


def _cross_check(check: Checker, raw_stages: dict[object, Any], section: str, names: _Names) -> None:
    configured = [name for name in raw_stages if isinstance(name, str)]
    for step in names.steps:
        for name in step:
            if name not in raw_stages:
                check.problem(
                    (section, "DAG"),
                    f"names stage {quoted(name)}, which is not configured under "
                    f"stages:{close_names(name, configured)}",
                )
    target = names.run_on_failure
    if target is None:
        return
    if target not in raw_stages:
        check.problem(
            (section, "run_on_failure"),
            f"names stage {quoted(target)}, which is not configured under "
            f"stages:{close_names(target, configured)}",
        )
    elif isinstance(raw_stages[target], dict) and "service" in raw_stages[target]:
        check.problem(
            (section, "run_on_failure"),
            f"stage {quoted(target)} is a service; the stage run on failure must be a batch stage",
        )
