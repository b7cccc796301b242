"""The Kubernetes backend's service inventory (runner.backends.base.ServiceInventory) on the real test
cluster: what ChatOps' ``services`` and ``delete`` ask of it, in the backend's own namespaces."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.base import RemovedService, ServiceInventory
from runner.backends.kubernetes import KubernetesBackend
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.errors import NotFound, Unreachable
from tests.kubernetes.conftest import KubeCluster, scratch_namespace
from tests.kubernetes.test_backend_cluster import (
    HTTP_SERVICE,
    backend_for,
    pipeline,
    run_on_new_backend,
    service,
)
from tests.runner.builders import write

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def namespace(api: KubeApi) -> Iterator[str]:
    yield from scratch_namespace(api, "bw-inv")


def unmanaged_deployment(name: str, image: str) -> dict[str, object]:
    """A Deployment someone else made (no bodywork labels), with no replicas."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": image, "imagePullPolicy": "Never"}]},
            },
        },
    }


def test_services_are_listed_and_removed_in_the_fixed_namespace_every_environment_maps_to(
    kube_cluster: KubeCluster, api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"serve.py": HTTP_SERVICE.format(version="v1")})
    pipe = pipeline("web", service("web", "serve.py"))
    outcome, _ = run_on_new_backend(kube_cluster, pipe, source, namespace)
    assert outcome.succeeded, outcome.reason
    api.create("Deployment", unmanaged_deployment("theirs", kube_cluster.stage_image), namespace)

    async def scenario() -> None:
        backend = backend_for(kube_cluster, namespace=namespace)  # every environment: this namespace
        inventory: ServiceInventory = backend
        try:
            assert isinstance(backend, ServiceInventory)
            assert inventory.namespace_for("staging") == inventory.namespace_for("production") == namespace
            live = await inventory.list_services()
            assert (namespace, "web") in live and (namespace, "theirs") not in live

            with pytest.raises(NotFound, match="not managed by bodywork; not deleting it"):
                await inventory.remove_service(namespace, "theirs")
            removed = await inventory.remove_service(namespace, "web")

            assert removed == RemovedService(namespace, "web", ("Service", "Deployment"))
            assert (namespace, "web") not in await inventory.list_services()
            assert await inventory.remove_service(namespace, "web") is None
        finally:
            await backend.close()

    asyncio.run(scenario())
    assert api.find("Deployment", "theirs", namespace) is not None
    assert api.find("Deployment", "web", namespace) is None and api.find("Service", "web", namespace) is None


def test_an_unreachable_cluster_is_raised_for_the_caller_to_fall_back(tmp_path: Path) -> None:
    """No cluster needed: nothing listens where this kubeconfig points."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )

    async def scenario() -> None:
        backend = KubernetesBackend(kubeconfig=str(kubeconfig), api_retry_delays=())
        try:
            with pytest.raises(Unreachable):
                await backend.list_services()
        finally:
            await backend.close()

    asyncio.run(scenario())
