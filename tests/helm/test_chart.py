"""The chart renders, lints and refuses bad values with the field named; no cluster needed."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatops.settings import SlackSettings
from gitops.settings import Settings, load_settings
from runner.backends.kubernetes.rest import REQUIRED_PERMISSIONS, Permission
from runner.backends.kubernetes.settings import KubernetesSettings
from tests.helm.conftest import CHART, GITHUB_REPOSITORY, GITLAB_REPOSITORY, Helm, find

SCHEDULER_ROLE = "bw-bodywork-gitops-scheduler"
FULL_VALUES: dict[str, Any] = {
    "repositories": [GITHUB_REPOSITORY, GITLAB_REPOSITORY],
    "apiToken": {"value": "api-token-from-values"},
    "config": {"public_url": "https://bodywork.example.com", "max_concurrent_runs": 2, "log_format": "json"},
    "pages": {
        "access": "proxy", "proxy_user_header": "X-Forwarded-Email", "trusted_proxies": ["127.0.0.1/32"]
    },
    "backendOptions": {"image_pull_policy": "Never", "images": {"*": "bodywork-stage:bookworm"}},
    "slack": {
        "enabled": True,
        "botToken": {"name": "slack", "key": "bot"},
        "signingSecret": {"name": "slack", "key": "signing"},
        "channel": "#deploys",
    },
}


def test_lint_strict_passes_with_defaults_and_with_every_feature_on(helm: Helm) -> None:
    helm.run("lint", "--strict", str(CHART))
    result = helm.run(
        "lint",
        "--strict",
        str(CHART),
        values={
            **FULL_VALUES,
            "ingress": {
                "enabled": True,
                "host": "bodywork.example.com",
                "className": "nginx",
                "tlsSecretName": "bodywork-tls",
            },
        },
    )
    assert "0 chart(s) failed" in result.stdout


def test_the_deployment_is_locked_down_and_probed(helm: Helm) -> None:
    objects = helm.template(FULL_VALUES)
    deployment = find(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(container["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes[mounts["/var/lib/bodywork"]["name"]]["persistentVolumeClaim"]["claimName"]
        == "bw-bodywork-gitops-data"
    )
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    # Existing Secrets are mounted as they are; values live in the chart's own Secret.
    secret_volumes = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secret_volumes == {"acme-hooks", "deploy-key", "slack", "bw-bodywork-gitops"}
    assert find(objects, "PersistentVolumeClaim")["metadata"]["annotations"] == {
        "helm.sh/resource-policy": "keep"
    }


def test_secret_values_are_only_in_the_secret_never_in_the_config_map(helm: Helm) -> None:
    objects = helm.template(FULL_VALUES)
    config_map = find(objects, "ConfigMap")
    rendered = json.dumps(config_map)
    for value in ["ghp_token-from-values", "gitlab-hook-secret", "api-token-from-values"]:
        assert value not in rendered
    secret = find(objects, "Secret")
    stored = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert stored == {
        "api-token": "api-token-from-values",
        "repository-0-api-token": "ghp_token-from-values",
        "repository-1-webhook-secret": "gitlab-hook-secret",
    }


def test_the_rendered_config_is_accepted_by_the_service_with_the_mounted_secrets(
    helm: Helm, tmp_path: Path
) -> None:
    """Mount what the pod would mount under tmp_path and load the config with the service's own loader."""
    objects = helm.template(FULL_VALUES)
    config_map = find(objects, "ConfigMap")["data"]
    existing = {
        "acme-hooks": {"github": "gh-hook", "gitlab-token": "gl-token"},
        "deploy-key": {"id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\n"},
        "slack": {"bot": "xoxb-1", "signing": "s3cret"},
    }
    chart_secret = find(objects, "Secret")
    existing["bw-bodywork-gitops"] = {
        k: base64.b64decode(v).decode() for k, v in chart_secret["data"].items()
    }
    for name, keys in existing.items():
        for key, value in keys.items():
            path = tmp_path / "secrets" / name / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value)
    (tmp_path / "config").mkdir()
    for key, value in config_map.items():
        (tmp_path / "config" / key).write_text(value)
    text = config_map["config.yaml"].replace("/etc/bodywork/", f"{tmp_path}/")
    (tmp_path / "config.yaml").write_text(text)

    settings = load_settings(tmp_path / "config.yaml", environ={})  # ChatOps reads the slack: section

    slack = settings.extensions["slack"]
    assert isinstance(slack, SlackSettings)
    assert slack.bot_token.reveal() == "xoxb-1" and slack.signing_secret is not None
    assert slack.signing_secret.reveal() == "s3cret" and slack.app_token is None
    assert (slack.channel, slack.command) == ("#deploys", "/bodywork")

    assert settings.backend == "kubernetes" and settings.port == 8000 and settings.host == "0.0.0.0"
    assert (settings.pages.access, settings.pages.proxy_user_header) == ("proxy", "X-Forwarded-Email")
    assert settings.log_format == "json"
    assert str(settings.data_dir) == "/var/lib/bodywork"
    assert settings.public_url == "https://bodywork.example.com" and settings.max_concurrent_runs == 2
    assert settings.api_token is not None and settings.api_token.reveal() == "api-token-from-values"
    assert dict(settings.backend_options) == {
        "image_pull_policy": "Never",
        "in_cluster": True,
        "images": {"*": "bodywork-stage:bookworm"},
        "source_url": "http://bw-bodywork-gitops.bodywork.svc:80",  # stage pods download code from it
    }
    KubernetesSettings.from_options(**settings.backend_options, source_dir=str(tmp_path))  # accepted
    github, gitlab = settings.repositories
    assert github.webhook_secret.reveal() == "gh-hook" and github.api_token is not None
    assert github.api_token.reveal() == "ghp_token-from-values" and github.preview_branches == ("feature/*",)
    assert gitlab.webhook_secret.reveal() == "gitlab-hook-secret" and gitlab.environment == "ml-production"
    assert gitlab.api_token is not None and gitlab.api_token.reveal() == "gl-token"
    assert gitlab.ssh_key_file == tmp_path / "secrets/deploy-key/id_ed25519"
    assert gitlab.known_hosts_file is not None
    assert gitlab.known_hosts_file.read_text() == GITLAB_REPOSITORY["known_hosts"]


