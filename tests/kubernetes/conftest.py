"""The real Kubernetes tier: a session-wide test cluster started by `scripts/cluster.py up`.

Every test that uses the `kube_cluster` fixture is marked `kubernetes` (tests/conftest.py); the
others here (units, the fake watch server) run without a cluster. The cluster is real (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet running pods with containerd and
runc); when it cannot be provided the fixture fails the tests with the reason, it never skips them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.backends.kubernetes.api import KubeApi

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = ROOT / "scripts" / "cluster.py"


@dataclass(frozen=True)
class KubeCluster:
    """What a test needs to use the cluster."""

    kubeconfig: str
    stage_image: str  # a Debian bookworm image with python3, pip and venv; use imagePullPolicy IfNotPresent
    kubernetes_version: str
    node_name: str | None  # None when KUBECONFIG named an external cluster
    state_dir: str


def loopback_kubeconfig(folder: Path, port: int) -> Path:
    """``folder/kubeconfig``, naming a plain-HTTP API server on loopback ``port`` (token ``t``)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = folder / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


@contextlib.contextmanager
def _alarm_paused() -> Iterator[None]:
    """Keep the first-run build (tens of minutes) out of pytest-timeout's SIGALRM budget for the test."""
    if not hasattr(signal, "setitimer"):
        yield
        return
    remaining, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if remaining or interval:
            signal.setitimer(signal.ITIMER_REAL, remaining, interval)


@pytest.fixture(scope="session")
def kube_cluster() -> KubeCluster:
    """Start (or reuse) the test cluster; fail with the script's output when it cannot be provided."""
    with _alarm_paused():
        try:
            result = subprocess.run(
                [sys.executable, str(CLUSTER_SCRIPT), "up"],
                capture_output=True, text=True, stdin=subprocess.DEVNULL, env=dict(os.environ),
                timeout=float(os.environ.get("BODYWORK_CLUSTER_UP_TIMEOUT", 5400)),
            )
        except subprocess.TimeoutExpired as error:
            output = (error.stderr or b"").decode(errors="replace")  # bytes even with text=True
            pytest.fail(f"scripts/cluster.py up timed out after {error.timeout:.0f}s:\n{output}",
                        pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"the Kubernetes test cluster could not be started (scripts/cluster.py up exited "
            f"{result.returncode}):\n{result.stderr[-6000:]}\n{result.stdout[-2000:]}",
            pytrace=False,
        )
    state_dir = Path(os.environ.get("BODYWORK_CLUSTER_STATE", "/tmp/bodywork-test-cluster"))
    info = json.loads((state_dir / "cluster.json").read_text())
    return KubeCluster(
        kubeconfig=info["kubeconfig"],
        stage_image=info["stage_image"],
        kubernetes_version=info["kubernetes_version"],
        node_name=info["node_name"],
        state_dir=str(state_dir),
    )


@pytest.fixture(scope="module")
def api(kube_cluster: KubeCluster) -> Iterator[KubeApi]:
    """A client of the test cluster, for a test to look at (and clean up) what the code made."""
    client = KubeApi(kubeconfig=kube_cluster.kubeconfig)
    yield client
    client.close()


def scratch_namespace(api: KubeApi, prefix: str) -> Iterator[str]:
    """The body of a fixture: a fresh namespace name for one test, deleted afterwards, whoever created
    it (the code under test, or the test itself)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    yield name
    api.delete("Namespace", name)
