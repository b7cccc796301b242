"""The Kubernetes backend: Jobs, Deployments, Services, Ingresses, Secrets and Namespaces.

Layers (each module imports only those above it):

- ``errors``, ``settings`` — our error types and settings; no I/O.
- ``manifests``, ``status``, ``packing`` — pure: object builders, status readings, source archives.
- ``api`` — the ONLY module that imports the ``kubernetes`` client; plain dicts in and out.
- ``watching`` — watches and followed logs in threads, bridged onto the event loop.
- ``backend`` — :class:`KubernetesBackend`, the :class:`~runner.backends.base.Backend` implementation.
- ``inventory`` — listing and deleting what is deployed (used by the CLI commands).
- ``bootstrap`` — the stdlib-only script every stage pod runs (shipped in a ConfigMap, never imported).
"""

from runner.backends.kubernetes.backend import KubernetesBackend
from runner.backends.kubernetes.settings import KubernetesSettings

__all__ = ["KubernetesBackend", "KubernetesSettings"]
