"""Shared text for the config tests: a valid bodywork.yaml to break in small ways."""

from __future__ import annotations

import textwrap

VALID = textwrap.dedent(
    """\
    version: "1.1"
    pipeline:
      name: demo
      docker_image: bodyworkml/bodywork-core:3.0
      DAG: prepare >> train, score
    stages:
      prepare:
        executable_module_path: prepare/main.py
        requirements:
          - pandas==1.4.2
        cpu_request: 0.5
        memory_request_mb: 100
        batch:
          max_completion_time_seconds: 60
          retries: 2
      train:
        executable_module_path: train/main.py
        cpu_request: 1
        memory_request_mb: 200
        batch:
          max_completion_time_seconds: 600
          retries: 0
      score:
        executable_module_path: score/serve.py
        args: ["--port", "5000"]
        cpu_request: 0.25
        memory_request_mb: 100
        secrets:
          API_KEY: api-credentials
        service:
          max_startup_time_seconds: 60
          replicas: 2
          port: 5000
          ingress: true
    logging:
      log_level: INFO
    """
)


def replace(old: str, new: str, text: str = VALID) -> str:
    """`text` with `old` (which must occur exactly once) replaced by `new`."""
    assert text.count(old) == 1, old
    return text.replace(old, new)
