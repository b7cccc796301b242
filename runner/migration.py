"""Writing a pipeline as bodywork.yaml text (schema "1.1"). Pure: no YAML library, no I/O.

:func:`to_yaml` renders any :class:`Pipeline` so that it loads back into an equal model; strings are
written plain when that is unambiguous and double-quoted otherwise. :func:`upgrade_1_0_text` turns a
schema "1.0" file into "1.1" by editing two lines, so comments and layout survive.
"""

from __future__ import annotations

import json
import re

from runner.dag import format_dag
from runner.model import Pipeline, Stage
from runner.schedule import schedule_mapping

# Plain scalars that YAML reads back as the same string: no indicators, no numbers or booleans.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./:@=<>~+\-]*")
_RESERVED = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "~"}
_VERSION_LINE = re.compile(r"""^version:\s*(["']?)1\.0\1\s*(#.*)?$""", re.MULTILINE)
_PROJECT_LINE = re.compile(r"^project:(\s*(#.*)?)$", re.MULTILINE)


def scalar(text: str) -> str:
    """`text` as a YAML scalar that reads back as the same string."""
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not text.endswith(":"):
        return text
    return json.dumps(text, ensure_ascii=False)


def _number(value: float) -> str:
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _stage_lines(stage: Stage) -> list[str]:
    lines = [
        f"  {scalar(stage.name)}:",
        f"    executable_module_path: {scalar(stage.executable_module_path)}",
    ]
    if stage.args:
        lines.append("    args:")
        lines += [f"      - {scalar(arg)}" for arg in stage.args]
    if stage.requirements:
        lines.append("    requirements:")
        lines += [f"      - {scalar(req)}" for req in stage.requirements]
    lines += [
        f"    cpu_request: {_number(stage.cpu_request)}",
        f"    memory_request_mb: {stage.memory_request_mb}",
    ]
    if stage.secrets:
        lines.append("    secrets:")
        lines += [f"      {scalar(env)}: {scalar(secret)}" for env, secret in stage.secrets]
    if stage.batch is not None:
        lines += [
            "    batch:",
            f"      max_completion_time_seconds: {stage.batch.max_completion_time_seconds}",
            f"      retries: {stage.batch.retries}",
        ]
    if stage.service is not None:
        service = stage.service
        lines += [
            "    service:",
            f"      max_startup_time_seconds: {service.max_startup_time_seconds}",
            f"      replicas: {service.replicas}",
            f"      port: {service.port}",
            f"      ingress: {'true' if service.ingress else 'false'}",
        ]
    return lines


def to_yaml(pipeline: Pipeline) -> str:
    """`pipeline` as the text of a schema "1.1" bodywork.yaml, stages in their original order."""
    settings = pipeline.pipeline
    lines = [
        'version: "1.1"',
        "pipeline:",
        f"  name: {scalar(settings.name)}",
        f"  docker_image: {scalar(settings.docker_image)}",
        f"  DAG: {scalar(format_dag(settings.dag))}",
    ]
    for key in ("run_on_failure", "namespace", "secrets_group"):
        value = getattr(settings, key)
        if value is not None:
            lines.append(f"  {key}: {scalar(value)}")
    if settings.schedule is not None:
        lines.append("  schedule:")
        for key, value in schedule_mapping(settings.schedule).items():
            text = scalar(value) if isinstance(value, str) else str(value).lower()
            lines.append(f"    {key}: {text}")
    lines.append("stages:")
    for stage in pipeline.stages.values():
        lines += _stage_lines(stage)
    lines += ["logging:", f"  log_level: {pipeline.log_level}"]
    return "\n".join(lines) + "\n"


def upgrade_1_0_text(text: str) -> str | None:
    """`text` (schema "1.0") with `version: "1.1"` and `pipeline:`, or None when the two top-level
    lines cannot be found as written by hand (the caller then renders the model instead)."""
    if len(_VERSION_LINE.findall(text)) != 1 or len(_PROJECT_LINE.findall(text)) != 1:
        return None
    text = _VERSION_LINE.sub(lambda m: 'version: "1.1"' + (f" {m[2]}" if m[2] else ""), text)
    return _PROJECT_LINE.sub(lambda m: f"pipeline:{m[1]}", text)
