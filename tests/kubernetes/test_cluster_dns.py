"""Cluster DNS (CoreDNS): a stage reaches another stage's service by name, as Bodywork pipelines do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.kubernetes.api import KubeApi
from runner.events import RunState
from tests.kubernetes.conftest import KubeCluster
from tests.kubernetes.test_backend_cluster import (
    HTTP_SERVICE,
    batch,
    pipeline,
    run_on_new_backend,
    service,
)
from tests.runner.builders import write

# A new Service reaches CoreDNS's cache and kube-proxy's rules a moment after its pods are ready (both
# watch the API server), so the caller retries briefly, as a client of a just-deployed service must.
CALLER = """
import json, sys, time, urllib.request
namespace = sys.argv[1]
for url in ["http://echo:8000/", f"http://echo.{namespace}.svc.cluster.local:8000/"]:
    request = urllib.request.Request(url, data=json.dumps({"from": "caller"}).encode(), method="POST")
    for attempt in range(30):
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                print(url, "->", json.loads(response.read())["echo"], flush=True)
            break
        except OSError as error:
            print("retry:", url, error, flush=True)
            time.sleep(0.5)
"""


@pytest.fixture
def environment(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"bw-dns-{uuid.uuid4().hex[:8]}"
    yield name
    api = KubeApi(kubeconfig=kube_cluster.kubeconfig)
    api.delete("Namespace", name)
    api.close()


def test_a_stage_calls_another_stages_service_by_its_short_name_and_its_full_name(
    kube_cluster: KubeCluster, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"echo.py": HTTP_SERVICE.format(version="v1"), "caller.py": CALLER})
    caller = batch("caller", "caller.py", args=(environment,))
    pipe = pipeline("echo >> caller", service("echo", "echo.py"), caller)

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)

    assert outcome.state is RunState.SUCCEEDED, (outcome.reason, recorder.logs("caller")[-3:])
    printed = [line for line in recorder.logs("caller") if not line.startswith(("[bodywork]", "retry:"))]
    assert printed == [
        "http://echo:8000/ -> {'from': 'caller'}",
        f"http://echo.{environment}.svc.cluster.local:8000/ -> {{'from': 'caller'}}",
    ]
