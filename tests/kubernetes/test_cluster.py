"""Smoke tests of the test cluster itself, through the official `kubernetes` client only."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.conftest import KubeCluster

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 120.0) -> T:
    """Return probe()'s first truthy answer; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            answer = probe()
            if answer:
                return answer
        except ApiException as error:
            last_error = error
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})")


@pytest.fixture(scope="module")
def api(kube_cluster: KubeCluster) -> Iterator[client.ApiClient]:
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kube_cluster.kubeconfig
    )
    yield api_client
    api_client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"bw-smoke-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Pods may only be created once the namespace's default ServiceAccount exists.
    eventually(lambda: core.read_namespaced_service_account("default", name),
               f"ServiceAccount {name}/default")
    yield name
    core.delete_namespace(name)


def test_node_is_ready(api: client.ApiClient, kube_cluster: KubeCluster) -> None:
    nodes = client.CoreV1Api(api).list_node().items
    names = [n.metadata.name if n.metadata else None for n in nodes]
    ready = [
        name for name, n in zip(names, nodes, strict=True)
        if any(c.type == "Ready" and c.status == "True" for c in (n.status and n.status.conditions) or [])
    ]
    assert ready, f"no Ready node among {names}"
    if kube_cluster.node_name:
        assert kube_cluster.node_name in ready


def test_pod_runs_python_from_stage_image_and_its_log_is_readable(
    api: client.ApiClient, kube_cluster: KubeCluster, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="print-42"),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(
                name="main", image=kube_cluster.stage_image, image_pull_policy="IfNotPresent",
                command=["python3", "-c", "print(42)"],
            )],
        ),
    )
    core.create_namespaced_pod(namespace, pod)

    def finished() -> str | None:
        status = core.read_namespaced_pod("print-42", namespace).status
        phase = status.phase if status else None
        return phase if phase in ("Succeeded", "Failed") else None

    assert eventually(finished, "pod print-42 to finish") == "Succeeded"
    # Log streaming goes API server -> kubelet, so this also checks that path.
    assert core.read_namespaced_pod_log("print-42", namespace) == "42\n"


def test_service_answers_through_the_api_server_proxy(
    api: client.ApiClient, kube_cluster: KubeCluster, namespace: str
) -> None:
    labels = {"app": "web"}
    serve = ("mkdir -p /srv && echo hello-bodywork > /srv/hello.txt && cd /srv"
             " && exec python3 -m http.server 8080")
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web", labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="web", image=kube_cluster.stage_image, image_pull_policy="IfNotPresent",
                    command=["sh", "-c", serve],
                    ports=[client.V1ContainerPort(container_port=8080)],
                    readiness_probe=client.V1Probe(
                        tcp_socket=client.V1TCPSocketAction(port=8080), period_seconds=1),
                )]),
            ),
        ),
    )
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment)
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=8080, target_port=8080)]),
    )
    core = client.CoreV1Api(api)
    core.create_namespaced_service(namespace, service)

    def available() -> bool:
        status = client.AppsV1Api(api).read_namespaced_deployment("web", namespace).status
        return bool(status and status.available_replicas)

    eventually(available, "deployment web to be available")
    body = eventually(
        lambda: core.connect_get_namespaced_service_proxy_with_path("web:8080", namespace, "hello.txt"),
        "service web:8080 to answer through the API server proxy",
        timeout=60,
    )
    assert body.strip() == "hello-bodywork"
