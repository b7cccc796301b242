"""The ``stages:`` section: each stage's settings, and its ``batch:`` or ``service:`` section."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from runner.hints import MODULE_RULE, MODULE_SUFFIXES, show
from runner.model import BatchSettings, ServiceSettings, Stage
from runner.yaml_io import YamlPath
from runner.yaml_schema.checker import Checker
from runner.yaml_schema.keys import BATCH_KEYS, ENV_VAR, K8S_NAME, SERVICE_KEYS, STAGE_KEYS, STAGE_NAME


def read_stages(check: Checker, data: dict[object, Any]) -> dict[str, Stage] | None:
    if "stages" not in data:
        return None
    value = data["stages"]
    if not isinstance(value, dict) or not value:
        check.problem(
            ("stages",),
            "must be a mapping of stage names to stage settings, got "
            f"{show(value) if value != {} else 'an empty mapping'}",
        )
        return None
    stages: dict[str, Stage] = {}
    complete = True
    for name, config in value.items():
        stage = read_stage(check, name, config)
        if stage is None:
            complete = False
        else:
            stages[stage.name] = stage
    return stages if complete else None


def read_stage(check: Checker, name: object, config: Any) -> Stage | None:
    path: YamlPath = ("stages", name)
    if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
        check.problem(
            path,
            "a stage name must be letters, digits, '-', '_' and '.', not starting with '-' or "
            f"'.'; got {show(name)}",
            at_key=True,
        )
        return None
    if not isinstance(config, dict):
        check.problem(path, f"must be a mapping of stage settings, got {show(config)}")
        return None
    check.unknown_keys(config, path, STAGE_KEYS)
    module = _module_path(
        check, check.required(config, (*path, "executable_module_path")), (*path, "executable_module_path")
    )
    cpu = check.number(check.required(config, (*path, "cpu_request")), (*path, "cpu_request"))
    memory = check.integer(check.required(config, (*path, "memory_request_mb")), (*path, "memory_request_mb"))
    args: tuple[str, ...] | None = ()
    if "args" in config:
        args = check.string_list(config["args"], (*path, "args"))
    requirements: tuple[str, ...] | None = ()
    if "requirements" in config:
        requirements = check.string_list(config["requirements"], (*path, "requirements"))
    secrets = _secrets(check, config, path)
    kind = _kind(check, config, path)
    if module is None or cpu is None or memory is None or args is None or requirements is None:
        return None
    if secrets is None or kind is None:
        return None
    batch, service = kind
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


def _kind(
    check: Checker, config: dict[object, Any], path: YamlPath
) -> tuple[BatchSettings | None, ServiceSettings | None] | None:
    """The stage's batch or service settings (exactly one of them), or None after a problem."""
    if "batch" in config and "service" in config:
        check.problem(
            path, "has both batch: and service:; a stage is one or the other, remove one", at_key=True
        )
        return None
    if "batch" in config:
        batch = _batch(check, config, (*path, "batch"))
        return None if batch is None else (batch, None)
    if "service" in config:
        service = _service(check, config, (*path, "service"))
        return None if service is None else (None, service)
    check.problem(
        path,
        "needs a batch: or a service: section (exactly one); add e.g. "
        "batch: {max_completion_time_seconds: 60, retries: 2}",
        at_key=True,
    )
    return None


def _module_path(check: Checker, value: Any, path: YamlPath) -> str | None:
    text = check.string(value, path)
    if text is None:
        return None
    posix = PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        check.problem(
            path,
            f"{show(text)} leaves the repository; give a path "
            "relative to the folder holding bodywork.yaml, without '..'",
        )
        return None
    if not text.endswith(MODULE_SUFFIXES):
        check.problem(path, f"{MODULE_RULE}, got {show(text)}")
        return None
    return text


def _secrets(check: Checker, config: dict[object, Any], path: YamlPath) -> tuple[tuple[str, str], ...] | None:
    if "secrets" not in config:
        return ()
    spath = (*path, "secrets")
    value = config["secrets"]
    if not isinstance(value, dict):
        check.problem(spath, "must be a mapping ENV_VAR: secret-name, got " + show(value))
        return None
    pairs: list[tuple[str, str]] = []
    for env_var, secret in value.items():
        epath = (*spath, env_var)
        if not isinstance(env_var, str) or not ENV_VAR.fullmatch(env_var):
            check.problem(
                epath,
                "is not an environment variable name (letters, digits and '_', not starting with a digit)",
                at_key=True,
            )
            continue
        name = check.string(secret, epath, K8S_NAME, "a secret name: letters, digits, '-' and '.'")
        if name is not None:
            pairs.append((env_var, name))
    return tuple(pairs) if len(pairs) == len(value) else None


def _batch(check: Checker, config: dict[object, Any], path: YamlPath) -> BatchSettings | None:
    section = check.section(config, path)
    if section is None:
        return None
    check.unknown_keys(section, path, BATCH_KEYS)
    timeout_path = (*path, "max_completion_time_seconds")
    timeout = check.integer(check.required(section, timeout_path), timeout_path)
    retries = check.integer(check.required(section, (*path, "retries")), (*path, "retries"))
    if timeout is None or retries is None:
        return None
    return BatchSettings(max_completion_time_seconds=timeout, retries=retries)


def _service(check: Checker, config: dict[object, Any], path: YamlPath) -> ServiceSettings | None:
    section = check.section(config, path)
    if section is None:
        return None
    check.unknown_keys(section, path, SERVICE_KEYS)
    startup = check.integer(
        check.required(section, (*path, "max_startup_time_seconds")), (*path, "max_startup_time_seconds")
    )
    replicas = check.integer(check.required(section, (*path, "replicas")), (*path, "replicas"))
    port = check.integer(check.required(section, (*path, "port")), (*path, "port"), 1, 65535)
    ingress = check.boolean(check.required(section, (*path, "ingress")), (*path, "ingress"))
    if startup is None or replicas is None or port is None or ingress is None:
        return None
    return ServiceSettings(max_startup_time_seconds=startup, replicas=replicas, port=port, ingress=ingress)
