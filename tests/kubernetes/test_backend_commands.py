"""`bodywork secrets|services|deployments` against the real test cluster, through the CLI entry point."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops.cli import main
from runner.backends.kubernetes.api import KubeApi
from tests.kubernetes.conftest import KubeCluster
from tests.kubernetes.test_backend_cluster import (
    COMMIT_1,
    HTTP_SERVICE,
    batch,
    pipeline,
    run_on_new_backend,
    service,
)
from tests.runner.builders import write


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"bw-cli-{uuid.uuid4().hex[:8]}"
    yield name
    api = KubeApi(kubeconfig=kube_cluster.kubeconfig)
    api.delete("Namespace", name)
    api.close()


def bodywork(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_secrets_services_and_deployments_commands(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = ("--kubeconfig", kube_cluster.kubeconfig, "--namespace", namespace)
    code, out, _ = bodywork(
        capsys, "secrets", "create", "creds", "--group", "team", "--data", "TOKEN=very-secret-1", *cluster
    )
    assert code == 0 and "created secret creds (group team, keys TOKEN)" in out
    code, _, err = bodywork(
        capsys, "secrets", "create", "creds", "--group", "team", "--data", "TOKEN=x", *cluster
    )
    assert code == 1 and "pass --replace" in err
    code, out, _ = bodywork(capsys, "secrets", "list", *cluster)
    assert code == 0 and "team" in out and "TOKEN" in out and "very-secret-1" not in out

    source = write(
        tmp_path,
        {
            "serve.py": HTTP_SERVICE.format(version="v1"),
            "job.py": "import os\nprint(len(os.environ['TOKEN']))\n",
        },
    )
    pipe = pipeline(
        "job >> web",
        batch("job", "job.py", secrets=(("TOKEN", "creds"),)),
        service("web", "serve.py"),
        name="cli-demo",
        secrets_group="team",
    )

    outcome, _ = run_on_new_backend(kube_cluster, pipe, source, namespace)
    assert outcome.succeeded, outcome.reason

    code, out, _ = bodywork(capsys, "services", "list", *cluster)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith(namespace))
    assert f"http://web.{namespace}.svc.cluster.local:8000" in row
    assert "1/1" in row and COMMIT_1[:12] in row

    code, out, _ = bodywork(capsys, "deployments", "list", *cluster)
    assert code == 0 and "cli-demo" in out and "web" in out

    code, out, _ = bodywork(capsys, "services", "delete", "web", *cluster)
    assert code == 0 and "deleted service web" in out
    code, _, err = bodywork(capsys, "services", "delete", "web", *cluster)
    assert code == 1 and "no service web" in err

    code, out, _ = bodywork(capsys, "deployments", "delete", "cli-demo", *cluster)
    assert code == 0 and "Job" in out
    code, out, _ = bodywork(capsys, "secrets", "delete", "creds", "--group", "team", *cluster)
    assert code == 0
    code, out, _ = bodywork(capsys, "secrets", "list", *cluster)
    assert "no secrets" in out


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = bodywork(capsys, "services", "list", "--kubeconfig", str(tmp_path / "missing"))
    assert code == 1 and "cannot load Kubernetes credentials" in err