def test_the_ingress_path_follows_the_prefix_of_the_public_url(helm: Helm) -> None:
    """The service is served under the path of its public URL (docs/pages.md): the Ingress routes that
    path to it, and the probes keep calling the pod at its root."""
    ingress = {"enabled": True, "host": "example.com", "tlsSecretName": "tls"}

    def rendered(values: dict[str, Any]) -> tuple[str, str, str]:
        objects = helm.template(values)
        [path] = find(objects, "Ingress")["spec"]["rules"][0]["http"]["paths"]
        config = yaml.safe_load(find(objects, "ConfigMap")["data"]["config.yaml"])
        (container,) = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        return path["path"], path["pathType"], config["service"]["public_url"]

    prefixed = {"config": {"public_url": "https://example.com/ml/bodywork/"}, "ingress": ingress}
    assert rendered(prefixed) == ("/ml/bodywork", "Prefix", "https://example.com/ml/bodywork")
    at_root = {"config": {"public_url": "https://example.com"}, "ingress": ingress}
    assert rendered(at_root) == ("/", "Prefix", "https://example.com")
    by_path = {"ingress": {**ingress, "path": "/bodywork"}}  # no public_url: the Ingress makes it
    assert rendered(by_path) == ("/bodywork", "Prefix", "https://example.com/bodywork")
    assert rendered({"ingress": ingress}) == ("/", "Prefix", "https://example.com")
    helm.run("lint", "--strict", str(CHART), values=prefixed)


@pytest.mark.parametrize(
    ("values", "field", "problem"),
    [
        ({"replicaCount": -1}, "/replicaCount", "minimum"),
        ({"replicaCount": 2}, "/replicaCount", "maximum"),
        ({"replicas": 1}, "replicas", "additional properties"),
        ({"config": {"port": 9000}}, "/config", "port"),
        ({"config": {"public_url": "https://example.com/bodywork?team=ml"}}, "/config/public_url", "pattern"),
        ({"config": {"public_url": "https://example.com/ml team"}}, "/config/public_url", "pattern"),
        ({"rbac": {"mode": "namespaces"}}, "/rbac", "namespaces"),
        ({"rbac": {"mode": "everything"}}, "/rbac/mode", "cluster"),
        (
            {"repositories": [{**GITHUB_REPOSITORY, "provider": "bitbucket"}]},
            "/repositories/0/provider",
            "gitlab",
        ),
        (
            {"repositories": [{**GITHUB_REPOSITORY, "webhook_secret": "plain-text"}]},
            "/repositories/0/webhook_secret",
            "object",
        ),
        (
            {"repositories": [{**GITHUB_REPOSITORY, "environment": "Not_A_Label"}]},
            "/repositories/0/environment",
            "pattern",
        ),
        ({"backendOptions": {"image_pul_policy": "Never"}}, "/backendOptions", "image_pul_policy"),
        ({"slack": {"enabled": True, "signingSecret": {"value": "s"}}}, "/slack/botToken", "minProperties"),
        (
            {"slack": {"enabled": True, "channel": "#deploys", "botToken": {"value": "xoxb-1"}}},
            "/slack/appToken",  # neither request URLs (a signing secret) nor Socket Mode (an app token)
            "minProperties",
        ),
    ],
)
def test_a_wrong_value_fails_with_the_field_named(
    helm: Helm, values: dict[str, Any], field: str, problem: str
) -> None:
    result = helm.run("template", "bw", str(CHART), values=values, check=False)
    assert result.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr and problem in result.stderr, result.stderr


