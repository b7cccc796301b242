"""The vocabulary of bodywork.yaml: versions, the keys of each section, the value patterns, and the
examples that the "missing" problems suggest.

A new key goes into its section's ``*_KEYS`` here (and into ``EXAMPLES`` when it is required), then is
read where its section is: :mod:`.document` for ``pipeline`` and ``logging``, :mod:`.stages` for a
stage and its ``batch`` or ``service``.
"""

from __future__ import annotations

import re

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
    "schedule",
    "python_version",  # our extension, read by runner.python_version
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

EXAMPLES = {
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
