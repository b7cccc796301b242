"""A release of the chart on the test cluster, for the end-to-end tests: the service's image built and
imported (scripts/service_image.py), a hostPath PersistentVolume for its store, helm install, and the
service reached through the API server's service proxy with the admin client certificate."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from runner.backends.kubernetes.api import KubeApi
from tests.helm.conftest import CHART, ROOT, Helm, KubeCluster, kubectl_binary
from tests.kubernetes.conftest import _alarm_paused

T = TypeVar("T")
NODE_IP = "10.244.0.1"  # the test cluster's bridge: pods reach services on the host at this address
SERVICE_USER = 10001


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 180.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = probe()
        if answer:
            return answer
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def build_service_image(revision: int = 0) -> dict[str, str]:
    """The service's image, built once per tree (and revision), imported into the cluster's containerd."""
    command = [
        sys.executable,
        str(ROOT / "scripts" / "service_image.py"),
        "build",
        "--import",
        "--revision",
        str(revision),
    ]
    with _alarm_paused():  # a first build (pip downloads) is kept out of the test's own time limit
        result = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1200
        )
    if result.returncode != 0:
        pytest.fail(f"the service image could not be built:\n{result.stderr[-4000:]}", pytrace=False)
    meta: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return meta


class ApiServer:
    """Raw HTTPS calls to the API server with the kubeconfig's client certificate (service proxy)."""

    def __init__(self, kubeconfig: str, folder: Path) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        files = {}
        for name, data in [
            ("ca", cluster["certificate-authority-data"]),
            ("crt", user["client-certificate-data"]),
            ("key", user["client-key-data"]),
        ]:
            files[name] = folder / f"api.{name}"
            files[name].write_bytes(base64.b64decode(data))
            files[name].chmod(0o600)
        self.base = cluster["server"]
        context = ssl.create_default_context(cafile=str(files["ca"]))
        context.load_cert_chain(str(files["crt"]), str(files["key"]))
        self.client = httpx.Client(verify=context, timeout=30)

    def service(self, namespace: str, name: str, port: int = 80) -> str:
        return f"{self.base}/api/v1/namespaces/{namespace}/services/{name}:{port}/proxy"

    def close(self) -> None:
        self.client.close()


@dataclass
class Release:
    helm: Helm
    cluster: KubeCluster
    api: KubeApi
    apiserver: ApiServer
    namespace: str
    name: str
    storage_class: str
    values: dict[str, Any]

    @property
    def fullname(self) -> str:
        return f"{self.name}-bodywork-gitops"

    @property
    def url(self) -> str:
        return self.apiserver.service(self.namespace, self.fullname)

    def helm_run(self, *args: str, values: dict[str, Any] | None = None) -> str:
        return self.helm.run(
            *args,
            "--namespace",
            self.namespace,
            values=values,
            kubeconfig=self.cluster.kubeconfig,
            timeout=300,
        ).stdout

    def install(self, command: str = "install", **overrides: Any) -> str:
        self.values = {**self.values, **overrides}
        return self.helm_run(command, self.name, str(CHART), values=self.values)

    def ready_pod(self, other_than: str | None = None) -> str:
        """The name of the service's pod once it is Ready (and is not `other_than`)."""
        selector = f"app.kubernetes.io/instance={self.name}"

        def ready() -> str | None:
            for pod in self.api.list_objects("Pod", self.namespace, labels=selector)["items"]:
                name = pod["metadata"]["name"]
                conditions = pod.get("status", {}).get("conditions") or []
                if name != other_than and any(
                    c["type"] == "Ready" and c["status"] == "True" for c in conditions
                ):
                    return str(name)
            return None

        return eventually(ready, f"a Ready pod of release {self.name}", timeout=180)

    def get(self, path: str) -> Any:
        response = self.apiserver.client.get(f"{self.url}{path}")
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:300]}"
        return response.json()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.apiserver.client.post(f"{self.url}{path}", content=body, headers=headers)


def kubectl(cluster: KubeCluster, *args: str, input: str | None = None, check: bool = True) -> str:
    binary = kubectl_binary(cluster)
    result = subprocess.run(
        [binary, "--kubeconfig", cluster.kubeconfig, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


@contextmanager
def port_forward(cluster: KubeCluster, namespace: str, service: str, port: int = 80) -> Iterator[str]:
    """``kubectl port-forward`` to a Service; yields its local base URL. (The API server's service proxy
    drops the Authorization header, which the sources endpoint needs.)"""
    command = [
        kubectl_binary(cluster),
        "--kubeconfig",
        cluster.kubeconfig,
        "--namespace",
        namespace,
        "port-forward",
        f"service/{service}",
        f"0:{port}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8000"
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if match is None:
            pytest.fail(
                f"kubectl port-forward said {line!r}: {process.stderr.read() if process.stderr else ''}"
            )
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _persistent_volume(name: str, storage_class: str, folder: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"bodywork.dev/test": "helm"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "hostPath": {"path": str(folder), "type": "Directory"},
        },
    }


@contextmanager
def release_on_cluster(
    helm: Helm, cluster: KubeCluster, folder: Path, values: dict[str, Any]
) -> Iterator[Release]:
    """A namespace with a static hostPath volume for the store; uninstalled and deleted afterwards."""
    suffix = uuid.uuid4().hex[:6]
    namespace, storage_class = f"bw-helm-{suffix}", f"bw-helm-{suffix}"
    api = KubeApi(kubeconfig=cluster.kubeconfig)
    apiserver = ApiServer(cluster.kubeconfig, folder)
    store = folder / "store"
    store.mkdir()
    os.chown(store, SERVICE_USER, SERVICE_USER)  # hostPath volumes get no fsGroup ownership change
    base = {"persistence": {"storageClassName": storage_class, "size": "1Gi"}, **values}
    release = Release(helm, cluster, api, apiserver, namespace, "bw", storage_class, base)
    try:  # everything made from here on is removed, even when making the rest fails
        api.create("Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        volume = _persistent_volume(storage_class, storage_class, store)
        kubectl(cluster, "create", "-f", "-", input=json.dumps(volume))
        yield release
    finally:
        helm.run(
            "uninstall",
            release.name,
            "--namespace",
            namespace,
            "--wait",
            kubeconfig=cluster.kubeconfig,
            check=False,
            timeout=120,
        )
        api.delete("Namespace", namespace)
        kubectl(cluster, "delete", "persistentvolume", storage_class, "--wait=false", check=False)
        apiserver.close()
        api.close()
        shutil.rmtree(store, ignore_errors=True)
