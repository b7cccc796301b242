"""The chart installed on the real test cluster: the service's pod becomes Ready and answers webhooks;
a signed push makes it deploy the example pipeline in its own namespace, with only the chart's RBAC,
stage pods downloading their code from it, statuses reaching a fake GitHub on the host; helm upgrade
keeps the run history, helm uninstall leaves the pipeline running. Both RBAC modes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.backends.kubernetes.api import KubeApi
from tests.fakes.github_api import FakeGitHub
from tests.gitops.gitserver import GitHttpServer
from tests.gitops.helpers import ZERO, SourceRepo, github_headers, github_push, wait_until
from tests.helm.cluster_release import (
    NODE_IP,
    Release,
    build_service_image,
    eventually,
    kubectl,
    port_forward,
    release_on_cluster,
)
from tests.helm.conftest import ROOT, Helm, KubeCluster
from tests.kubernetes.conftest import scratch_namespace

WEBHOOK_SECRET = "in-cluster-webhook-secret"


@pytest.fixture(scope="module")
def service_image(kube_cluster: KubeCluster) -> dict[str, str]:
    return build_service_image()


def values_for(image: dict[str, str], cluster: KubeCluster, **more: Any) -> dict[str, Any]:
    return {
        "image": {"repository": image["repository"], "tag": image["tag"], "pullPolicy": "Never"},
        "backendOptions": {"images": {"*": cluster.stage_image}},
        # The test reads runs through the API server's service proxy, which drops Authorization headers.
        "pages": {"access": "open"},
        "repositories": [
            {
                "url": f"http://{NODE_IP}:9/acme/pipelines.git",
                "provider": "github",
                "name": "acme/pipelines",
                "webhook_secret": {"value": WEBHOOK_SECRET},
            }
        ],
        **more,
    }


@pytest.fixture
def release(
    helm: Helm, kube_cluster: KubeCluster, service_image: dict[str, str], tmp_path: Path
) -> Iterator[Release]:
    with release_on_cluster(helm, kube_cluster, tmp_path, values_for(service_image, kube_cluster)) as release:
        yield release


def test_installed_service_becomes_ready_and_answers_a_signed_webhook_through_the_service_proxy(
    release: Release,
) -> None:
    notes = release.install()
    assert f"{release.fullname}.{release.namespace}.svc:80/webhooks/github" in notes
    release.ready_pod()
    body = json.dumps(
        {"zen": "Keep it logically awesome.", "hook_id": 1, "repository": {"full_name": "acme/pipelines"}}
    ).encode()

    answer = release.post("/webhooks/github", body, github_headers(body, WEBHOOK_SECRET, event="ping"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "pong"
    unsigned = release.post("/webhooks/github", body, github_headers(body, "wrong-secret", event="ping"))
    assert unsigned.status_code == 401
    assert release.get("/api/runs") == {"runs": []}
    # The scheduler's Role lets the one replica take the Lease that makes it the one firing schedules.
    pod = release.ready_pod()
    lease = eventually(
        lambda: release.api.find("Lease", "bodywork-gitops-scheduler", release.namespace), "the Lease"
    )
    assert lease["spec"]["holderIdentity"].startswith(pod)


# ---- end to end: a push deploys the example pipeline from the in-cluster service ---------------------

EXAMPLE = ROOT / "examples" / "train-and-serve"
FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture
def environment(api: KubeApi) -> Iterator[str]:
    """The pipeline's environment (and namespace)."""
    yield from scratch_namespace(api, "bw-e2e")


def example_repository(root: Path, large_file_mb: int) -> str:
    """Pushes examples/train-and-serve (and `large_file_mb` MB of random data) to acme/pipelines under
    `root`; returns the commit."""
    repo = SourceRepo(root, "acme/pipelines")
    files = {str(p.relative_to(EXAMPLE)): p.read_text() for p in EXAMPLE.rglob("*") if p.is_file()}
    if large_file_mb:
        (repo.work / "data").mkdir()
        (repo.work / "data" / "blob.bin").write_bytes(os.urandom(large_file_mb * 2**20))
    commit = repo.commit(files, "train and serve")
    repo.push()
    return commit


