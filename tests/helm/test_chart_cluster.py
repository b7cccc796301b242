"""The chart's manifests against the real API server (server-side dry run), in both RBAC modes."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from runner.backends.kubernetes.api import KubeApi
from tests.helm.conftest import (
    CHART,
    GITHUB_REPOSITORY,
    GITLAB_REPOSITORY,
    Helm,
    KubeCluster,
    kubectl_binary,
)


@pytest.fixture
def namespaces(kube_cluster: KubeCluster) -> Iterator[list[str]]:
    """The release's namespace and two pipeline namespaces, deleted afterwards."""
    api = KubeApi(kubeconfig=kube_cluster.kubeconfig)
    names = [f"bw-helm-{uuid.uuid4().hex[:6]}-{suffix}" for suffix in ("svc", "team-a", "team-b")]
    for name in names:
        api.create("Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield names
    for name in names:
        api.delete("Namespace", name)
    api.close()


def server_dry_run(cluster: KubeCluster, manifests: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            kubectl_binary(cluster),
            "--kubeconfig",
            cluster.kubeconfig,
            "apply",
            "--dry-run=server",
            "-o",
            "name",
            "-f",
            "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=60,
    )


VALUES: dict[str, Any] = {
    "repositories": [GITHUB_REPOSITORY, GITLAB_REPOSITORY],
    "apiToken": {"value": "api-token"},
    "ingress": {"enabled": True, "host": "bodywork.example.com", "className": "nginx"},
    "slack": {
        "enabled": True,
        "botToken": {"value": "xoxb-1"},
        "appToken": {"value": "xapp-1"},
        "channel": "#deploys",
    },
}


@pytest.mark.parametrize("mode", ["cluster", "namespaces"])
def test_rendered_manifests_are_accepted_by_the_api_server(
    helm: Helm, kube_cluster: KubeCluster, namespaces: list[str], mode: str
) -> None:
    release_namespace, *pipeline_namespaces = namespaces
    values = {**VALUES, "rbac": {"mode": mode, "namespaces": pipeline_namespaces}}
    rendered = helm.run("template", "bw", str(CHART), "--namespace", release_namespace, values=values).stdout
    # helm template leaves namespaced objects without a namespace: kubectl puts them in the release's.
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    for document in documents:
        if document["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            document["metadata"].setdefault("namespace", release_namespace)

    result = server_dry_run(kube_cluster, yaml.safe_dump_all(documents))

    assert result.returncode == 0, result.stderr
    accepted = sorted(result.stdout.split())
    expected_rbac = (
        [
            "clusterrole.rbac.authorization.k8s.io/bw-bodywork-gitops",
            "clusterrolebinding.rbac.authorization.k8s.io/bw-bodywork-gitops",
        ]
        if mode == "cluster"
        else ["role.rbac.authorization.k8s.io/bw-bodywork-gitops"] * 2
        + ["rolebinding.rbac.authorization.k8s.io/bw-bodywork-gitops"] * 2
    )
    assert accepted == sorted(
        [
            "configmap/bw-bodywork-gitops",
            "deployment.apps/bw-bodywork-gitops",
            "ingress.networking.k8s.io/bw-bodywork-gitops",
            "persistentvolumeclaim/bw-bodywork-gitops-data",
            "secret/bw-bodywork-gitops",
            "service/bw-bodywork-gitops",
            "serviceaccount/bw-bodywork-gitops",
            "role.rbac.authorization.k8s.io/bw-bodywork-gitops-scheduler",
            "rolebinding.rbac.authorization.k8s.io/bw-bodywork-gitops-scheduler",
            *expected_rbac,
        ]
    )


def test_helm_install_with_a_wrong_value_fails_naming_the_field(
    helm: Helm, kube_cluster: KubeCluster, namespaces: list[str]
) -> None:
    result = helm.run(
        "install",
        "bw",
        str(CHART),
        "--namespace",
        namespaces[0],
        values={"replicaCount": -1},
        kubeconfig=kube_cluster.kubeconfig,
        check=False,
    )
    assert result.returncode != 0
    assert "/replicaCount" in result.stderr and "minimum" in result.stderr, result.stderr
    listed = helm.run("list", "--namespace", namespaces[0], "--short", kubeconfig=kube_cluster.kubeconfig)
    assert listed.stdout.strip() == ""


def test_install_notes_print_the_webhook_urls_and_the_slack_request_urls_or_socket_mode(
    helm: Helm, kube_cluster: KubeCluster, namespaces: list[str]
) -> None:
    def install_notes(values: dict[str, Any]) -> str:
        """The NOTES of a server-side dry run of installing the chart with `values`."""
        return helm.run(
            "install", "bw", str(CHART), "--namespace", namespaces[0], "--dry-run=server", values=values,
            kubeconfig=kube_cluster.kubeconfig,
        ).stdout

    http_slack = {
        "enabled": True,
        "botToken": {"value": "xoxb-1"},
        "signingSecret": {"value": "s"},
        "channel": "#deploys",
    }
    values = {
        **VALUES,
        "slack": http_slack,
        "ingress": {"enabled": True, "host": "bodywork.example.com", "tlsSecretName": "bodywork-tls"},
    }
    notes = install_notes(values)
    assert "https://bodywork.example.com/webhooks/github" in notes
    assert "https://bodywork.example.com/webhooks/gitlab" in notes
    assert "https://bodywork.example.com/slack/commands" in notes
    assert "https://bodywork.example.com/slack/interactions" in notes
    assert "Socket Mode" not in notes

    socket_mode = {**values, "slack": {**http_slack, "appToken": {"value": "xapp-1"}}}
    notes = install_notes(socket_mode)
    assert "Socket Mode is on" in notes and "/slack/commands" not in notes
