"""On Kubernetes a stage shares nothing with the process that runs it (issue 13, item 10): neither its
environment (a webhook secret set there does not reach the pod) nor a Kubernetes credential (no
service-account token is mounted), on the real test cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.kubernetes.api import KubeApi
from runner.events import RunState
from tests.kubernetes.conftest import KubeCluster
from tests.kubernetes.test_backend_cluster import batch, environment, pipeline, run_on_new_backend
from tests.runner.builders import write

__all__ = ["environment"]

SNOOP = """import os
token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
print("token mounted:", os.path.exists(token))
print("variables:", " ".join(sorted(os.environ)))
print("service secret:", os.environ.get("BODYWORK_TEST_SERVICE_SECRET", "absent"))
"""


@pytest.fixture
def service_secret() -> Iterator[str]:
    value = "service-only-secret-4242"
    os.environ["BODYWORK_TEST_SERVICE_SECRET"] = value
    yield value
    del os.environ["BODYWORK_TEST_SERVICE_SECRET"]


def test_a_stage_pod_sees_neither_the_runners_environment_nor_a_token(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path, service_secret: str
) -> None:
    source = write(tmp_path, {"snoop.py": SNOOP})
    outcome, recorder = run_on_new_backend(kube_cluster, pipeline("snoop", batch("snoop", "snoop.py")),
                                           source, environment)
    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    logs = recorder.logs("snoop")
    assert "token mounted: False" in logs
    assert "service secret: absent" in logs
    assert not any(service_secret in line for line in logs)
