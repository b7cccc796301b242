"""`manage_namespaces: false` (Roles in fixed namespaces, the chart's `rbac.mode: namespaces`): the
backend never creates, labels or deletes a namespace, and names a missing one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.kubernetes import manifests as m
from runner.backends.kubernetes.api import KubeApi
from runner.events import RunState
from tests.kubernetes.conftest import KubeCluster, scratch_namespace
from tests.kubernetes.test_backend_cluster import backend_for, batch, pipeline, run_on_new_backend
from tests.runner.builders import write


@pytest.fixture
def namespace(api: KubeApi) -> Iterator[str]:
    yield from scratch_namespace(api, "bw-fixed")


def test_a_missing_namespace_fails_the_run_saying_to_create_it_and_is_not_created(
    kube_cluster: KubeCluster, api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"hello.py": "print('hello')\n"})
    pipe = pipeline("hello", batch("hello", "hello.py"))

    outcome, _ = run_on_new_backend(kube_cluster, pipe, source, namespace, manage_namespaces=False)

    assert outcome.state is RunState.FAILED
    assert f"namespace {namespace} does not exist; create it first" in outcome.reason
    assert api.find("Namespace", namespace) is None


def test_an_existing_namespace_is_used_as_it_is_and_left_by_teardown(
    kube_cluster: KubeCluster, api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    api.create("Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    source = write(tmp_path, {"hello.py": "print('hello from a fixed namespace')\n"})
    pipe = pipeline("hello", batch("hello", "hello.py"))

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, namespace, manage_namespaces=False)

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert "hello from a fixed namespace" in recorder.logs("hello")
    labels = api.get("Namespace", namespace)["metadata"].get("labels") or {}
    assert m.MANAGED_BY not in labels and not [key for key in labels if key.startswith(m.GROUP)]

    async def tear_down() -> None:
        backend = backend_for(kube_cluster, manage_namespaces=False)
        try:
            await backend.teardown(namespace)
        finally:
            await backend.close()

    asyncio.run(tear_down())
    assert api.find("Namespace", namespace) is not None
    jobs = api.list_objects("Job", namespace, labels={m.MANAGED_BY: m.MANAGER})["items"]
    assert jobs == []  # our objects went, the namespace stayed