def test_cluster_mode_grants_a_cluster_role_and_namespaces_mode_only_roles(helm: Helm) -> None:
    cluster = helm.template({"rbac": {"mode": "cluster"}})
    role = find(cluster, "ClusterRole")
    assert {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["get", "create", "patch", "delete"],
    } in role["rules"]
    binding = find(cluster, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bw-bodywork-gitops", "namespace": "bodywork"}
    ]
    assert [o["metadata"]["name"] for o in cluster if o["kind"] in ("Role", "RoleBinding")] == [
        SCHEDULER_ROLE,
        SCHEDULER_ROLE,
    ]

    scoped = helm.template({"rbac": {"mode": "namespaces", "namespaces": ["team-a", "team-b"]}})
    assert not [o for o in scoped if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = [o for o in scoped if o["kind"] == "Role" and o["metadata"]["name"] != SCHEDULER_ROLE]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(rule["resources"] != ["namespaces"] for r in roles for rule in r["rules"])
    assert roles[0]["rules"] == [r for r in role["rules"] if r["resources"] != ["namespaces"]]
    bindings = [o for o in scoped if o["kind"] == "RoleBinding" and o["metadata"]["name"] != SCHEDULER_ROLE]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    config = yaml.safe_load(find(scoped, "ConfigMap")["data"]["config.yaml"])
    assert config["service"]["backend_options"]["manage_namespaces"] is False


def test_the_schema_knows_exactly_the_settings_the_service_and_backend_read() -> None:
    """values.schema.json is written by hand: it must follow the settings it types."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config_keys = set(schema["properties"]["config"]["properties"])
    set_by_chart = {"host", "port", "data_dir", "backend", "backend_options", "repositories", "api_token"}
    set_by_chart |= {"extensions", "pages"}  # their own top-level sections (slack:, pages:), not service:
    assert config_keys == {f.name for f in dataclasses.fields(Settings)} - set_by_chart
    backend_keys = set(schema["properties"]["backendOptions"]["properties"])
    set_by_chart = {"in_cluster", "source_url", "source_dir", "manage_namespaces"}
    assert backend_keys == {f.name for f in dataclasses.fields(KubernetesSettings)} - {
        "kubeconfig",
        "context",
        *set_by_chart,
    }


def granted(rules: list[dict[str, Any]]) -> set[Permission]:
    return {
        Permission(group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_roles_grant_exactly_what_the_service_calls(helm: Helm) -> None:
    """REQUIRED_PERMISSIONS is derived from the calls the code makes (tests/kubernetes/test_permissions.py):
    the pipelines' rules, and the schedules' Lease in the service's own namespace."""
    cluster = helm.template({"rbac": {"mode": "cluster"}})
    scheduler = find(cluster, "Role", SCHEDULER_ROLE)
    assert scheduler["metadata"]["namespace"] == "bodywork"
    leases = {p for p in REQUIRED_PERMISSIONS if p.resource == "leases"}
    assert granted(scheduler["rules"]) == leases
    assert granted(find(cluster, "ClusterRole")["rules"]) == set(REQUIRED_PERMISSIONS) - leases

    scoped = helm.template({"rbac": {"mode": "namespaces", "namespaces": ["team-a"]}})
    namespaced = {p for p in REQUIRED_PERMISSIONS if p.resource not in ("namespaces", "leases")}
    assert granted(find(scoped, "Role", "bw-bodywork-gitops")["rules"]) == namespaced
    assert granted(find(scoped, "Role", SCHEDULER_ROLE)["rules"]) == leases
