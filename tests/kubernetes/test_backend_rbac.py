"""RBAC on the real cluster: a runner whose credentials may not create Jobs gets a clear error naming
the verb, the resource and the namespace, and the run fails with it (no traceback, no hang)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from runner.backends.kubernetes import KubernetesBackend
from runner.engine import Engine, RunRequest
from runner.events import EventBus, RunState, StageFinished, StageState
from tests.kubernetes.conftest import KubeCluster
from tests.kubernetes.test_backend_cluster import COMMIT_1, batch, pipeline
from tests.runner.builders import write


@pytest.fixture
def limited_kubeconfig(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A kubeconfig for a ServiceAccount that may do everything a run needs except create Jobs."""
    namespace = f"bw-rbac-{uuid.uuid4().hex[:8]}"
    admin = config.new_client_from_config(config_file=kube_cluster.kubeconfig)  # type: ignore[no-untyped-call]
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="runner"))
    )
    every = ["get", "list", "watch", "create", "update", "patch", "delete"]
    rules = [
        client.V1PolicyRule(
            api_groups=[""], resources=["serviceaccounts", "configmaps", "secrets"], verbs=every
        ),
        client.V1PolicyRule(
            api_groups=[""], resources=["pods", "pods/log", "events"], verbs=["get", "list", "watch"]
        ),
        client.V1PolicyRule(
            api_groups=["batch"], resources=["jobs"], verbs=["get", "list", "watch", "delete"]
        ),
    ]
    rbac.create_namespaced_role(
        namespace, client.V1Role(metadata=client.V1ObjectMeta(name="runner"), rules=rules)
    )
    subject = client.RbacV1Subject(kind="ServiceAccount", name="runner", namespace=namespace)
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="runner"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="runner"),
            subjects=[subject],
        ),
    )
    cluster_role = f"{namespace}-namespaces"
    rbac.create_cluster_role(
        client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=cluster_role),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["get", "patch"])],
        )
    )
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=cluster_role),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=cluster_role
            ),
            subjects=[subject],
        )
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    issued = core.create_namespaced_service_account_token("runner", namespace, request).status
    assert issued is not None, "the API server issued no token"
    token = issued.token
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": admin.configuration.host,
                    "certificate-authority": admin.configuration.ssl_ca_cert,
                },
            }
        ],
        "users": [{"name": "runner", "user": {"token": token}}],
        "contexts": [{"name": "runner", "context": {"cluster": "c", "user": "runner"}}],
        "current-context": "runner",
    }
    path = tmp_path / "limited.kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    try:
        yield str(path), namespace
    finally:
        rbac.delete_cluster_role_binding(cluster_role)
        rbac.delete_cluster_role(cluster_role)
        core.delete_namespace(namespace)
        admin.close()


def test_forbidden_job_creation_fails_the_stage_naming_verb_and_resource(
    kube_cluster: KubeCluster, limited_kubeconfig: tuple[str, str], tmp_path: Path
) -> None:
    kubeconfig, namespace = limited_kubeconfig
    source = write(tmp_path / "src", {"job.py": "print('never runs')\n"})
    pipe = pipeline("job", batch("job", "job.py"))
    events: list[object] = []

    async def scenario() -> RunState:
        backend = KubernetesBackend(kubeconfig=kubeconfig, images={"*": kube_cluster.stage_image})
        try:
            outcome = await Engine(backend, EventBus(events.append)).run(
                RunRequest(pipe, source, COMMIT_1, environment=namespace)
            )
            return outcome.state
        finally:
            await backend.close()

    assert asyncio.run(scenario()) is RunState.FAILED
    finished = next(e for e in events if isinstance(e, StageFinished))
    assert finished.state is StageState.FAILED
    assert "forbidden: the credentials in use may not create jobs kt-job-" in finished.reason
    assert f"in namespace {namespace}" in finished.reason
    assert "grant the verb 'create'" in finished.reason
