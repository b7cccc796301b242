"""The typed pipeline model that every config format loads into. Pure data, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from runner.schedule import Schedule

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class StageKind(StrEnum):
    BATCH = "batch"
    SERVICE = "service"


@dataclass(frozen=True)
class BatchSettings:
    max_completion_time_seconds: int
    retries: int


@dataclass(frozen=True)
class ServiceSettings:
    max_startup_time_seconds: int
    replicas: int
    port: int
    ingress: bool = False


@dataclass(frozen=True)
class Stage:
    name: str
    executable_module_path: str
    cpu_request: float
    memory_request_mb: int
    args: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    # ENV_VAR -> secret name; the secret's key equals the env var's name.
    secrets: tuple[tuple[str, str], ...] = ()
    batch: BatchSettings | None = None
    service: ServiceSettings | None = None

    @property
    def kind(self) -> StageKind:
        return StageKind.SERVICE if self.service is not None else StageKind.BATCH

    @property
    def is_notebook(self) -> bool:
        return self.executable_module_path.endswith(".ipynb")


Step = tuple[str, ...]


@dataclass(frozen=True)
class PipelineSettings:
    name: str
    docker_image: str
    dag: tuple[Step, ...]
    run_on_failure: str | None = None
    namespace: str | None = None
    secrets_group: str | None = None
    schedule: Schedule | None = None
    # An extension for the local backend: the Python version of the stages (runner.python_version).
    python_version: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """A whole, validated bodywork.yaml (or its ini-layout equivalent)."""

    version: str
    pipeline: PipelineSettings
    stages: dict[str, Stage]
    log_level: str = "INFO"
    # Notices that are not errors, e.g. "schema 1.0 is the older schema; run `bodywork migrate`".
    notices: tuple[str, ...] = field(default=(), compare=False)
    # The format the pipeline was read from: "1.1", "1.0" (the `project:` schema) or "ini" (the
    # bodywork.ini layout). `version` is always the schema the model follows ("1.1").
    source_schema: str = field(default="1.1", compare=False)

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.pipeline.dag

    def stage(self, name: str) -> Stage:
        return self.stages[name]

    def stages_in_dag(self) -> list[Stage]:
        return [self.stages[name] for step in self.steps for name in step]

    def service_stages(self) -> list[Stage]:
        return [s for s in self.stages_in_dag() if s.service is not None]

    @property
    def default_namespace(self) -> str:
        return self.pipeline.namespace or dns_label(self.pipeline.name)


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, max_length: int = 63) -> str:
    """`text` made a valid RFC 1123 label: lowercase alphanumerics and '-', at most 63 characters."""
    label = _NOT_DNS.sub("-", text.lower()).strip("-")
    return label[:max_length].rstrip("-") or "default"
