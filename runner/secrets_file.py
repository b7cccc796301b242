"""Secrets for local runs, read from a file the user names with ``--secrets-file``, never from the repo.

The file maps secret names to their keys and values, as ``bodywork secrets create`` stores them in a
cluster; pipelines with a ``secrets_group`` read the secrets of that group first::

    secrets:
      database: {DB_USER: alice, DB_PASSWORD: "..."}
    groups:
      prod:
        database: {DB_USER: app, DB_PASSWORD: "..."}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import FatalError
from runner.model import Pipeline
from runner.yaml_io import YamlError, parse_yaml

Secrets = Mapping[str, Mapping[str, str]]


def load_secrets_file(path: Path, group: str | None) -> dict[str, dict[str, str]]:
    """Secret name -> {key: value} for a pipeline in `group`. Error messages never quote values."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FatalError(f"cannot read the secrets file {path}: {error.strerror}") from None
    try:
        document = parse_yaml(text).value or {}
    except YamlError as error:
        raise FatalError(f"secrets file {path}: {error}") from None
    if not isinstance(document, dict) or not set(document) <= {"secrets", "groups"}:
        raise FatalError(
            f"secrets file {path}: expected a mapping with the keys `secrets` and/or `groups`; "
            "see `bodywork run --help` for the format"
        )
    secrets = _secret_map(document.get("secrets") or {}, f"{path}: secrets")
    groups = document.get("groups") or {}
    if not isinstance(groups, dict):
        raise FatalError(f"secrets file {path}: groups must map group names to secrets")
    if group is not None and group in groups:
        secrets.update(_secret_map(groups[group] or {}, f"{path}: groups.{group}"))
    return secrets


def _secret_map(value: Any, where: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise FatalError(f"{where} must map secret names to {{KEY: value}} mappings")
    result: dict[str, dict[str, str]] = {}
    for name, keys in value.items():
        if not isinstance(keys, dict) or not all(isinstance(k, str) for k in keys):
            raise FatalError(f"{where}.{name} must map keys to values, like {{API_KEY: ...}}")
        # Values may be written unquoted (numbers, booleans); stages receive them as text.
        result[str(name)] = {k: "" if v is None else str(v) for k, v in keys.items()}
    return result


def missing_secrets_message(pipeline: Pipeline, secrets: Secrets, secrets_file: Path | None) -> str | None:
    """Every secret key the pipeline's stages need and `secrets` lacks, said at once with the fix."""
    handler = pipeline.pipeline.run_on_failure
    stages = pipeline.stages_in_dag() + ([pipeline.stage(handler)] if handler in pipeline.stages else [])
    missing = [
        f"stage {stage.name} needs key {variable!r} of secret {name!r}"
        for stage in stages
        for variable, name in stage.secrets
        if variable not in secrets.get(name, {})
    ]
    if not missing:
        return None
    group = pipeline.pipeline.secrets_group
    if secrets_file is None:
        fix = (
            "no secrets file was given: write the secrets into a YAML file (its format is in "
            "`bodywork run --help`) and pass it with --secrets-file"
        )
    else:
        where = f"`secrets:` or `groups: {group}:`" if group else "`secrets:`"
        fix = f"add them under {where} in the secrets file {secrets_file}"
    return f"{'; '.join(missing)}; {fix}"