def wait_for_run(release: Release, run_id: str, timeout: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = release.get(f"/api/runs/{run_id}")
        return run if run["state"] in ("succeeded", "failed", "cancelled", "superseded") else None

    return eventually(finished, f"run {run_id} to finish", timeout=timeout)


@pytest.mark.timeout(1500)
@pytest.mark.parametrize(("mode", "large_file_mb"), [("cluster", 50), ("namespaces", 0)])
def test_a_signed_push_deploys_the_example_pipeline_from_the_service_in_the_cluster(
    helm: Helm,
    kube_cluster: KubeCluster,
    service_image: dict[str, str],
    api: KubeApi,
    environment: str,
    tmp_path: Path,
    mode: str,
    large_file_mb: int,
) -> None:
    if mode == "namespaces":  # Roles only: the namespace exists before, the service may not create one
        api.create("Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": environment}})
    commit = example_repository(tmp_path / "git", large_file_mb)
    with (
        GitHttpServer(tmp_path / "git", host=NODE_IP) as git_server,
        FakeGitHub(host=NODE_IP) as github,
        release_on_cluster(helm, kube_cluster, tmp_path, {}) as release,
    ):
        release.install(
            **values_for(
                service_image,
                kube_cluster,
                repositories=[
                    {
                        "url": git_server.url("acme/pipelines"),
                        "provider": "github",
                        "name": "acme/pipelines",
                        "api_base": github.api_base,
                        "webhook_secret": {"value": WEBHOOK_SECRET},
                        "api_token": {"value": github.token},
                        "deploy_branches": ["main"],
                        "environment": environment,
                    }
                ],
                config={"quiet_period_seconds": 0},
                rbac={"mode": mode, "namespaces": [environment] if mode == "namespaces" else []},
            )
        )
        first_pod = release.ready_pod()
        body = json.dumps(
            github_push(
                "acme/pipelines", "refs/heads/main", ZERO, commit, clone_url=git_server.url("acme/pipelines")
            )
        ).encode()

        accepted = release.post("/webhooks/github", body, github_headers(body, WEBHOOK_SECRET))

        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        run = wait_for_run(release, run_id, timeout=1200)
        logs = release.apiserver.client.get(f"{release.url}/api/runs/{run_id}/logs?format=text").text
        assert run["state"] == "succeeded", f"{run}\n{logs[-4000:]}"
        # Commit statuses reached the fake GitHub on the host, ending in success. They are sent after the
        # run is recorded, paced one call a second, so the last one may still be on its way.
        def final_status() -> bool:
            statuses = github.accepted(commit)
            return bool(statuses) and (statuses[-1].state, statuses[-1].context) == (
                "success", f"bodywork/{environment}"
            )

        wait_until(final_status, timeout=30, what="the run's final commit status")
        # Every stage pod downloaded the run's code from the service; no code travelled in ConfigMaps.
        fetched = [int(n) for n in re.findall(r"fetched (\d+) bytes of source from the service", logs)]
        assert len(fetched) == 3, logs[-4000:]  # prepare-data, train-model, scoring-service
        assert all(size > large_file_mb * 2**20 for size in fetched)  # far above ConfigMaps' ~7 MiB
        sources = api.list_objects("ConfigMap", environment, labels={"bodywork.dev/role": "source"})
        assert sources["items"] == []
        assert_scoring_service_answers(api, environment)
        assert_no_cluster_wide_rights(kube_cluster, release, mode)
        assert_the_runs_token_opens_its_code_until_its_secret_is_gone(api, release, environment)

        release.install("upgrade", image={**release.values["image"], "tag": build_service_image(1)["tag"]})
        release.ready_pod(other_than=first_pod)
        history = release.get("/api/runs")["runs"]
        assert [(r["id"], r["state"]) for r in history] == [(run_id, "succeeded")]

        release.helm_run("uninstall", release.name, "--wait")
        assert api.find("Namespace", environment) is not None
        assert_scoring_service_answers(api, environment)


def assert_scoring_service_answers(api: KubeApi, namespace: str) -> None:
    status, answer = api.service_proxy(
        "POST", namespace, "scoring-service", 5000, "iris/v1/score", json_body=FLOWER
    )
    assert status == 200, answer[:300]
    assert json.loads(answer)["species_prediction"] == "setosa"


def assert_no_cluster_wide_rights(cluster: KubeCluster, release: Release, mode: str) -> None:
    bindings = kubectl(cluster, "get", "clusterrolebindings", "-o", "name").split()
    bound = f"clusterrolebinding.rbac.authorization.k8s.io/{release.fullname}"
    assert (bound in bindings) is (mode == "cluster")


def assert_the_runs_token_opens_its_code_until_its_secret_is_gone(
    api: KubeApi, release: Release, namespace: str
) -> None:
    (secret,) = api.list_objects("Secret", namespace, labels={"bodywork.dev/role": "source"})["items"]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    name, token = secret["metadata"]["name"], data["source.token"]
    internal = f"http://{release.fullname}.{release.namespace}.svc:80"
    assert data["source.url"] == f"{internal}/sources/{namespace}/{name}"
    with (
        port_forward(release.cluster, release.namespace, release.fullname) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):

        def fetch(token: str) -> httpx.Response:
            return client.get(f"/sources/{namespace}/{name}", headers={"Authorization": f"Bearer {token}"})

        opened = fetch(token)
        assert opened.status_code == 200, opened.text[:300]
        assert hashlib.sha256(opened.content).hexdigest() == data["source.sha256"]
        assert fetch(token[:-1] + ("1" if token.endswith("0") else "0")).status_code == 401
        assert client.get(f"/sources/{namespace}/{name}").status_code == 401
        api.delete("Secret", name, namespace)  # the run's objects are gone: its token stops working
        assert fetch(token).status_code == 404
