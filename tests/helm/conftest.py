"""The Helm chart's tests: helm built from its Go module (scripts/cluster.py helm), the chart in helm/.

Tests that need the real cluster ask for `kube_cluster` and are marked `kubernetes`; the others only
run the helm binary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubernetes.conftest import KubeCluster, _alarm_paused, api, kube_cluster

__all__ = ["Helm", "KubeCluster", "api", "kube_cluster"]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm"


@dataclass(frozen=True)
class Helm:
    binary: str
    work: Path

    def run(
        self,
        *args: str,
        values: dict[str, Any] | None = None,
        check: bool = True,
        kubeconfig: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        command = [self.binary, *args]
        if values is not None:
            values_file = self.work / f"values-{len(list(self.work.iterdir()))}.json"
            values_file.write_text(json.dumps(values))
            command += ["--values", str(values_file)]
        if kubeconfig:
            command += ["--kubeconfig", kubeconfig]
        env = {
            "HOME": str(self.work),
            "PATH": "/usr/bin:/bin",
            "HELM_CACHE_HOME": str(self.work / "cache"),
            "HELM_CONFIG_HOME": str(self.work / "config"),
            "HELM_DATA_HOME": str(self.work / "data"),
        }
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}\n{result.stdout}")
        return result

    def template(
        self, values: dict[str, Any] | None = None, *args: str, namespace: str = "bodywork"
    ) -> list[dict[str, Any]]:
        """The chart's rendered objects."""
        output = self.run("template", "bw", str(CHART), "--namespace", namespace, *args, values=values).stdout
        return [doc for doc in yaml.safe_load_all(output) if doc]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm from ~/.cache/bodywork-gitops/helm/<version>/ (built from its Go module on first use)."""
    with _alarm_paused():
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "cluster.py"), "helm"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=3600,
        )
    if result.returncode != 0:
        pytest.fail(
            f"helm could not be built (scripts/cluster.py helm):\n{result.stderr[-4000:]}", pytrace=False
        )
    return Helm(result.stdout.strip(), tmp_path_factory.mktemp("helm"))


def kubectl_binary(cluster: KubeCluster) -> str:
    """The cluster's kubectl (cluster.json names it; built with the cluster's binaries)."""
    info = json.loads((Path(cluster.state_dir) / "cluster.json").read_text())
    cache = Path(os.environ.get("BODYWORK_CACHE_DIR", Path.home() / ".cache" / "bodywork-gitops"))
    return str(info.get("kubectl") or cache / "k8s" / cluster.kubernetes_version / "bin" / "kubectl")


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {[o['metadata'] for o in matches]}"
    return matches[0]


GITHUB_REPOSITORY: dict[str, Any] = {
    "url": "https://github.com/acme/pipelines.git",
    "provider": "github",
    "webhook_secret": {"name": "acme-hooks", "key": "github"},
    "api_token": {"value": "ghp_token-from-values"},
    "deploy_branches": ["main"],
    "preview_branches": ["feature/*"],
}
GITLAB_REPOSITORY: dict[str, Any] = {
    "url": "ssh://git@gitlab.example.com:2222/group/ml-project.git",
    "provider": "gitlab",
    "api_base": "https://gitlab.example.com",
    "webhook_secret": {"value": "gitlab-hook-secret"},
    "api_token": {"name": "acme-hooks", "key": "gitlab-token"},
    "ssh_key": {"name": "deploy-key", "key": "id_ed25519"},
    "known_hosts": "gitlab.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKey\n",
    "environment": "ml-production",
}
