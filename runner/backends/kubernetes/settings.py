"""The Kubernetes backend's settings: one frozen dataclass, each field with its unit, default and why."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class KubernetesSettings:
    kubeconfig: str | None = None
    """Path of the kubeconfig file. None: $KUBECONFIG, then ~/.kube/config."""

    context: str | None = None
    """Kubeconfig context to use. None: the file's current context."""

    in_cluster: bool = False
    """Use the pod's service account (when the runner itself runs in the cluster)."""

    namespace: str | None = None
    """Namespace for every object of the run, instead of the run's environment (made a DNS label)."""

    images: Mapping[str, str] = field(default_factory=dict)
    """docker_image -> image the pods use; the key "*" matches any image. Lets a pipeline that names a
    registry image run on a cluster that only has a locally built one."""

    image: str | None = None
    """One image for every stage, whatever docker_image says (`bodywork run --image`); `images` wins."""

    image_pull_policy: str = "IfNotPresent"
    """imagePullPolicy of every stage container ("Never" for clusters without a registry)."""

    ingress_class: str = "nginx"
    """ingressClassName of the Ingress made for `ingress: true` services."""

    cache_host_path: str | None = "/var/cache/bodywork"
    """Node folder mounted into stage pods to cache pip downloads and virtual environments between pods.
    None: an emptyDir per pod (every pod installs its requirements from scratch)."""

    artifacts_host_path: str | None = "/var/lib/bodywork/artifacts"
    """Node folder (one sub-folder per namespace) shared by the stages of an environment as
    BODYWORK_ARTIFACTS_DIR, so a later stage reads what an earlier one wrote. Fine on one node; on
    several nodes set `artifacts_claim` instead. None (and no claim): no shared folder."""

    artifacts_claim: str | None = None
    """Name of a ReadWriteMany PersistentVolumeClaim in the namespace to use as BODYWORK_ARTIFACTS_DIR
    instead of the node folder (needed when pods of one environment land on different nodes)."""

    gpus: Mapping[str, int] = field(default_factory=dict)
    """Extension: stage name -> number of GPUs its pods request. A backend option only: bodywork.yaml
    1.1 has no GPU key, so a pipeline cannot ask for GPUs itself."""

    gpu_resource: str = "nvidia.com/gpu"
    """The extended resource name GPUs are requested as."""

    job_ttl_seconds: int | None = 3600
    """ttlSecondsAfterFinished of batch Jobs: finished Jobs and their pods (and logs) stay this long."""

    unschedulable_grace_seconds: float = 0.0
    """How long a pod may stay unschedulable before the stage fails (0: at once, with the reason)."""

    image_pull_grace_seconds: float = 0.0
    """How long a pod's image pull may keep failing (ErrImagePull, ImagePullBackOff: the kubelet retries)
    before the stage fails (0: at once, with the kubelet's message). Raise it when a registry is flaky
    or rate-limits; an image that can never be pulled (ErrImageNeverPull, InvalidImageName) fails at once."""

    max_source_chunks: int = 8
    """The source archive ships in ConfigMaps of 900 KiB each; at most this many (about 7 MiB)."""

    source_url: str | None = None
    """Base URL at which stage pods reach the service that runs this backend in the cluster (the Helm
    chart sets http://RELEASE.NAMESPACE.svc:PORT). When set, a run's code does not travel in ConfigMaps:
    pods download it from the service with a token only that run's pods get (docs/kubernetes.md), and a
    repository has no size ceiling. Needs `source_dir`."""

    source_dir: str | None = None
    """Folder where the service keeps the archives it serves to stage pods, and the key their tokens are
    derived from (the service sets it under its data folder)."""

    manage_namespaces: bool = True
    """False: never read, create, label or delete a namespace (RBAC with Roles in fixed namespaces and no
    cluster-wide rights); each environment's namespace must exist beforehand."""

    api_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    """Seconds between retries of a request that failed temporarily (unreachable, 429, 5xx)."""

    log_drain_seconds: float = 5.0
    """After a pod ends, how long to wait for the rest of its streamed log."""

    @classmethod
    def from_options(cls, **options: Any) -> KubernetesSettings:
        """Settings from keyword options (unknown names are an error that lists the known ones)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown Kubernetes backend option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        values = {
            k: v
            for k, v in options.items()
            if v is not None or k in ("cache_host_path", "artifacts_host_path")
        }
        if values.get("kubeconfig") is not None:
            values["kubeconfig"] = os.fspath(values["kubeconfig"])  # a Path is fine too
        if "api_retry_delays" in values:
            values["api_retry_delays"] = tuple(values["api_retry_delays"])
        if values.get("source_dir") is not None:
            values["source_dir"] = os.fspath(values["source_dir"])
        if values.get("source_url") and not values.get("source_dir"):
            raise ValueError(
                "the Kubernetes backend option source_url needs source_dir (where archives are kept)"
            )
        return cls(**values)

    def image_for(self, docker_image: str) -> str:
        return self.images.get(docker_image) or self.image or self.images.get("*") or docker_image
