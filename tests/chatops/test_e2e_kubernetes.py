"""``/bodywork delete`` on the real test cluster: a service deployed by a pushed run is removed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from runner.backends.kubernetes.api import KubeApi
from tests.gitops.helpers import ZERO, SourceRepo, pipeline_files, wait_until
from tests.kubernetes.conftest import KubeCluster, kube_cluster

from .conftest import VISITOR, SlackServiceFactory

__all__ = ["kube_cluster"]
pytestmark = pytest.mark.timeout(600)  # marked kubernetes by its kube_cluster fixture

SERVER = (
    "import http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'model')\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "print('serving', flush=True)\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8000), H).serve_forever()\n"
)


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[tuple[str, KubeApi]]:
    api = KubeApi(kubeconfig=kube_cluster.kubeconfig)
    name = f"bw-chatops-{uuid.uuid4().hex[:8]}"
    yield name, api
    api.delete("Namespace", name)
    api.close()


def test_delete_removes_a_service_from_the_cluster(
    slack_service: SlackServiceFactory,
    github_repo: SourceRepo,
    kube_cluster: KubeCluster,
    namespace: tuple[str, KubeApi],
) -> None:
    name, api = namespace
    files = pipeline_files(dag="prepare >> serve", scripts={"serve.py": SERVER})
    files["bodywork.yaml"] = files["bodywork.yaml"].replace(
        "  serve:\n    executable_module_path: serve.py\n    cpu_request: 0.1\n    memory_request_mb: 64\n"
        "    batch:\n      max_completion_time_seconds: 30\n      retries: 0\n",
        "  serve:\n    executable_module_path: serve.py\n    cpu_request: 0.05\n    memory_request_mb: 32\n"
        "    service:\n      max_startup_time_seconds: 120\n      replicas: 1\n      port: 8000\n"
        "      ingress: false\n",
    )
    sha = github_repo.commit(files)
    github_repo.push()
    backend = (
        "  backend: kubernetes\n  backend_options:\n"
        f"    kubeconfig: {kube_cluster.kubeconfig}\n    images: {{'*': {kube_cluster.stage_image}}}"
    )
    service = slack_service(backend=backend, repo_extra=f"    environment: {name}")
    run = service.running.wait_for(service.push("refs/heads/main", ZERO, sha), timeout=400)
    assert run["state"] == "succeeded", (run["reason"], run["stages"])
    assert [d["metadata"]["name"] for d in api.list_objects("Deployment", name)["items"]]

    assert f"`serve` in `{name}`" in service.command("services", VISITOR).json()["text"]
    assert "You may not `delete`" in service.command(f"delete serve {name}", VISITOR).json()["text"]
    answer = service.command(f"delete serve {name}")

    assert answer.status_code == 200, answer.text
    text = answer.json()["text"]
    if text == "Working on it…":  # answered through the response_url
        wait_until(lambda: service.slack.responses(answer.response_url), what="the answer")  # type: ignore[attr-defined]
        text = service.slack.responses(answer.response_url)[0]["text"]  # type: ignore[attr-defined]
    assert text.startswith(f"Deleted service serve in {name} (Deployment, Service")
    wait_until(lambda: not api.list_objects("Deployment", name)["items"], what="the Deployment to go")
    assert not api.list_objects("Service", name)["items"]
    assert "No services deployed" in service.command("services", VISITOR).json()["text"]
