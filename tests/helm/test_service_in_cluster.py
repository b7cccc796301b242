"""The chart installed on the real test cluster: the service's pod becomes Ready and answers webhooks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gitops.helpers import github_headers
from tests.helm.cluster_release import NODE_IP, Release, build_service_image, release_on_cluster
from tests.helm.conftest import Helm, KubeCluster

WEBHOOK_SECRET = "in-cluster-webhook-secret"


@pytest.fixture(scope="module")
def service_image(kube_cluster: KubeCluster) -> dict[str, str]:
    return build_service_image()


def values_for(image: dict[str, str], cluster: KubeCluster, **more: Any) -> dict[str, Any]:
    return {
        "image": {"repository": image["repository"], "tag": image["tag"], "pullPolicy": "Never"},
        "backendOptions": {"images": {"*": cluster.stage_image}},
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
