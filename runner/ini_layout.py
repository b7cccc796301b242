"""The older layout (Bodywork 0.x and 1.x): a ``bodywork.ini`` at the root and, for every stage in the
DAG, a folder named after the stage holding ``config.ini``, ``requirements.txt`` and the module.
The ini files themselves are read by :mod:`runner.ini_files`.

Read as Bodywork 1.0.1 read it, except that a missing ``INGRESS`` is read as ``False`` with a notice
(as Bodywork 0.2.23 did), a DAG wrapped in quotes is reported as such, and unknown keys are errors.
Problems are ``<file> [<section>] <KEY> -> <message>``.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

from runner.dag import parse_dag
from runner.hints import CPU_RULE, MODULE_RULE, MODULE_SUFFIXES, close_names, quoted, secret_problem
from runner.ini_files import INI_FILE, MAX_INI_BYTES, Ini, Report, check_keys, integer, read_ini, value
from runner.model import (
    LOG_LEVELS,
    BatchSettings,
    Pipeline,
    PipelineSettings,
    ServiceSettings,
    Stage,
)
from runner.yaml_schema import K8S_NAME, SCHEMA_VERSION

STAGE_FILE = "config.ini"
REQUIREMENTS_FILE = "requirements.txt"

PROJECT_KEYS = {
    "default": ("PROJECT_NAME", "DOCKER_IMAGE"),
    "workflow": ("DAG",),
    "logging": ("LOG_LEVEL",),
}
STAGE_KEYS = {
    "default": ("STAGE_TYPE", "EXECUTABLE_SCRIPT", "CPU_REQUEST", "MEMORY_REQUEST_MB"),
    "batch": ("MAX_COMPLETION_TIME_SECONDS", "RETRIES"),
    "service": ("MAX_STARTUP_TIME_SECONDS", "REPLICAS", "PORT", "INGRESS"),
}
INI_NOTICE = (
    "bodywork.ini -> the bodywork.ini layout (Bodywork 0.x and 1.x) is the oldest format; it "
    "loads, but run `bodywork migrate` to write the equivalent bodywork.yaml"
)


def read_project_ini(
    path: Path, label: str = INI_FILE
) -> tuple[tuple[str, str, str, str] | None, list[str]]:
    """(PROJECT_NAME, DOCKER_IMAGE, DAG, LOG_LEVEL) of a bodywork.ini, or None and its problems."""
    report = Report()
    ini = read_ini(path, label, report, PROJECT_KEYS)
    if ini is None:
        return None, report.problems
    check_keys(ini, PROJECT_KEYS, report)
    name = value(ini, "default", "PROJECT_NAME", report)
    if name is not None and not K8S_NAME.fullmatch(name):
        report.problems.append(
            f"{ini.where('default', 'PROJECT_NAME')} -> must be letters, "
            f"digits, '-' and '.', got {quoted(name)}"
        )
    image = value(ini, "default", "DOCKER_IMAGE", report)
    dag = value(ini, "workflow", "DAG", report)
    level = value(ini, "logging", "LOG_LEVEL", report)
    if level is not None and level not in LOG_LEVELS:
        report.problems.append(
            f"{ini.where('logging', 'LOG_LEVEL')} -> must be one of "
            f"{', '.join(LOG_LEVELS)}, got {quoted(level)}"
        )
    if report.problems or name is None or image is None or dag is None or level is None:
        return None, report.problems
    return (name, image, dag, level), []


def _secrets(ini: Ini, report: Report) -> tuple[tuple[str, str], ...]:
    """``[secrets]`` ENV_VAR = secret-name pairs, checked as the YAML layout checks them."""
    pairs = tuple(ini.sections.get("secrets", {}).items())
    for variable, secret in pairs:
        if problem := secret_problem(variable, secret):
            report.problems.append(f"{ini.where('secrets', variable)} -> {problem}")
    return pairs


def read_stage(root: Path, name: str) -> tuple[Stage | None, list[str], list[str]]:
    """The stage in folder `root/name`, or None; with its problems and notices."""
    report = Report()
    folder = root / name
    ini = read_ini(folder / STAGE_FILE, f"{name}/{STAGE_FILE}", report, STAGE_KEYS)
    requirements = _requirements(folder / REQUIREMENTS_FILE, f"{name}/{REQUIREMENTS_FILE}", report)
    if ini is None:
        return None, report.problems, report.notices
    check_keys(ini, STAGE_KEYS, report, free_sections=("secrets",))
    kind = value(ini, "default", "STAGE_TYPE", report)
    if kind is not None and kind.lower() not in ("batch", "service"):
        report.problems.append(
            f"{ini.where('default', 'STAGE_TYPE')} -> must be batch or service, got {quoted(kind)}"
        )
        kind = None
    script = _script(ini, folder, name, report)
    cpu = _cpu(ini, report)
    memory = integer(ini, "default", "MEMORY_REQUEST_MB", report)
    secrets = _secrets(ini, report)
    batch: BatchSettings | None = None
    service: ServiceSettings | None = None
    if kind is not None and kind.lower() == "batch":
        timeout = integer(ini, "batch", "MAX_COMPLETION_TIME_SECONDS", report)
        retries = integer(ini, "batch", "RETRIES", report)
        if timeout is not None and retries is not None:
            batch = BatchSettings(max_completion_time_seconds=timeout, retries=retries)
    elif kind is not None:
        service = _service(ini, report)
    if (
        report.problems
        or kind is None
        or script is None
        or cpu is None
        or memory is None
        or requirements is None
        or (batch is None and service is None)
    ):
        return None, report.problems, report.notices
    return (
        Stage(
            name=name,
            executable_module_path=f"{name}/{script}",
            cpu_request=cpu,
            memory_request_mb=memory,
            requirements=requirements,
            secrets=secrets,
            batch=batch,
            service=service,
        ),
        [],
        report.notices,
    )


def _script(ini: Ini, folder: Path, name: str, report: Report) -> str | None:
    script = value(ini, "default", "EXECUTABLE_SCRIPT", report)
    if script is None:
        return None
    where = ini.where("default", "EXECUTABLE_SCRIPT")
    relative = PurePosixPath(script)
    if relative.is_absolute() or ".." in relative.parts:
        report.problems.append(
            f"{where} -> {quoted(script)} leaves the stage folder; name a file inside {name}/"
        )
        return None
    if not script.endswith(MODULE_SUFFIXES):
        report.problems.append(f"{where} -> {MODULE_RULE}, got {quoted(script)}")
        return None
    if not (folder / script).is_file():
        present = sorted(p.name for p in folder.glob("*") if p.suffix in MODULE_SUFFIXES)
        hint = f" (it holds {', '.join(present)})" if present else ""
        report.problems.append(
            f"{where} -> {quoted(script)} does not exist in {name}/{hint}; "
            "add the file or correct EXECUTABLE_SCRIPT"
        )
        return None
    return script


def _cpu(ini: Ini, report: Report) -> float | None:
    text = value(ini, "default", "CPU_REQUEST", report)
    if text is None:
        return None
    try:
        cpu = float(text)
    except ValueError:
        cpu = -1.0
    if not math.isfinite(cpu) or cpu < 0:
        report.problems.append(
            f"{ini.where('default', 'CPU_REQUEST')} -> must be {CPU_RULE}, got {quoted(text)}"
        )
        return None
    return cpu


def _service(ini: Ini, report: Report) -> ServiceSettings | None:
    startup = integer(ini, "service", "MAX_STARTUP_TIME_SECONDS", report)
    replicas = integer(ini, "service", "REPLICAS", report)
    port = integer(ini, "service", "PORT", report, 1, 65535)
    values = ini.sections.get("service", {})
    ingress: bool | None = False
    if "service" not in ini.sections:
        ingress = None
    elif "INGRESS" not in values:
        report.notices.append(
            f"{ini.where('service', 'INGRESS')} -> missing; read as False (no "
            "ingress), as Bodywork 0.2 did; Bodywork 1.0 required it"
        )
    elif values["INGRESS"] in ("True", "False"):
        ingress = values["INGRESS"] == "True"
    else:
        report.problems.append(
            f"{ini.where('service', 'INGRESS')} -> must be True or False, got {quoted(values['INGRESS'])}"
        )
        ingress = None
    if startup is None or replicas is None or port is None or ingress is None:
        return None
    return ServiceSettings(
        max_startup_time_seconds=startup, replicas=replicas, port=port, ingress=ingress
    )


def _requirements(path: Path, label: str, report: Report) -> tuple[str, ...] | None:
    if not path.is_file():
        report.problems.append(
            f"{label} -> missing; create it, one requirement a line (it may be empty)"
        )
        return None
    try:
        text = path.read_bytes()[:MAX_INI_BYTES].decode("utf-8")
    except (OSError, UnicodeDecodeError):
        report.problems.append(f"{label} -> cannot be read as UTF-8 text")
        return None
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def load_ini_layout(
    root: Path, ini_name: str = INI_FILE
) -> tuple[Pipeline | None, list[str], list[str]]:
    """The pipeline of the ini layout at `root`, or None; with every problem and notice."""
    settings, problems = read_project_ini(root / ini_name, ini_name)
    if settings is None:
        return None, problems, []
    name, image, dag_text, level = settings
    notices = [INI_NOTICE]
    steps, dag_problems = parse_dag(dag_text)
    where = f"{ini_name} [workflow] DAG"
    problems += [f"{where} -> {message}" for message in dag_problems]
    if dag_problems:
        return None, problems, notices
    try:
        folders = sorted(p.name for p in root.iterdir() if (p / STAGE_FILE).is_file())
    except OSError:
        folders = []
    stages: dict[str, Stage] = {}
    for step in steps:
        for stage_name in step:
            if not (root / stage_name).is_dir():
                problems.append(
                    f"{where} -> names stage {quoted(stage_name)}, but there is no "
                    f"folder {stage_name}/ next to {ini_name}"
                    f"{close_names(stage_name, folders)}"
                )
                continue
            stage, stage_problems, stage_notices = read_stage(root, stage_name)
            problems += stage_problems
            notices += stage_notices
            if stage is not None:
                stages[stage_name] = stage
    if problems:
        return None, problems, notices
    pipeline = Pipeline(
        version=SCHEMA_VERSION,
        pipeline=PipelineSettings(name=name, docker_image=image, dag=steps),
        stages=stages,
        log_level=level,
        notices=tuple(notices),
        source_schema="ini",
    )
    return pipeline, [], notices
