"""Validation of a parsed bodywork.yaml (schema "1.1", and the older "1.0") into the typed model.

Pure: takes the plain values from :mod:`runner.yaml_io` and returns a :class:`Pipeline` or every problem
found, each as ``<dotted.path> -> <message>`` with the line it came from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from runner.dag import format_dag, parse_dag
from runner.hints import (
    CPU_RULE,
    MODULE_RULE,
    MODULE_SUFFIXES,
    close_names,
    integer_rule,
    quoted,
    show,
    unknown_key_message,
)
from runner.model import (
    LOG_LEVELS,
    BatchSettings,
    Pipeline,
    PipelineSettings,
    ServiceSettings,
    Stage,
)
from runner.python_version import PYTHON_VERSION_KEY, version_problem
from runner.yaml_io import Index, YamlDocument, YamlPath

SCHEMA_VERSION = "1.1"
OLD_SCHEMA_VERSION = "1.0"

PIPELINE_KEYS = (
    "name",
    "docker_image",
    "DAG",
    "run_on_failure",
    "namespace",
    "secrets_group",
    "usage_stats",
    PYTHON_VERSION_KEY,
)
STAGE_KEYS = (
    "executable_module_path",
    "args",
    "requirements",
    "cpu_request",
    "memory_request_mb",
    "secrets",
    "batch",
    "service",
)
BATCH_KEYS = ("max_completion_time_seconds", "retries")
SERVICE_KEYS = ("max_startup_time_seconds", "replicas", "port", "ingress")
LOGGING_KEYS = ("log_level",)

K8S_NAME = re.compile(r"[a-zA-Z0-9\-.]+")
STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

OLD_SCHEMA_NOTICE = (
    'version -> schema "1.0" (the `project:` section of Bodywork 2.x) is the older schema; it '
    'loads unchanged, but run `bodywork migrate` to rewrite the file as schema "1.1"'
)

_EXAMPLES = {
    "name": "my-pipeline",
    "docker_image": "bodyworkml/bodywork-core:3.0",
    "DAG": '"stage_1 >> stage_2"',
    "executable_module_path": "stage_1/main.py",
    "cpu_request": "0.5",
    "memory_request_mb": "100",
    "max_completion_time_seconds": "60",
    "retries": "2",
    "max_startup_time_seconds": "60",
    "replicas": "2",
    "port": "5000",
    "ingress": "true",
    "log_level": "INFO",
}
_MISSING = object()


def dotted(path: YamlPath) -> str:
    """`("stages", "train", "args", 1)` as ``stages.train.args[1]``; odd keys are quoted."""
    text = ""
    for part in path:
        if isinstance(part, Index):
            text += f"[{part}]"
            continue
        name = str(part) if not isinstance(part, bool) else str(part).lower()
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            name = quoted(name)
        text += f".{name}" if text else name
    return text


@dataclass
class _Result:
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


class _Validator:
    def __init__(self, document: YamlDocument, source: str) -> None:
        self.doc = document
        self.source = source
        self.out = _Result()
        # What the pipeline section names, kept even when other fields are wrong, so that the DAG
        # is checked against the stages in the same pass.
        self.steps: tuple[tuple[str, ...], ...] = ()
        self.run_on_failure: str | None = None

    # ----- reporting
    def problem(self, path: YamlPath, message: str, *, at_key: bool = False) -> None:
        lines = self.doc.key_lines if at_key else self.doc.value_lines
        line = lines.get(path) or self.doc.key_lines.get(path)
        suffix = f" (line {line})" if line is not None and path else ""
        self.out.problems.append(f"{dotted(path) or self.source} -> {message}{suffix}")

    def unknown_keys(
        self, mapping: dict[object, Any], path: YamlPath, known: tuple[str, ...]
    ) -> None:
        for key in mapping:
            if key not in known:
                self.problem((*path, key), unknown_key_message(key, known), at_key=True)

    def section(self, parent: dict[object, Any], path: YamlPath) -> dict[object, Any] | None:
        value = parent[path[-1]]
        if isinstance(value, dict):
            return value
        self.problem(path, f"must be a mapping of settings, got {show(value)}")
        return None

    def required(self, mapping: dict[object, Any], path: YamlPath) -> Any:
        key = path[-1]
        if key in mapping:
            return mapping[key]
        example = _EXAMPLES.get(str(key), "...")
        self.problem(path, f"missing; add it, e.g. {key}: {example}")
        return _MISSING

    # ----- typed values (return None when the value is missing or wrong)
    def string(
        self, value: Any, path: YamlPath, pattern: re.Pattern[str] | None = None, rule: str = ""
    ) -> str | None:
        if value is _MISSING:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"must be a non-empty string, got {show(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(path, f"must be {rule}, got {show(value)}")
            return None
        return value

    def integer(
        self, value: Any, path: YamlPath, low: int = 0, high: int | None = None
    ) -> int | None:
        if value is _MISSING:
            return None
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and value >= low and (high is None or value <= high):
            return int(value)
        rule = integer_rule(low, high)
        fix = (
            "; write it without quotes"
            if isinstance(value, str) and value.strip().isdigit()
            else ""
        )
        self.problem(path, f"must be {rule}, got {show(value)}{fix}")
        return None

    def number(self, value: Any, path: YamlPath) -> float | None:
        if value is _MISSING:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and math.isfinite(value) and value >= 0:
            return float(value)
        self.problem(path, f"must be {CPU_RULE}, got {show(value)}")
        return None

    def boolean(self, value: Any, path: YamlPath) -> bool | None:
        if value is _MISSING:
            return None
        if isinstance(value, bool):
            return value
        self.problem(path, f"must be true or false, got {show(value)}")
        return None

    def string_list(self, value: Any, path: YamlPath) -> tuple[str, ...] | None:
        if value is None:
            self.problem(path, "is empty; list the items under it (- item), or remove the key")
            return None
        if not isinstance(value, list):
            self.problem(path, f"must be a list of strings, got {show(value)}")
            return None
        items: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                items.append(item)
            else:
                fix = f"; quote it: {quoted(str(item).lower() if isinstance(item, bool) else str(item))}"
                scalar = isinstance(item, int | float | bool) or item is None
                self.problem(
                    (*path, Index(index)),
                    f"must be a string, got {show(item)}"
                    + (fix if scalar and item is not None else ""),
                )
        return tuple(items) if len(items) == len(value) else None

    # ----- the document
    def run(self) -> Pipeline | None:
        data = self.doc.value
        if not isinstance(data, dict):
            got = "an empty file" if data is None else show(data)
            self.problem(
                (),
                "the top level must be a mapping with the sections version, "
                f"pipeline, stages and logging; got {got}",
            )
            return None
        schema = self.version(data)
        section_name = self.section_name(data, schema)
        for key in data:
            if key in ("version", "stages", "logging", section_name):
                continue
            if key in ("pipeline", "project"):  # both names are present
                other = "1.1" if key == "pipeline" else "1.0"
                self.problem(
                    (key,),
                    f'is the schema "{other}" name of the section; this file '
                    f"already has {section_name}:, remove one",
                    at_key=True,
                )
                continue
            self.problem(
                (key,),
                unknown_key_message(key, ("version", section_name, "stages", "logging")),
                at_key=True,
            )
        fixes = {
            "stages": "add stages: with the settings of every stage in the DAG",
            "logging": "add logging: with log_level: INFO",
        }
        for name, fix in fixes.items():
            if name not in data:
                self.problem((name,), f"missing section; {fix}")

        settings = self.pipeline_section(data, section_name)
        stages = self.stages(data)
        log_level = self.logging(data)
        raw_stages = data.get("stages")
        if isinstance(raw_stages, dict) and raw_stages:
            self.cross_check(raw_stages, section_name)
        if self.out.problems or settings is None or stages is None or log_level is None:
            return None
        return Pipeline(
            version=SCHEMA_VERSION,
            pipeline=settings,
            stages=stages,
            log_level=log_level,
            notices=tuple(self.out.notices),
            source_schema=schema or SCHEMA_VERSION,
        )

    def version(self, data: dict[object, Any]) -> str | None:
        if "version" not in data:
            self.problem(("version",), 'missing; add version: "1.1" at the top of the file')
            return None
        value = data["version"]
        if isinstance(value, str) and value in (SCHEMA_VERSION, OLD_SCHEMA_VERSION):
            schema = value
        elif isinstance(value, float) and value in (1.1, 1.0):
            schema = SCHEMA_VERSION if value == 1.1 else OLD_SCHEMA_VERSION
            line = self.doc.value_lines.get(("version",))
            self.out.notices.append(
                f"version -> {value} is not quoted, so YAML reads it as a number; write "
                f'version: "{schema}"' + (f" (line {line})" if line else "")
            )
        elif isinstance(value, str):
            self.problem(
                ("version",),
                f"unknown schema version {show(value)}; this loader reads "
                '"1.1" (Bodywork 3) and the older "1.0": write version: "1.1" and check '
                "the file against docs/bodywork-yaml.md",
            )
            return None
        else:
            self.problem(
                ("version",),
                f'must be the string "1.1", got {show(value)}; write version: "1.1" (with the quotes)',
            )
            return None
        if schema == OLD_SCHEMA_VERSION:
            self.out.notices.append(OLD_SCHEMA_NOTICE)
        return schema

    def section_name(self, data: dict[object, Any], schema: str | None) -> str:
        if schema == SCHEMA_VERSION:
            if "pipeline" not in data and "project" in data:
                self.problem(
                    ("pipeline",),
                    "missing section; this file has project:, the schema "
                    '"1.0" name: rename project: to pipeline: (or set version: "1.0")',
                )
                return "project"
            return "pipeline"
        if schema == OLD_SCHEMA_VERSION:
            if "project" not in data and "pipeline" in data:
                self.problem(
                    ("project",),
                    'missing section; schema "1.0" calls it project:, '
                    'and this file has pipeline:, the schema "1.1" name: set version: '
                    '"1.1"',
                )
                return "pipeline"
            return "project"
        return "project" if "project" in data and "pipeline" not in data else "pipeline"

    def pipeline_section(self, data: dict[object, Any], name: str) -> PipelineSettings | None:
        if name not in data:
            self.problem((name,), "missing section; add it with name, docker_image and DAG")
            return None
        path: YamlPath = (name,)
        section = self.section(data, path)
        if section is None:
            return None
        self.unknown_keys(section, path, PIPELINE_KEYS)
        pipeline_name = self.string(
            self.required(section, (*path, "name")),
            (*path, "name"),
            K8S_NAME,
            "letters, digits, '-' and '.'",
        )
        image = self.string(
            self.required(section, (*path, "docker_image")),
            (*path, "docker_image"),
            re.compile(r"\S+"),
            "an image reference without spaces",
        )
        dag_text = self.string(self.required(section, (*path, "DAG")), (*path, "DAG"))
        steps: tuple[tuple[str, ...], ...] | None = None
        if dag_text is not None:
            steps, dag_problems = parse_dag(dag_text)
            for message in dag_problems:
                self.problem((*path, "DAG"), message)
            if dag_problems:
                steps = None
            else:
                self.steps = steps
        optional: dict[str, str | None] = {}
        rules = {
            "run_on_failure": (STAGE_NAME, "a stage name"),
            "namespace": (
                DNS_LABEL,
                "a Kubernetes namespace: lowercase letters, digits and '-', at most 63 characters",
            ),
            "secrets_group": (K8S_NAME, "letters, digits, '-' and '.'"),
        }
        for key, (pattern, rule) in rules.items():
            optional[key] = None
            if key in section:
                optional[key] = self.string(section[key], (*path, key), pattern, rule)
        if "usage_stats" in section:
            self.boolean(section["usage_stats"], (*path, "usage_stats"))
        python_version = self.python_version(section, path)
        self.run_on_failure = optional["run_on_failure"]
        if pipeline_name is None or image is None or steps is None:
            return None
        return PipelineSettings(
            name=pipeline_name,
            docker_image=image,
            dag=steps,
            run_on_failure=optional["run_on_failure"],
            namespace=optional["namespace"],
            secrets_group=optional["secrets_group"],
            python_version=python_version,
        )

    def python_version(self, section: dict[object, Any], path: YamlPath) -> str | None:
        """The optional python_version extension (see runner.python_version)."""
        if PYTHON_VERSION_KEY not in section:
            return None
        value = section[PYTHON_VERSION_KEY]
        problem = version_problem(value)
        if problem is not None:
            self.problem((*path, PYTHON_VERSION_KEY), problem)
            return None
        return str(value)

    def stages(self, data: dict[object, Any]) -> dict[str, Stage] | None:
        if "stages" not in data:
            return None
        value = data["stages"]
        if not isinstance(value, dict) or not value:
            self.problem(
                ("stages",),
                "must be a mapping of stage names to stage settings, got "
                f"{show(value) if value != {} else 'an empty mapping'}",
            )
            return None
        stages: dict[str, Stage] = {}
        complete = True
        for name, config in value.items():
            stage = self.stage(name, config)
            if stage is None:
                complete = False
            else:
                stages[stage.name] = stage
        return stages if complete else None

    def stage(self, name: object, config: Any) -> Stage | None:
        path: YamlPath = ("stages", name)
        if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
            self.problem(
                path,
                "a stage name must be letters, digits, '-', '_' and '.', not starting with '-' or "
                f"'.'; got {show(name)}",
                at_key=True,
            )
            return None
        if not isinstance(config, dict):
            self.problem(path, f"must be a mapping of stage settings, got {show(config)}")
            return None
        self.unknown_keys(config, path, STAGE_KEYS)
        module = self.module_path(
            self.required(config, (*path, "executable_module_path")),
            (*path, "executable_module_path"),
        )
        cpu = self.number(self.required(config, (*path, "cpu_request")), (*path, "cpu_request"))
        memory = self.integer(
            self.required(config, (*path, "memory_request_mb")), (*path, "memory_request_mb")
        )
        args: tuple[str, ...] | None = ()
        if "args" in config:
            args = self.string_list(config["args"], (*path, "args"))
        requirements: tuple[str, ...] | None = ()
        if "requirements" in config:
            requirements = self.string_list(config["requirements"], (*path, "requirements"))
        secrets = self.secrets(config, path)
        batch: BatchSettings | None = None
        service: ServiceSettings | None = None
        kind_ok = True
        if "batch" in config and "service" in config:
            self.problem(
                path,
                "has both batch: and service:; a stage is one or the other, remove one",
                at_key=True,
            )
            kind_ok = False
        elif "batch" in config:
            batch = self.batch(config, (*path, "batch"))
            kind_ok = batch is not None
        elif "service" in config:
            service = self.service(config, (*path, "service"))
            kind_ok = service is not None
        else:
            self.problem(
                path,
                "needs a batch: or a service: section (exactly one); add e.g. "
                "batch: {max_completion_time_seconds: 60, retries: 2}",
                at_key=True,
            )
            kind_ok = False
        if (
            module is None
            or cpu is None
            or memory is None
            or args is None
            or requirements is None
            or secrets is None
            or not kind_ok
        ):
            return None
        return Stage(
            name=name,
            executable_module_path=module,
            cpu_request=cpu,
            memory_request_mb=memory,
            args=args,
            requirements=requirements,
            secrets=secrets,
            batch=batch,
            service=service,
        )

    def module_path(self, value: Any, path: YamlPath) -> str | None:
        text = self.string(value, path)
        if text is None:
            return None
        posix = PurePosixPath(text.replace("\\", "/"))
        if posix.is_absolute() or ".." in posix.parts:
            self.problem(
                path,
                f"{show(text)} leaves the repository; give a path "
                "relative to the folder holding bodywork.yaml, without '..'",
            )
            return None
        if not text.endswith(MODULE_SUFFIXES):
            self.problem(path, f"{MODULE_RULE}, got {show(text)}")
            return None
        return text

    def secrets(
        self, config: dict[object, Any], path: YamlPath
    ) -> tuple[tuple[str, str], ...] | None:
        if "secrets" not in config:
            return ()
        spath = (*path, "secrets")
        value = config["secrets"]
        if not isinstance(value, dict):
            self.problem(spath, "must be a mapping ENV_VAR: secret-name, got " + show(value))
            return None
        pairs: list[tuple[str, str]] = []
        for env_var, secret in value.items():
            epath = (*spath, env_var)
            if not isinstance(env_var, str) or not ENV_VAR.fullmatch(env_var):
                self.problem(
                    epath,
                    "is not an environment variable name (letters, digits and "
                    "'_', not starting with a digit)",
                    at_key=True,
                )
                continue
            name = self.string(
                secret, epath, K8S_NAME, "a secret name: letters, digits, '-' and '.'"
            )
            if name is not None:
                pairs.append((env_var, name))
        return tuple(pairs) if len(pairs) == len(value) else None

    def batch(self, config: dict[object, Any], path: YamlPath) -> BatchSettings | None:
        section = self.section(config, path)
        if section is None:
            return None
        self.unknown_keys(section, path, BATCH_KEYS)
        timeout = self.integer(
            self.required(section, (*path, "max_completion_time_seconds")),
            (*path, "max_completion_time_seconds"),
        )
        retries = self.integer(self.required(section, (*path, "retries")), (*path, "retries"))
        if timeout is None or retries is None:
            return None
        return BatchSettings(max_completion_time_seconds=timeout, retries=retries)

    def service(self, config: dict[object, Any], path: YamlPath) -> ServiceSettings | None:
        section = self.section(config, path)
        if section is None:
            return None
        self.unknown_keys(section, path, SERVICE_KEYS)
        startup = self.integer(
            self.required(section, (*path, "max_startup_time_seconds")),
            (*path, "max_startup_time_seconds"),
        )
        replicas = self.integer(self.required(section, (*path, "replicas")), (*path, "replicas"))
        port = self.integer(self.required(section, (*path, "port")), (*path, "port"), 1, 65535)
        ingress = self.boolean(self.required(section, (*path, "ingress")), (*path, "ingress"))
        if startup is None or replicas is None or port is None or ingress is None:
            return None
        return ServiceSettings(
            max_startup_time_seconds=startup, replicas=replicas, port=port, ingress=ingress
        )

    def logging(self, data: dict[object, Any]) -> str | None:
        if "logging" not in data:
            return None
        section = self.section(data, ("logging",))
        if section is None:
            return None
        self.unknown_keys(section, ("logging",), LOGGING_KEYS)
        value = self.required(section, ("logging", "log_level"))
        if value is _MISSING:
            return None
        if isinstance(value, str) and value in LOG_LEVELS:
            return value
        hint = ""
        if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
            hint = f"; write {value.strip().upper()}"
        self.problem(
            ("logging", "log_level"),
            f"must be one of {', '.join(LOG_LEVELS)}, got {show(value)}{hint}",
        )
        return None

    def cross_check(self, raw_stages: dict[object, Any], section: str) -> None:
        configured = [name for name in raw_stages if isinstance(name, str)]
        for step in self.steps:
            for name in step:
                if name not in raw_stages:
                    self.problem(
                        (section, "DAG"),
                        f"names stage {quoted(name)}, which is not configured under "
                        f"stages:{close_names(name, configured)}",
                    )
        target = self.run_on_failure
        if target is None:
            return
        if target not in raw_stages:
            self.problem(
                (section, "run_on_failure"),
                f"names stage {quoted(target)}, which is not configured under "
                f"stages:{close_names(target, configured)}",
            )
        elif isinstance(raw_stages[target], dict) and "service" in raw_stages[target]:
            self.problem(
                (section, "run_on_failure"),
                f"stage {quoted(target)} is a service; the stage run on failure must be a "
                "batch stage",
            )


def validate_document(
    document: YamlDocument, source: str = "bodywork.yaml"
) -> tuple[Pipeline | None, list[str], list[str]]:
    """The pipeline in `document` (None when there are problems), its problems and its notices."""
    validator = _Validator(document, source)
    for path, line in document.duplicate_keys:
        validator.problem(
            path,
            f"appears twice in one mapping (again at line {line}); YAML keeps only the last, remove one",
        )
    pipeline = validator.run()
    if validator.out.problems:
        pipeline = None
    return pipeline, validator.out.problems, validator.out.notices


def describe(pipeline: Pipeline) -> str:
    """``pipeline NAME, N stages, DAG a >> b, c``."""
    count = len(pipeline.stages)
    return (
        f"pipeline {pipeline.name}, {count} stage{'s' if count != 1 else ''}, "
        f"DAG {format_dag(pipeline.steps)}"
    )
